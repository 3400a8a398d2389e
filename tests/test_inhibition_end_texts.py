"""An inhibition's end says "was inhibited by …" in Slack (README "Storms"), whichever path
releases the incident: one told before the cause failed, one paged before it, one whose page came
due while inhibited. Real store, the shipped `api-down` rule and a custom one, the outbox drained
into the tests' local Slack webhook and PagerDuty servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.config import Config, load_config
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import build_notifiers, drain
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
API = "blackbox:service=fleet-api"


@pytest.fixture
def fakes() -> Iterator[tuple[SlackWebhookServer, PagerDutyServer]]:
    with SlackWebhookServer() as slack, PagerDutyServer() as pagerduty:
        yield slack, pagerduty


def write_config(tmp_path: Path, slack: str, pagerduty: str) -> Config:
    (tmp_path / "slack.url").write_text(f"{slack}/services/T/B/X")
    (tmp_path / "pd.key").write_text("R" * 32)
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "slack": {"webhook": {"file": "slack.url"}, "min_interval": "0s"},
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pagerduty}/v2/enqueue"},
        },
        "policies": {
            "critical": {"open_after": 1, "resolve_after": 1, "page_after": "0s", "mirror": False},
            "warning": {"open_after": 1, "resolve_after": 1, "repeat": "30m"},
        },
        "inhibit_rules": [
            {"source_matchers": ['source="vps"'], "target_matchers": ['source="api"']},
            {
                "source_matchers": ['source="blackbox"', 'severity="critical"'],
                "target_matchers": ['source="blackbox"', 'severity!="critical"'],
            },
        ],
        "grouping": {"enabled": False},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return load_config(tmp_path / "config.yaml")


def signal(source: str, name: str, fail: bool, severity: Severity) -> Signal:
    labels = {"service": name} if name == "fleet-api" else {"host": name}
    key = f"{source}:{next(iter(labels))}={name}"
    return Signal(key, source, fail, severity, f"{name} {'down' if fail else 'up'}", labels=labels)


def run(config: Config, signals: list[Signal], minute: int) -> None:
    now = T0 + timedelta(minutes=minute)
    with Store(config.state) as store:
        evaluate_and_record(store, signals, config.policy, now, rules=config.storm_rules())

        async def deliver() -> None:
            async with httpx.AsyncClient() as http:
                await drain(store, build_notifiers(config, http, store), lambda: now)

        asyncio.run(deliver())


def test_a_device_told_before_the_api_failed_hears_the_inhibition_end(
    fakes: tuple[SlackWebhookServer, PagerDutyServer], tmp_path: Path
) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    device = lambda fail: signal("blackbox", "pi-0", fail, Severity.warning)  # noqa: E731
    api = lambda fail: signal("blackbox", "fleet-api", fail, Severity.critical)  # noqa: E731
    run(config, [device(True)], 0)
    run(config, [api(True), device(True)], 1)
    told = len(slack.messages)
    run(config, [api(False), device(True)], 2)
    texts = [m["text"] for m in slack.messages[told:]]
    assert texts[0].startswith("[RESOLVED after 1m00s] fleet-api down")
    assert texts[1].startswith(
        f"[WARNING] Still failing after 2m00s: pi-0 down (was inhibited by {API}, which has"
    )
    run(config, [api(False), device(True)], 3)
    assert len(slack.messages) == told + 2  # once


def test_a_paged_symptom_is_paged_again_and_slack_says_why(
    fakes: tuple[SlackWebhookServer, PagerDutyServer], tmp_path: Path
) -> None:
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    api = lambda fail: signal("api", "vps", fail, Severity.critical)  # noqa: E731
    vps = lambda fail: signal("vps", "vps", fail, Severity.critical)  # noqa: E731
    run(config, [api(True)], 0)
    run(config, [vps(True), api(True)], 1)  # the api's page acknowledged
    told = len(slack.messages)
    run(config, [vps(False), api(True)], 2)
    texts = [m["text"] for m in slack.messages[told:]]
    said = "[CRITICAL] Paged pagerduty: failing for 2m00s: vps down (was inhibited by vps:host=vps"
    assert any(t.startswith(said) for t in texts), texts
    api_events = [e["event_action"] for e in pagerduty.events if e["dedup_key"] == "api:host=vps"]
    assert api_events == ["trigger", "acknowledge", "resolve", "trigger"]
