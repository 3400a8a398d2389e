"""Online checks against a real Prometheus (scraping itself as job `fleet-api`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import yaml

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit.checks import run_checks
from fleet_alerting.audit.live import PrometheusSeries
from fleet_alerting.audit.loader import expectations_from_dict, load_rule_text
from fleet_alerting.audit.model import AuditInput

pytestmark = pytest.mark.integration

RULES = [
    {"alert": "ApiDown", "expr": 'up{job="api"} == 0', "labels": {"severity": "critical"}},
    {
        "alert": "ApiDownFixed",
        "expr": 'up{job="fleet-api"} == 0',
        "labels": {"severity": "critical"},
    },
    {"alert": "Ghost", "expr": "fleet_ghost_metric_total > 1", "labels": {"severity": "warning"}},
    {
        "alert": "Heap",
        "expr": "sum by (job) (go_memstats_heap_inuse_bytes) > 1e12",
        "labels": {"severity": "warning"},
    },
]


def make_input(series: PrometheusSeries, dashboards: dict | None = None) -> AuditInput:
    return AuditInput(
        am=parse_config({"route": {"receiver": "r"}, "receivers": [{"name": "r"}]}),
        rules=load_rule_text(yaml.safe_dump({"groups": [{"name": "g", "rules": RULES}]}), "t.yml"),
        expectations=replace(expectations_from_dict({}), coverage_ignore=("^prometheus_",)),
        now=datetime(2026, 1, 1, tzinfo=UTC),
        series=series,
        dashboards=dashboards,
    )


def test_dead_selectors_flag_the_wrong_job(prometheus_url: str) -> None:
    findings = [
        f
        for f in run_checks(make_input(PrometheusSeries(prometheus_url)))
        if f.check_id == "dead-selector"
    ]
    by_alert = {f.alert: f.message for f in findings}
    assert set(by_alert) == {"ApiDown", "Ghost"}
    assert 'up{job="api"}' in by_alert["ApiDown"] and "metric up exists" in by_alert["ApiDown"]
    assert "no such metric" in by_alert["Ghost"]


def test_coverage_against_real_metrics(prometheus_url: str) -> None:
    target = {"expr": "rate(go_gc_duration_seconds_count[5m])"}
    dashboards = {"d.json": {"panels": [{"targets": [target]}]}}
    findings = run_checks(make_input(PrometheusSeries(prometheus_url), dashboards))
    uncovered = {f.message.split()[0] for f in findings if f.check_id == "uncovered-metric"}
    undashboarded = {f.message.split()[0] for f in findings if f.check_id == "undashboarded-metric"}
    assert "go_goroutines" in uncovered
    assert "up" not in uncovered and "go_memstats_heap_inuse_bytes" not in uncovered
    assert not any(m.startswith("prometheus_") for m in uncovered)
    assert "go_gc_duration_seconds_count" not in undashboarded
    assert "go_goroutines" in undashboarded


def test_unreachable_prometheus_is_a_note_not_a_crash(closed_url: str) -> None:
    series = PrometheusSeries(closed_url, timeout=1)
    findings = run_checks(make_input(series))
    skipped = [f for f in findings if f.check_id == "online-skipped"]
    assert len(skipped) == 2
    assert all("unreachable" in f.message for f in skipped)
    assert not [f for f in findings if f.check_id in ("dead-selector", "uncovered-metric")]


def test_example_fleet_rules_flag_api_down(prometheus_url: str) -> None:
    from audit_helpers import REPO

    from fleet_alerting.audit.live import gather_inputs

    inp = gather_inputs(
        alertmanager_file=str(REPO / "config/audit/alertmanager.yml"),
        rules_glob=str(REPO / "config/audit/rules/*.yml"),
        expectations_file=str(REPO / "config/audit/expectations.yaml"),
        now=datetime(2026, 4, 1, tzinfo=UTC),
        prometheus_url=prometheus_url,
    )
    dead = {f.alert: f.message for f in run_checks(inp) if f.check_id == "dead-selector"}
    assert "metric up exists" in dead["ApiDown"]
    # this Prometheus exports none of the Fleet's own metrics
    assert "no such metric" in dead["CircuitBreakerOpen"]
