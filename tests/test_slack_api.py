"""Slack Web API incident threads, the webhook fallback, Grafana OnCall, and the secret canary:
real local servers speaking each protocol, the real store and outbox drain."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from fleet_alerting.config import Config
from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Link, Severity, Signal
from fleet_alerting.delivery.drain import build_notifiers, drain
from fleet_alerting.delivery.notifiers.oncall import OnCallWebhook
from fleet_alerting.delivery.notifiers.slack_api import Pacer, SlackApi, snapshot_message
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import FleetEvent
from fleet_alerting.store.database import Store
from tests.fakes.fleet_api import FleetApiServer
from tests.fakes.http import Response
from tests.fakes.oncall import OnCallServer
from tests.fakes.saas import SlackWebhookServer
from tests.fakes.slack_api import SlackApiServer

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "slack_api_errors.yaml").read_text())
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
BOT = "xoxb-CANARY-bot-token-7f3a"
FLEET_TOKEN = "fleet-CANARY-token-91b2"
ONCALL_TOKEN = "oncallCANARYtoken55"
PAGE = PolicyConfig(open_after=1, resolve_after=1, page=["oncall"], page_after=timedelta(minutes=5))


def alert_signal(firing: bool = True) -> Signal:
    return Signal(
        key="alertmanager:fingerprint=abc123",
        source="alertmanager",
        firing=firing,
        severity=Severity.critical,
        summary="Fleet API down",
        target="pi-audio-01:8081",
        since=T0,
        runbook_url="https://wiki.example/runbooks/api-down",
    )


async def no_sleep(_s: float) -> None:
    return None


def write_config(tmp: Path, slack: str, fleet: str, oncall: str, **slack_extra: object) -> Config:
    (tmp / "bot.token").write_text(BOT)
    (tmp / "fleet.token").write_text(FLEET_TOKEN)
    (tmp / "oncall.url").write_text(oncall)
    no_mirror = {"mirror": False} if slack_extra.get("bot_token", True) is None else {}
    data = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "outbox_file": "outbox.jsonl",
            "slack": {
                k: v
                for k, v in (
                    {
                        "bot_token": {"file": "bot.token"},
                        "api_url": f"{slack}/api",
                        "min_interval": "0s",
                    }
                    | slack_extra
                ).items()
                if v is not None
            },
            "oncall": {"webhook": {"file": "oncall.url"}},
        },
        # as PAGE: no PagerDuty configured; without a bot token no mirror either (fail closed)
        "policies": {"critical": {"page": ["oncall"]} | no_mirror},
        "links": {"grafana_url": "https://grafana.example"},
        "fleet_api": {"url": fleet, "token": {"file": "fleet.token"}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    from fleet_alerting.config import load_config

    return load_config(path)


def step(store: Store, config: Config, firing: bool, now: datetime) -> None:
    evaluation = evaluate([alert_signal(firing)], store.unresolved(), lambda _s: PAGE, now)
    store.record(evaluation, now)

    async def go():
        async with httpx.AsyncClient() as client:
            return await drain(
                store, build_notifiers(config, client, store), lambda: now, sleep=no_sleep
            )

    return asyncio.run(go())


def fleet_events(now: datetime) -> list[dict]:
    def ev(i: int, target: str, minutes: int) -> dict:
        ts = (now - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        return {
            "timestamp": ts,
            "type": "command.failed",
            "target": target,
            "message": f"play failed {i}",
            "severity": "error",
            "metadata": {"correlationId": f"corr-{i}"},
        }

    return [ev(1, "pi-audio-01", 1), ev(2, "pi-audio-01", 3), ev(3, "pi-video-01", 2)]


def test_incident_thread_with_snapshot_paged_and_resolved(tmp_path: Path) -> None:
    with (
        SlackApiServer(BOT) as slack,
        FleetApiServer(FLEET_TOKEN) as fleet,
        OnCallServer(ONCALL_TOKEN) as oncall,
    ):
        fleet.events = fleet_events(T0)
        config = write_config(tmp_path, slack.url, fleet.url, oncall.webhook_url)
        store = Store(config.state.path)
        step(store, config, True, T0)  # opened: thread + snapshot
        slack.fail_next.append(  # the paged reply meets a rate limit first, then goes through
            Response(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "1"})
        )
        step(store, config, True, T0 + timedelta(minutes=6))  # paged
        report = step(store, config, False, T0 + timedelta(minutes=8))  # resolved
        stored = store.incident("alertmanager:fingerprint=abc123")
    (parent,) = slack.top_level()
    assert parent.body["channel"] == "#operations" and "Fleet API down" in parent.body["text"]
    assert (stored.thread_channel, stored.thread_ts) == ("C0OPS", parent.ts)
    replies = slack.replies(parent.ts)
    assert all(r.channel == "C0OPS" for r in replies) and slack.orphans == []
    snapshot, paged, resolved = replies
    shown = json.dumps(snapshot.body["blocks"])
    assert "corr-1" in shown and "corr-2" in shown and "corr-3" not in shown  # same device only
    assert "https://grafana.example/explore?" in shown and "corr-1" in snapshot.body["text"]
    assert "Paged oncall" in paged.body["text"]
    assert resolved.body["text"].startswith("[RESOLVED after ") and resolved.body["reply_broadcast"]
    assert [a["state"] for a in oncall.alerts] == ["alerting", "ok"]
    assert {a["alert_uid"] for a in oncall.alerts} == {"alertmanager:fingerprint=abc123"}
    assert oncall.open == set() and not report.dead


def test_a_one_off_message_is_posted_alone_without_thread_or_snapshot(tmp_path: Path) -> None:
    unused = "http://127.0.0.1:9/integrations/v1/formatted_webhook/never/"  # no page at T0
    with SlackApiServer(BOT) as slack, FleetApiServer(FLEET_TOKEN) as fleet:
        fleet.events = fleet_events(T0)
        config = write_config(tmp_path, slack.url, fleet.url, unused)
        store = Store(config.state.path)
        evaluation = evaluate([alert_signal()], store.unresolved(), lambda _s: PAGE, T0)
        told = [replace(n, one_off=True) for n in evaluation.notifications]
        store.record(Evaluation(evaluation.incidents, told), T0)

        async def go():
            async with httpx.AsyncClient() as client:
                notifiers = build_notifiers(config, client, store)
                return await drain(store, notifiers, lambda: T0, sleep=no_sleep)

        report = asyncio.run(go())
        stored = store.incident("alertmanager:fingerprint=abc123")
    (message,) = slack.top_level()
    assert "Fleet API down" in message.body["text"] and slack.replies(message.ts) == []
    assert stored.thread_ts is None and len(report.sent) == 1


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_slack_api_answers_map_to_retryable_or_permanent(case: dict) -> None:
    answer = case["answer"]
    with SlackApiServer(BOT) as slack:
        slack.fail_next.append(
            Response(answer["status"], answer["body"], dict(answer.get("headers", {})))
        )

        async def go():
            async with httpx.AsyncClient() as client:
                api = SlackApi(client, SecretStr(BOT), "#operations", api_url=f"{slack.url}/api")
                await api.post({"text": "hello"})

        with pytest.raises(AdapterError) as caught:
            asyncio.run(go())
    assert caught.value.permanent is case["permanent"]
    assert caught.value.retry_after == case.get("retry_after")
    assert case["error"] in str(caught.value)


def test_posts_are_paced_per_channel() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # a clock that moves only when we wait
        waits.append(round(seconds, 3))
        now[0] += seconds

    with SlackApiServer(BOT) as slack:

        async def go():
            async with httpx.AsyncClient() as client:
                api = SlackApi(
                    client,
                    SecretStr(BOT),
                    "#operations",
                    api_url=f"{slack.url}/api",
                    pacer=Pacer(1.0, sleep=sleep, clock=lambda: now[0]),
                )
                for i in range(3):
                    await api.post({"text": f"m{i}"})
                    now[0] += 0.25  # time passing between posts counts towards the interval
                await api.post({"text": "other"}, channel="#operations-mirror")

        asyncio.run(go())
    assert waits == [0.75, 0.75]  # the 2nd and 3rd post to #operations; the mirror never waits
    assert [p.channel for p in slack.posted] == ["C0OPS", "C0OPS", "C0OPS", "C0MIRROR"]


def test_snapshot_respects_slack_limits() -> None:
    events = [
        FleetEvent(f"e{i}", T0, "command.failed", "error", "x" * 280, "pi-audio-01", f"corr-{i}")
        for i in range(400)
    ]
    signal = alert_signal()
    incident = evaluate([signal], {}, lambda _s: PAGE, T0).incidents[0]
    link = lambda e: Link("Logs", f"https://grafana.example/explore?c={e.correlation_id}")  # noqa: E731
    message = snapshot_message(incident, events, "events for pi-audio-01", link)
    assert len(message["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in message["blocks"])


def test_without_bot_token_webhook_says_no_thread_and_carries_snapshot(tmp_path: Path) -> None:
    with SlackWebhookServer() as hook, FleetApiServer(FLEET_TOKEN) as fleet:
        fleet.events = fleet_events(T0)
        (tmp_path / "hook.url").write_text(f"{hook.url}/services/T/B/x")
        config = write_config(
            tmp_path,
            "http://127.0.0.1:9",
            fleet.url,
            "http://127.0.0.1:9/x",
            bot_token=None,
            webhook={"file": "hook.url"},
        )
        store = Store(config.state.path)
        step(store, config, True, T0)
    (message,) = hook.messages
    blocks = json.dumps(message["blocks"])
    assert "no incident thread: no Slack bot token configured" in blocks
    assert "corr-1" in blocks and "Fleet API events" in blocks
    assert store.incident("alertmanager:fingerprint=abc123").thread_ts is None


def test_secrets_never_reach_outbox_logs_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Canary values for the bot token, the Fleet API token and the OnCall URL token, with every
    server failing in a way that could echo them."""
    caplog.set_level(logging.DEBUG)
    with (
        SlackApiServer("a-different-token") as slack,
        FleetApiServer("another-token") as fleet,
        OnCallServer(ONCALL_TOKEN) as oncall,
    ):
        oncall.fail_next += [Response(500, f"no route /formatted_webhook/{ONCALL_TOKEN}/")] * 3
        config = write_config(tmp_path, slack.url, fleet.url, oncall.webhook_url)
        store = Store(config.state.path)
        report = step(store, config, True, T0)  # slack: invalid_auth → dead; oncall not yet
        report2 = step(store, config, True, T0 + timedelta(minutes=6))  # oncall fails: 500
        outbox = store.outbox(("queued", "dead", "sent"))
    errors = [reason for _, reason in report.dead + report.retrying + report2.retrying]
    assert any("invalid_auth" in e for e in errors) and any("HTTP 500" in e for e in errors)
    everything = (
        (tmp_path / "state.sqlite").read_bytes().decode("latin-1")
        + json.dumps([i.last_error for i in outbox])
        + " ".join(errors)
        + caplog.text
        + ((tmp_path / "outbox.jsonl").read_text() if (tmp_path / "outbox.jsonl").exists() else "")
    )
    for canary in (BOT, FLEET_TOKEN, ONCALL_TOKEN):
        assert canary not in everything


def test_oncall_payload_follows_the_formatted_webhook() -> None:
    incident = evaluate([alert_signal()], {}, lambda _s: PAGE, T0).incidents[0]
    with OnCallServer() as oncall:

        async def go(kind: Kind):
            async with httpx.AsyncClient() as client:
                note = Notification("id", "oncall", kind, T0 + timedelta(minutes=6), incident)
                return await OnCallWebhook(client, SecretStr(oncall.webhook_url)).send(note)

        asyncio.run(go(Kind.paged))
        asyncio.run(go(Kind.resolved))
    trigger, resolve = oncall.alerts
    assert trigger["state"] == "alerting" and resolve["state"] == "ok"
    assert trigger["alert_uid"] == resolve["alert_uid"] == "alertmanager:fingerprint=abc123"
    assert trigger["title"] == "[CRITICAL] Fleet API down (pi-audio-01:8081)"
    assert trigger["link_to_upstream_details"] == "https://wiki.example/runbooks/api-down"
    assert "Failing since 2026-11-26T03:00:00+00:00 (6m00s)" in trigger["message"]


def test_snapshot_says_plainly_when_no_fleet_event_can_apply(tmp_path: Path) -> None:
    """A shipped watch's metric gone from Prometheus names no device: its thread says so rather
    than "Fleet API events for role_agent_last_run_success: 0"; a host's incident lists events."""
    from fleet_alerting.delivery.snapshot import make_snapshot
    from fleet_alerting.sources.prometheus.judge import (
        Series,
        absent_signal,
        default_watches,
        firing_signal,
    )

    with FleetApiServer(FLEET_TOKEN) as fleet:
        fleet.events = fleet_events(T0)
        config = write_config(tmp_path, "http://127.0.0.1:9", fleet.url, "http://127.0.0.1:9/x")
        (watch,) = [
            w for w in default_watches(config.prometheus) if w.metric and "success" in w.metric
        ]
        host = {"__name__": watch.metric, "host": "pi-audio-01"}
        signals = [
            absent_signal(watch, config.links, True),
            firing_signal(watch, Series(host, 0.0), config.links),
        ]
        incidents = evaluate(signals, {}, lambda _s: PAGE, T0).incidents

        async def snapshots() -> list[dict]:
            async with httpx.AsyncClient() as client:
                snapshot = make_snapshot(config, client)
                assert snapshot is not None
                return [await snapshot(incident, T0) for incident in incidents]

        absent, failing = asyncio.run(snapshots())
    assert absent["text"] == (
        f"No Fleet API event can concern {watch.metric}: it names no device or host."
    )
    assert "Fleet API events for" not in json.dumps(absent)
    assert failing["text"].startswith(
        "Fleet API events for pi-audio-01: 2 (events for pi-audio-01)"
    )
