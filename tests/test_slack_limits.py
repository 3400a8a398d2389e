"""Content Slack or PagerDuty would refuse is never sent as it is: every block fits Slack's
documented limits (the fakes refuse a section field over 2,000 characters, as Slack does), a
message Slack still refuses for its blocks goes out as plain text with the essentials, and a
long label never turns a page into a dead letter. Dead letters are left for destinations that
refuse everything (a bad token, a channel gone), each logged as an error naming it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.models.blocks import Block

from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.mrkdwn import MAX_SECTION_FIELD, fit
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Link, Severity, Signal
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers import slack_webhook
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_api import SlackApi
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.store.database import Store
from tests.drainer import BOT_TOKEN, ROUTING_KEY
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer, refused_blocks
from tests.fakes.slack_api import SlackApiServer

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
LONG = "rack-7.pi-" + "x" * 4990  # an `instance` label of 5,000 characters
RUNBOOK = "https://wiki.example/runbooks/api?section=a&b=c"


def instance_signal(instance: str, firing: bool, **fields: object) -> Signal:
    """A critical Prometheus alert about `instance`, its text built from the label."""
    key, summary = f"prometheus:instance={instance}", f"API on {instance} is down"
    labels = {"instance": instance, "job": f"api-{instance}"}
    return Signal(
        key, "prometheus", firing, Severity.critical, summary, **{"labels": labels} | fields
    )


def long_signal(firing: bool = True) -> Signal:
    return instance_signal(
        LONG,
        firing,
        target=LONG,
        runbook_url=RUNBOOK,
        remediation=tuple(f"step {i}: " + "y" * 3000 for i in range(60)),
        correlation_ids=tuple(f"c-{i}-" + "z" * 500 for i in range(10)),
        links=tuple(Link(f"Logs {i} " + "w" * 300, f"https://grafana/{i}") for i in range(20)),
        evidence={f"k{i}": "v" * 800 for i in range(15)},
    )


POLICY = PolicyConfig(
    open_after=1, resolve_after=1, page=["pagerduty"], page_after=timedelta(0), mirror=True
)


def queue(store: Store, firing: bool) -> None:
    """Open (and page) at T0, or resolve a minute later."""
    now = T0 if firing else T0 + timedelta(minutes=1)
    signal = long_signal(firing)
    store.record(evaluate([signal], store.unresolved(), lambda _s: POLICY, now), now)


async def no_sleep(_seconds: float) -> None:
    return None


def validate(body: dict) -> None:
    """slack_sdk's models accept every block, and the limits slack_sdk does not check hold."""
    blocks = body.get("blocks", [])
    for block in blocks:
        Block.parse(block).validate_json()
    assert not refused_blocks(blocks)
    assert 0 < len(body["text"]) <= 3000


@pytest.mark.parametrize("kind", [Kind.opened, Kind.paged, Kind.resolved])
def test_every_block_fits_slacks_limits(kind: Kind) -> None:
    opened = evaluate([long_signal()], {}, lambda _s: POLICY, T0).notifications
    n = next(n for n in opened if n.channel == "slack" and n.kind in (kind, Kind.opened))
    if kind == Kind.paged:
        n = next(n for n in opened if n.channel == "slack" and n.kind == kind)
    if kind == Kind.resolved:
        incidents = {n.incident.key: n.incident}
        later = T0 + timedelta(minutes=1)
        resolved = evaluate([long_signal(False)], incidents, lambda _s: POLICY, later)
        n = next(x for x in resolved.notifications if x.channel == "slack")
    validate(slack_webhook.render(n, note="mirror of #operations"))


def test_a_long_instance_label_reaches_slack_and_pagerduty(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    with SlackWebhookServer() as slack, SlackApiServer(BOT_TOKEN) as api, PagerDutyServer() as pd:

        async def go():
            async with httpx.AsyncClient() as client:
                notifiers = {
                    "slack": SlackApi(
                        client, SecretStr(BOT_TOKEN), "C0OPS", api_url=f"{api.url}/api",
                        store=store,
                    ),
                    "slack_mirror": SlackWebhook(client, SecretStr(f"{slack.url}/m"), "Mirror"),
                    "pagerduty": PagerDutyEvents(
                        client, SecretStr(ROUTING_KEY), f"{pd.url}/v2/enqueue"
                    ),
                }  # fmt: skip
                # the page goes before the resolve is queued (else it is withdrawn)
                queue(store, True)
                first = await drain(store, notifiers, lambda: T0)
                queue(store, False)
                report = await drain(store, notifiers, lambda: T0 + timedelta(minutes=1))
                report.dead += first.dead
                return report

        report = asyncio.run(go())
        assert report.dead == [], [reason for _i, reason in report.dead]
        posted = [p.body for p in api.posted] + slack.messages
        events = list(pd.events)
    assert store.outbox(("queued", "dead")) == []
    assert len(posted) == 6 and all("blocks" in body for body in posted)  # no fallback needed
    for body in posted:
        validate(body)
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert len(events[0]["payload"]["summary"]) <= 1024
    assert events[0]["payload"]["component"].startswith("rack-7.pi-xxx")
    assert all(len(link["text"]) <= 255 for link in events[0]["links"])


REFUSALS = {
    "webhook invalid_blocks": (False, Response(400, "invalid_blocks")),
    "web api invalid_blocks": (True, Response(200, {"ok": False, "error": "invalid_blocks"})),
    "web api msg_too_long": (True, Response(200, {"ok": False, "error": "msg_too_long"})),
}


@pytest.mark.parametrize(("bot", "refusal"), REFUSALS.values(), ids=REFUSALS.keys())
def test_blocks_slack_refuses_go_out_as_plain_text(
    tmp_path: Path, bot: bool, refusal: Response
) -> None:
    store = Store(tmp_path / "state.sqlite")
    signal = Signal(
        "blackbox:url=http://api/healthz", "blackbox", True, Severity.critical, "API down",
        target="api", runbook_url=RUNBOOK,
    )  # fmt: skip
    store.record(evaluate([signal], {}, lambda _s: PolicyConfig(open_after=1), T0), T0)
    server = SlackApiServer(BOT_TOKEN) if bot else SlackWebhookServer()
    with server:
        server.fail_next = [refusal]

        async def go():
            async with httpx.AsyncClient() as client:
                if bot:
                    url = f"{server.url}/api"
                    notifier = SlackApi(client, SecretStr(BOT_TOKEN), "C0OPS", api_url=url)
                else:
                    notifier = SlackWebhook(client, SecretStr(f"{server.url}/s"), "Slack")
                return await drain(store, {"slack": notifier}, lambda: T0, sleep=no_sleep)

        report = asyncio.run(go())
        bodies = [p.body for p in server.posted] if bot else server.messages
    assert report.dead == [] and len(report.sent) == 1
    (body,) = bodies
    assert "blocks" not in body
    text = body["text"]
    assert text.startswith("[CRITICAL] API down | target api | since 2026-11-26 03:00 UTC")
    assert text.endswith(" | runbook https://wiki.example/runbooks/api?section=a&amp;b=c")
    if bot:  # the plain message still carries its metadata: a later look finds it
        assert body["metadata"]["event_type"] == "fleet_alerting_notification"


DEAD = {
    "bad token": (Response(200, {"ok": False, "error": "invalid_auth"}), "invalid_auth"),
    "channel gone": (Response(200, {"ok": False, "error": "channel_not_found"}), "channel_not"),
}


@pytest.mark.parametrize(("answer", "reason"), DEAD.values(), ids=DEAD.keys())
def test_a_destination_refusing_everything_is_a_loud_dead_letter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: Response, reason: str
) -> None:
    store = Store(tmp_path / "state.sqlite")
    signal = Signal("blackbox:url=http://a/h", "blackbox", True, Severity.warning, "down")
    store.record(evaluate([signal], {}, lambda _s: PolicyConfig(open_after=1), T0), T0)
    with SlackApiServer(BOT_TOKEN) as api:
        api.fail_next = [answer]

        async def go():
            async with httpx.AsyncClient() as client:
                url = f"{api.url}/api"
                notifier = SlackApi(client, SecretStr(BOT_TOKEN), "C0OPS", api_url=url)
                return await drain(store, {"slack": notifier}, lambda: T0, sleep=no_sleep)

        with caplog.at_level(logging.ERROR, logger="fleet_alerting.delivery"):
            report = asyncio.run(go())
    assert len(report.dead) == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "dead letter: slack (Slack chat.postMessage C0OPS)" in record.getMessage()
    assert reason in record.getMessage()


CUTS = {
    "an entity": ("a" * 8 + "&amp;b", 12, "a" * 8 + "…"),
    "a link": ("ab <https://x.example/long|label> c", 20, "ab …"),
    "a whole link kept": ("<https://x.example|x> and more text", 24, "<https://x.example|x> a…"),
    "short enough": ("&lt;!channel&gt;", 16, "&lt;!channel&gt;"),
}


@pytest.mark.parametrize(("text", "limit", "cut"), CUTS.values(), ids=CUTS.keys())
def test_a_cut_never_splits_an_entity_or_a_link(text: str, limit: int, cut: str) -> None:
    assert fit(text, limit) == cut
    assert len(fit("x" * 5000, MAX_SECTION_FIELD)) == MAX_SECTION_FIELD
