"""Escalation end to end with a virtual clock: the config loader, the store (steady failures read
from their brief), the drain and the PagerDuty and Slack fakes. Primary page, no
acknowledgement, the secondary routing key, then the resolve reaching both, each once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.policy import evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.channels import build_notifiers
from fleet_alerting.delivery.drain import drain
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PRIMARY, SECONDARY = "P" * 32, "S" * 32
KEY = "blackbox:url=http://api/healthz"


def write_config(folder: Path, slack: str, pd: str) -> Path:
    (folder / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    (folder / "primary.key").write_text(PRIMARY)
    (folder / "secondary.key").write_text(SECONDARY)
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "slack": {"webhook": {"file": "slack.url"}},
            "pagerduty": {
                "routing_key": {"file": "primary.key"},
                "routing_keys": {"secondary": {"file": "secondary.key"}},
                "url": f"{pd}/v2/enqueue",
            },
        },
        "policies": {
            "critical": {
                "mirror": False,
                "repeat": None,
                "ack_timeout": "30m",
                "steps": [
                    {"after": "0s", "to": ["slack"]},
                    {"after": "5m", "to": ["pagerduty"]},
                    {"after": "20m", "to": ["pagerduty_secondary", "slack"], "mention": "S0ONCALL"},
                ],
            }
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def no_sleep(_seconds: float) -> None:
    return None


def run(config_path: Path, store: Store, failing: bool, now: datetime) -> None:
    """One watch run at `now`: evaluate one observation of the API, deliver what it queued."""
    config = load_config(config_path)
    signal = Signal(KEY, "blackbox", failing, Severity.critical, "API /api/healthz: HTTP 500")
    store.evaluate(lambda open_: evaluate([signal], open_, config.policy, now), now)

    async def deliver() -> None:
        async with httpx.AsyncClient() as client:
            await drain(store, build_notifiers(config, client), lambda: now, sleep=no_sleep)

    asyncio.run(deliver())


def show(config_path: Path, capsys: pytest.CaptureFixture) -> list[str]:
    capsys.readouterr()
    assert main(["incidents", "--show", KEY, "--config", str(config_path)]) == 0
    return [line.strip() for line in capsys.readouterr().out.splitlines()]


def test_primary_then_secondary_then_resolve_each_pagerduty_incident_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        config_path = write_config(tmp_path, slack.url, pd.url)
        store = Store(tmp_path / "state.sqlite")
        shown = {}
        for minute in range(0, 24):  # a run a minute, nobody acknowledges
            run(config_path, store, True, T0 + timedelta(minutes=minute))
            if minute in (6, 23):
                shown[minute] = show(config_path, capsys)
        for minute in (24, 25, 26):
            run(config_path, store, False, T0 + timedelta(minutes=minute))
    by_service: dict[str, list[tuple[str, str]]] = {}
    for e in pd.events:  # each routing key is a PagerDuty service with its own lane here
        by_service.setdefault(e["routing_key"], []).append((e["event_action"], e["dedup_key"]))
    assert by_service == {
        PRIMARY: [("trigger", KEY), ("resolve", KEY)],
        SECONDARY: [("trigger", KEY), ("resolve", KEY)],
    }
    first_resolve = next(i for i, e in enumerate(pd.events) if e["event_action"] == "resolve")
    assert [e["routing_key"] for e in pd.events[:first_resolve]] == [PRIMARY, SECONDARY]
    texts = [m["text"] for m in slack.messages]
    assert [t.split(":")[0] for t in texts] == [
        "[CRITICAL] API /api/healthz",
        "[CRITICAL] Paged pagerduty",
        "<!subteam^S0ONCALL> [CRITICAL] Paged pagerduty_secondary",
        "[RESOLVED after 24m00s] API /api/healthz",
    ]
    context = [str(m["blocks"][-2:]) for m in slack.messages]
    assert "Next: step 2 (pagerduty) at 03:05:00 UTC" in context[0]
    assert "Escalation step 3 of 3" in context[2]
    assert "Paged: pagerduty 03:05:00 UTC, pagerduty_secondary 03:20:00 UTC" in context[2]
    assert "Next: no further step" in context[2]
    # incidents --show: the step, who was paged when, what comes next
    assert {"Escalation step 2 of 3", "Paged: pagerduty 03:05:00 UTC"} <= set(shown[6])
    assert "Next: step 3 (pagerduty_secondary + slack) at 03:20:00 UTC" in shown[6]
    paged = "Paged: pagerduty 03:05:00 UTC, pagerduty_secondary 03:20:00 UTC"
    assert {"Escalation step 3 of 3", paged, "Next: no further step"} <= set(shown[23])
