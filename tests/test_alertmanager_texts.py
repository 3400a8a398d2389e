"""What operators read of an Alertmanager alert — the texts of its signal, stored with its incident
and shown in Slack, PagerDuty and listings — is pinned byte for byte on a table of alerts
(tests/cases/alertmanager_texts.yaml): odd label values, no host, silenced, inhibited, ended.
Both ways a signal is built (deferred, as a run builds thousands, and whole) read the same; a
deferred one knows its remediation before its texts are rendered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.config.schema import EscalationRule
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.signals import Signal
from fleet_alerting.sources.alertmanager import judge
from fleet_alerting.sources.alertmanager.shapes import Alert

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "alertmanager_texts.yaml").read_text())
NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
AM = "http://alertmanager.test:9093"


def alert_of(case: dict[str, Any]) -> Alert:
    given = case["alert"]
    return Alert(
        fingerprint=given.get("fingerprint", "0123456789abcdef"),
        labels=given["labels"],
        annotations=given.get("annotations", {}),
        starts_at=NOW - timedelta(minutes=10),
        ends_at=NOW + timedelta(minutes=given.get("ends_in_minutes", 5)),
        state=given.get("state", "active"),
        silenced_by=tuple(given.get("silenced_by", ())),
        inhibited_by=tuple(given.get("inhibited_by", ())),
        receivers=tuple(given.get("receivers", ())),
        generator_url=given.get("generator_url"),
    )


def read(signal: Signal) -> dict[str, Any]:
    return {
        "firing": signal.firing,
        "target": signal.target,
        "summary": signal.summary,
        "runbook_url": signal.runbook_url,
        "remediation": list(signal.remediation),
        "links": [[link.text, link.url] for link in signal.links],
        "evidence": signal.evidence,
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_an_alert_reads_as_pinned(case: dict[str, Any]) -> None:
    alert = alert_of(case)
    rule = EscalationRule(name=case.get("rule", "critical"), matchers=['severity="critical"'])
    links = LinksConfig(**case.get("links", {}))
    url = case.get("alertmanager_url", AM)
    [deferred] = judge.to_signals([(rule, [alert])], url, links)
    # known without rendering: a storm's group compares every member's
    assert list(deferred.remediation) == case["expected"]["remediation"]
    assert "_render" in deferred.__dict__
    whole = judge.to_signal(alert, rule, url, links)
    assert read(deferred) == case["expected"]
    assert read(whole) == case["expected"]
    assert (deferred.key, deferred.labels, deferred.since) == (whole.key, whole.labels, whole.since)
