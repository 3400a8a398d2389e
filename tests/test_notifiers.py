"""Notifier payloads within the documented limits; a broken channel keeps its messages queued."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.config import load_config
from fleet_alerting.config.secrets import register
from fleet_alerting.core.incidents import Kind
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Link, Severity, Signal
from fleet_alerting.delivery.drain import build_notifiers, drain
from fleet_alerting.delivery.notifiers import pagerduty
from fleet_alerting.delivery.notifiers import slack_webhook as slack
from fleet_alerting.delivery.notifiers.oncall import OnCallWebhook
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.store.database import Store
from tests.fakes.oncall import OnCallServer
from tests.fakes.saas import PagerDutyServer

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def notification(summary: str = "API down", **signal: object):
    policy = PolicyConfig(open_after=1, page=["pagerduty"], page_after=0)
    s = Signal(
        "blackbox:url=http://api/healthz", "blackbox", True, Severity.critical, summary, **signal
    )
    return {
        n.channel + ":" + n.kind: n for n in evaluate([s], {}, lambda _: policy, T0).notifications
    }


def test_pagerduty_event_respects_summary_and_size_limits() -> None:
    huge = {"body": "x" * 600_000}
    sent = notification(
        "s" * 5000,
        evidence=huge,
        runbook_url="https://wiki/r",
        links=(Link("Logs", "https://grafana/e"),),
    )
    body = pagerduty.event(sent["pagerduty:paged"], "R" * 32)
    assert len(body["payload"]["summary"]) == 1024
    assert len(json.dumps(body).encode()) <= 512 * 1024
    assert body["payload"]["custom_details"]["evidence"].startswith("(omitted")
    assert body["links"] == [
        {"href": "https://wiki/r", "text": "Runbook"},
        {"href": "https://grafana/e", "text": "Logs"},
    ]
    assert body["dedup_key"] == "blackbox:url=http://api/healthz"
    long_key = "k" * 400
    assert len(pagerduty.dedup_key(long_key)) == 255
    assert pagerduty.dedup_key(long_key) == pagerduty.dedup_key(long_key)


def pagerduty_at(url: str, client: httpx.AsyncClient) -> PagerDutyEvents:
    return PagerDutyEvents(client, SecretStr("R" * 32), url)


def oncall_at(url: str, client: httpx.AsyncClient) -> OnCallWebhook:
    return OnCallWebhook(client, SecretStr(url))


def paged_once(
    tmp_path: Path, signal: Signal, channel: str, pager: Callable[[httpx.AsyncClient], Any]
) -> None:
    """`signal` opens an incident that pages `channel` at once; one drain sends the page."""
    policy = PolicyConfig(open_after=1, notify=[], page=[channel], page_after=0)
    store = Store(tmp_path / "state.sqlite")
    store.record(evaluate([signal], {}, lambda _: policy, T0), T0)

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            report = await drain(store, {channel: pager(client)}, lambda: T0, sleep=no_sleep)
            assert len(report.sent) == 1, report

    asyncio.run(go())
    store.close()


def test_pagerduty_gets_the_summary_as_written_cut_and_redacted(tmp_path: Path) -> None:
    secret = "CANARYpagerdutySummaryToken0000"
    register(secret)
    summary = f"disk <5% & fan >90 °C, token={secret} " + "x" * 2000
    signal = Signal("blackbox:pi-0", "blackbox", True, Severity.critical, summary, target="pi-0")
    with PagerDutyServer() as pd:
        paged_once(tmp_path, signal, "pagerduty", partial(pagerduty_at, f"{pd.url}/v2/enqueue"))
    (event,) = pd.events
    shown = event["payload"]["summary"]
    assert shown.startswith("[CRITICAL] disk <5% & fan >90 °C, token=*** xxx")
    assert len(shown) == 1024 and shown.endswith("x…")
    assert secret not in json.dumps(event)


def test_oncall_gets_title_and_message_redacted_before_the_cut(tmp_path: Path) -> None:
    secret = "CANARYoncallTitleToken0000000000"
    register(secret)
    summary = "x" * 470 + f" token={secret} " + "y" * 9000  # the secret across the title's cut
    remediation = (f"curl -H 'Authorization: {secret}' " + "z" * 9000,)
    signal = Signal(
        "blackbox:pi-0", "blackbox", True, Severity.critical, summary, remediation=remediation
    )
    with OnCallServer() as oncall:
        paged_once(tmp_path, signal, "oncall", partial(oncall_at, oncall.webhook_url))
    (alert,) = oncall.alerts
    assert alert["title"].startswith("[CRITICAL] xxx")
    assert len(alert["title"]) == 500 and alert["title"].endswith("…")
    assert "token=***" in alert["title"]
    assert len(alert["message"]) == 8000 and alert["message"].endswith("…")
    assert secret[:8] not in json.dumps(alert)


def test_slack_message_respects_block_kit_limits() -> None:
    steps = tuple("step " + "y" * 400 for _ in range(20))
    sent = notification("API <down> & out", remediation=steps, correlation_ids=("c-1",))
    body = slack.render(sent["slack:opened"])
    assert len(body["blocks"]) <= 50
    for block in body["blocks"]:
        if block["type"] == "actions":  # buttons: no mrkdwn text to limit
            continue
        texts = (
            [block["text"]["text"]]
            if "text" in block
            else [e["text"] for e in block.get("elements", []) + block.get("fields", [])]
        )
        assert all(len(t) <= 3000 for t in texts)
    assert "API &lt;down&gt; &amp; out" in body["blocks"][0]["text"]["text"]
    assert body["text"].startswith("[CRITICAL] API &lt;down&gt; &amp; out | target ")
    assert "`c-1`" in json.dumps(body)
    assert sent["slack:paged"].kind == Kind.paged


async def no_sleep(_seconds: float) -> None:
    return None


def test_missing_secret_file_keeps_messages_queued_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "state: {path: state.sqlite}\n"
        "notify:\n  slack:\n    webhook: {file: secrets/slack-webhook.url}\n"
        "policies:\n  critical: {page: [], mirror: false}\n"
    )
    config = load_config(path)
    store = Store(config.state.path)
    evaluation = evaluate(
        [Signal("k", "test", True, Severity.warning, "down")],
        {},
        lambda _: PolicyConfig(open_after=1),
        T0,
    )
    store.record(evaluation, T0)

    async def go():
        async with httpx.AsyncClient() as client:
            return await drain(store, build_notifiers(config, client), lambda: T0, sleep=no_sleep)

    report = asyncio.run(go())
    (queued,) = store.outbox(("queued",))
    assert report.sent == [] and queued.notification.channel == "slack"
    missing = tmp_path / "secrets" / "slack-webhook.url"
    assert (
        queued.last_error == f"slack: cannot read secret file {missing}: No such file or directory"
    )


def test_an_unreachable_pager_is_named_by_its_host_never_its_path() -> None:
    """An operator reading "PagerDuty Events API unreachable" must know which endpoint (an EU
    account's is another host); an OnCall integration's URL holds its token in the path."""
    from fleet_alerting.http.errors import AdapterError
    from tests.servers import free_port

    port = free_port()  # nothing listens there
    token = "CANARYoncallPathToken000000000"
    n = notification()["pagerduty:paged"]

    async def refused(pager: Callable[[httpx.AsyncClient], Any]) -> str:
        async with httpx.AsyncClient() as client:
            try:
                await pager(client).send(n)
            except AdapterError as exc:
                return str(exc)
        raise AssertionError("sent to a closed port")

    pd = asyncio.run(refused(partial(pagerduty_at, f"http://127.0.0.1:{port}/v2/enqueue")))
    oncall_url = f"http://127.0.0.1:{port}/integrations/v1/webhook/{token}/"
    oncall = asyncio.run(refused(partial(oncall_at, oncall_url)))
    assert pd == f"PagerDuty Events API unreachable at http://127.0.0.1:{port} (ConnectError)"
    assert f"unreachable at http://127.0.0.1:{port} (ConnectError)" in oncall
    assert token not in oncall and "/integrations" not in oncall
