"""What an operator sees: `incidents` (state, onset, duration, why it resolved), `outbox --sent`
(what was delivered, where, with the receipt), and a resolved message that shows the recovering
observation and counts the outage until the first passing check."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Kind, State
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import drain
from fleet_alerting.delivery.notifiers import oncall
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook, render
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from tests.fakes.saas import SlackWebhookServer

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
POLICY = PolicyConfig(open_after=1, resolve_after=3, notify=["slack"])


def probe(ok: bool, status: int) -> Signal:
    return Signal(
        key="blackbox|api",
        source="blackbox",
        firing=not ok,
        severity=Severity.warning,
        summary="HTTP 200 in 12 ms" if ok else f"HTTP {status} from /api/healthz",
        target="https://fleet.example.org/api/healthz",
        evidence={"status": status},
    )


def outage(store: Store | None = None):
    """Fails at 0 s, passes from 7m12s; resolve_after 3 resolves at the third pass (9m12s)."""
    incidents, sent = {}, []
    steps = [
        (0, False, 503),
        (60, False, 503),
        (432, True, 200),
        (492, True, 200),
        (552, True, 200),
    ]
    for at, ok, status in steps:
        now = T0 + timedelta(seconds=at)
        result = evaluate([probe(ok, status)], incidents, lambda _s: POLICY, now)
        incidents.update({i.key: i for i in result.incidents})
        sent += result.notifications
        if store is not None:
            store.record(result, now)
    return incidents["blackbox|api"], sent


def test_resolved_after_ends_at_the_first_passing_check() -> None:
    incident, sent = outage()
    resolved = sent[-1]
    assert resolved.kind == Kind.resolved and incident.state == State.resolved
    assert incident.recovered_at == T0 + timedelta(seconds=432)
    assert incident.resolved_at == T0 + timedelta(seconds=552)
    assert format_duration(resolved.incident.duration(resolved.at)) == "7m12s"  # not 9m12s
    assert render(resolved)["text"].startswith("[RESOLVED after 7m12s] HTTP 503")
    assert "after 7m12s" not in oncall.payload(sent[0])["message"]
    assert "(7m12s)" in oncall.payload(resolved)["message"]


def test_a_failure_between_passes_restarts_the_recovery() -> None:
    policy = PolicyConfig(open_after=1, resolve_after=2, notify=["slack"])
    incidents: dict = {}
    for at, ok in [(0, False), (60, True), (120, False), (180, True), (240, True)]:
        now = T0 + timedelta(seconds=at)
        result = evaluate([probe(ok, 200 if ok else 503)], incidents, lambda _s: policy, now)
        incidents.update({i.key: i for i in result.incidents})
        if not ok:
            assert incidents["blackbox|api"].recovered_at is None
    incident = incidents["blackbox|api"]
    assert incident.recovered_at == T0 + timedelta(seconds=180)
    assert format_duration(incident.duration(T0 + timedelta(hours=1))) == "3m00s"


def _context(message: dict) -> dict:
    """The context block (an open incident's message ends with its action buttons)."""
    return [block for block in message["blocks"] if block["type"] == "context"][-1]


def test_the_resolved_message_shows_the_recovering_observation() -> None:
    _incident, sent = outage()
    opened, resolved = sent[0], sent[-1]
    context = str(_context(render(opened)))
    assert "status: 503" in context
    context = str(_context(render(resolved)))
    assert "Recovered: status: 200" in context and "503" not in context
    assert "HTTP 200 in 12 ms" in render(resolved)["text"]  # the resolution, in the headline
    message = oncall.payload(resolved)["message"]
    assert message.startswith("Resolved: HTTP 200 in 12 ms\nRecovered: status: 200")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    (tmp_path / "slack.url").write_text("http://127.0.0.1:9/services/T0/B0/CANARYviewsToken0000")
    path.write_text("state: {path: state.sqlite}\nnotify: {dry_run: true}\n")
    return path


def test_incidents_shows_state_onset_duration_and_why_it_resolved(
    config: Path, capsys: pytest.CaptureFixture
) -> None:
    store = Store(config.parent / "state.sqlite")
    outage(store)
    flap = probe(False, 502)
    flap = Signal(**{**flap.__dict__, "key": "blackbox|ui", "summary": "HTTP 502 from /"})
    store.record(evaluate([flap], {}, lambda _s: POLICY, T0), T0)
    assert main(["incidents", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "STATE", "SEVERITY", "ONSET", "(UTC)", "FAILED", "KEY", "WHAT"]
    assert out[1].split("  ", 1)[1].startswith("firing    warning  2026-11-27 03:00:00Z")
    assert out[1].endswith("blackbox|ui  HTTP 502 from /")
    assert len(out) == 2  # the resolved one only with --all
    assert main(["incidents", "--all", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (resolved,) = [line for line in lines if line.split()[1] == "resolved"]
    assert resolved.split()[1:6] == ["resolved", "warning", "2026-11-27", "03:00:00Z", "7m12s"]
    assert resolved.endswith(
        "blackbox|api  HTTP 503 from /api/healthz — "
        "resolved 2026-11-27 03:09:12Z: HTTP 200 in 12 ms"
    )


def test_outbox_sent_shows_destination_and_receipt(
    config: Path, capsys: pytest.CaptureFixture
) -> None:
    store = Store(config.parent / "state.sqlite")
    outage(store)
    with SlackWebhookServer() as slack:
        config.write_text(
            "state: {path: state.sqlite}\n"
            "notify:\n  slack:\n    webhook: {file: slack.url}\n    channel: '#ops'\n"
            "policies:\n  critical: {mirror: false, page: []}\n"  # fail closed: Slack only
        )

        async def deliver() -> None:
            async with httpx.AsyncClient() as client:
                hook = SlackWebhook(client, SecretStr(f"{slack.url}/hook"), "Slack webhook #ops")
                await drain(store, {"slack": hook}, lambda: T0 + timedelta(hours=1))

        asyncio.run(deliver())
        assert len(slack.messages) == 2
    assert main(["outbox", "--sent", "--config", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    # when each was sent (an hour late: when it was queued too), not only when it was queued
    assert out == [
        "sent   2026-11-27 04:00:00Z (queued 03:00:00Z) opened    blackbox|api → "
        "Slack #ops (webhook): Slack webhook #ops: 200 ok",
        "sent   2026-11-27 04:00:00Z (queued 03:09:12Z) resolved  blackbox|api → "
        "Slack #ops (webhook): Slack webhook #ops: 200 ok",
    ]
    assert main(["outbox", "--sent", "-o", "json", "--config", str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["created_at"], r["sent_at"]) for r in rows] == [
        ("2026-11-27T03:00:00Z", "2026-11-27T04:00:00Z"),
        ("2026-11-27T03:09:12Z", "2026-11-27T04:00:00Z"),
    ]
    # --since: sent since then (both went out at 04:00)
    assert (
        main(["outbox", "--sent", "--since", "2026-11-27T03:05:00Z", "--config", str(config)]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["outbox", "--sent", "--since", "1h", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "nothing delivered since then\n"
    assert main(["outbox", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "nothing queued, no dead letters\n"
    assert main(["outbox", "--since", "1h", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "nothing queued, no dead letters since then\n"
