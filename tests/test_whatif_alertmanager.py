"""What-if for Alertmanager's alerts: the period's firing episodes from `ALERTS` samples (as the
Prometheus API returns them), escalated by our engine (the escalation flow's policies) and routed
through the current and a proposed alertmanager.yml."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit.synth import alert_history
from fleet_alerting.audit.whatif import Comparison, alert_episodes, replay, route, with_alerts
from fleet_alerting.audit.whatif_report import build, render
from fleet_alerting.config import load_config
from fleet_alerting.core.history import History

START = datetime(2026, 11, 2, tzinfo=UTC)
END = START + timedelta(days=7)
ALERTS = [
    {"alert": "FleetOffline", "severity": "critical", "fires": 3, "minutes": 20},
    {"alert": "ApiDown", "severity": "critical", "fires": 2, "minutes": 3},
    {"alert": "DeviceDown", "severity": "warning", "fires": 10, "minutes": 10},
]


def routes(critical_receiver: str) -> dict:
    return {
        "route": {
            "receiver": "slack",
            "routes": [{"matchers": ['severity="critical"'], "receiver": critical_receiver}],
        },
        "receivers": [
            {"name": "slack", "slack_configs": [{"channel": "#ops"}]},
            {"name": "pager", "pagerduty_configs": [{"routing_key": "x"}]},
        ],
    }


def config(tmp_path: Path, name: str, page_after: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "notify": {"dry_run": True},
                "alertmanager": {"url": "http://127.0.0.1:9093"},
                "policies": {"critical": {"page_after": page_after}},
            }
        )
    )
    return load_config(path)


def test_alerts_escalate_and_route_through_both_configurations(tmp_path: Path) -> None:
    firing, for_state = alert_history(ALERTS, START.timestamp(), END.timestamp())
    episodes = alert_episodes(firing, for_state)
    assert len(episodes) == 15
    empty = History(START, END, [], [])
    current, proposed = config(tmp_path, "current", "5m"), config(tmp_path, "proposed", "10m")
    routed = route(episodes, parse_config(routes("pager")), parse_config(routes("slack")))
    comparison = Comparison.of(
        replay(with_alerts(empty, episodes, current), current, "current.yaml"),
        replay(with_alerts(empty, episodes, proposed), proposed, "proposed.yaml"),
        routed,
    )
    # escalated: criticals only (the default escalation rule), paged 5 min after their onset;
    # the 3-minute ApiDown fires never reach it
    paged = [e for e in comparison.before.values() if e.paged_at is not None]
    assert len(paged) == 3 and {e.alert for e in paged} == {"FleetOffline"}
    assert {e.to_page for e in paged} == {timedelta(minutes=5)}
    assert [s.delay for s in comparison.delayed()] == [timedelta(minutes=5)] * 3
    # routed: every critical episode paged through Alertmanager before, none after
    assert len(comparison.unrouted_pages()) == 5
    gate = comparison.blocking([])
    assert len(gate) == 5 and {s.episode.alert for s in gate} == {"FleetOffline", "ApiDown"}
    markdown, _ = render(
        build(comparison, current.review.business_hours, START, END, [], False), "x"
    )
    section = markdown.split("## Alertmanager routes", 1)[1]
    assert "| pager | 5 | 0 |" in section
    assert "| slack | 10 | 15 |" in section
    assert section.count("| FleetOffline | critical |") == 3
