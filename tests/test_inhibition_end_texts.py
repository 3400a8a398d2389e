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


Spec = tuple[str, str, Severity]  # source, the failing thing's name, severity


def signal(spec: Spec, fail: bool) -> Signal:
    source, name, severity = spec
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


def released(
    fakes: tuple[SlackWebhookServer, PagerDutyServer],
    tmp_path: Path,
    symptom: Spec,
    cause: Spec,
) -> list[str]:
    """The symptom fails alone (told, paged if critical), then its cause fails too (inhibited),
    then the cause clears while the symptom still fails: what Slack heard at that last run
    (one more run after it adds nothing)."""
    slack, pagerduty = fakes
    config = write_config(tmp_path, slack.url, pagerduty.url)
    failing, cleared = signal(symptom, True), signal(cause, False)
    run(config, [failing], 0)
    run(config, [signal(cause, True), failing], 1)
    told = len(slack.messages)
    run(config, [cleared, failing], 2)
    texts = [m["text"] for m in slack.messages[told:]]
    run(config, [cleared, failing], 3)
    assert len(slack.messages) == told + len(texts)  # once
    return texts


@pytest.mark.parametrize(
    ("symptom", "cause", "said", "paged"),
    [
        pytest.param(
            ("blackbox", "pi-0", Severity.warning),
            ("blackbox", "fleet-api", Severity.critical),
            f"[WARNING] Still failing after 2m00s: pi-0 down (was inhibited by {API}, which has",
            [],
            id="a device told before the API failed",
        ),
        pytest.param(
            ("api", "vps", Severity.critical),
            ("vps", "vps", Severity.critical),
            "[CRITICAL] Paged pagerduty: failing for 2m00s: vps down (was inhibited by vps:host=",
            ["trigger", "acknowledge", "resolve", "trigger"],  # its page acknowledged, again
            id="a paged symptom, paged again",
        ),
    ],
)
def test_the_inhibition_end_is_said_in_slack(
    fakes: tuple[SlackWebhookServer, PagerDutyServer],
    tmp_path: Path,
    symptom: Spec,
    cause: Spec,
    said: str,
    paged: list[str],
) -> None:
    texts = released(fakes, tmp_path, symptom, cause)
    assert len(texts) == 2 and texts[0].startswith("[RESOLVED after 1m00s] ")
    assert texts[1].startswith(said), texts
    key = signal(symptom, True).key
    assert [e["event_action"] for e in fakes[1].events if e["dedup_key"] == key] == paged
