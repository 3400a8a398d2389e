"""An Alertmanager storm through the real watch (plainly: store, outbox, PagerDuty fake) against
a real Alertmanager: 25 alerts of one alertname opening in one run page once, as one group; an
alert opening alone afterwards pages on its own; the group resolves once its alerts end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.core.incidents import State
from fleet_alerting.core.keys import incident_key
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.servers import start_alertmanager
from tests.test_alertmanager import AM_CONFIG, iso
from tests.test_odd_answers import incidents

STORM = 25  # above grouping.ungrouped_storm (20)
GROUP = incident_key("group/alertmanager", {"alertname": "HostDown", "severity": "critical"})


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    server, url = start_alertmanager(tmp_path / "alertmanager", AM_CONFIG)
    yield url
    server.stop()


def post(url: str, alertname: str, hosts: range, ended: bool = False) -> None:
    now = datetime.now(UTC)
    alerts = [
        {
            "labels": {"alertname": alertname, "severity": "critical", "instance": f"pi-{i:03}"},
            "annotations": {"summary": f"pi-{i:03} is down"},
            "startsAt": iso(now - timedelta(minutes=10)),
        }
        | ({"endsAt": iso(now - timedelta(seconds=1))} if ended else {})
        for i in hosts
    ]
    httpx.post(f"{url}/api/v2/alerts", json=alerts).raise_for_status()


def write_config(path: Path, am: str, slack: SlackWebhookServer, pd: PagerDutyServer) -> None:
    """Critical alerts told in Slack and paged at once; the shipped grouping."""
    (path.parent / "slack.url").write_text(f"{slack.url}/services/T000/B000/XXXX")
    (path.parent / "pd.key").write_text("P" * 32)
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "slack": {"webhook": {"file": "slack.url"}},
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd.url}/v2/enqueue"},
        },
        "policies": {"critical": {"page_after": "0s", "mirror": False, "repeat": None}},
        "alertmanager": {
            "url": am,
            "rules": [{"name": "critical", "matchers": ['severity="critical"']}],
            # no Watchdog rule, and an Alertmanager started just now: an absent alert is over
            "watchdog": None,
            "restart_grace": "0s",
        },
    }
    path.write_text(yaml.safe_dump(config))


def pages(pd: PagerDutyServer) -> list[tuple[str, str]]:
    return [(e["event_action"], e["dedup_key"]) for e in pd.events]


def test_a_storm_pages_once_as_a_group_and_a_later_alert_alone(
    alertmanager: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    def watch() -> None:
        asyncio.run(alertmanager_escalation.fn(str(config_file)))

    post(alertmanager, "HostDown", range(STORM))
    with PagerDutyServer() as pd, SlackWebhookServer() as slack:
        write_config(config_file, alertmanager, slack, pd)
        watch()
        assert pages(pd) == [("trigger", GROUP)]
        told = [m["text"] for m in slack.messages]
        assert len(told) == 2 and f"{STORM} alertmanager incidents failing" in told[0], told
        watch()
        assert pages(pd) == [("trigger", GROUP)]  # nothing repeated
        post(alertmanager, "FanFailed", range(1))
        watch()
        (fan,) = [
            i
            for i in incidents(config_file).values()
            if i.signal.labels.get("alertname") == "FanFailed"
        ]
        assert pages(pd) == [("trigger", GROUP), ("trigger", fan.key)]
        post(alertmanager, "HostDown", range(STORM), ended=True)
        watch()
        assert pages(pd) == [("trigger", GROUP), ("trigger", fan.key), ("resolve", GROUP)]
    now = incidents(config_file)
    members = [i for i in now.values() if i.signal.labels.get("alertname") == "HostDown"]
    assert len(members) == STORM and {m.group for m in members} == {GROUP}
    assert {m.state for m in members} == {State.resolved} and now[GROUP].paged_at is not None
    assert fan.group is None and now[fan.key].state == State.paged
