"""Every check: a config that triggers it and one that does not (tests/audit/cases/checks.yaml)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.audit.checks import CHECKS, run_checks
from fleet_alerting.audit.checks.shadowed_routes import shadows
from fleet_alerting.audit.loader import expectations_from_dict, load_rule_text
from fleet_alerting.audit.model import AuditInput, Finding, PrometheusUnavailable, SecretFile
from fleet_alerting.routing import build_route, parse_config

DOC = yaml.safe_load((Path(__file__).parent / "cases" / "checks.yaml").read_text())
NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class FakeSeries:
    """A Prometheus that knows a fixed set of metric names and matching selectors."""

    def __init__(self, names: list[str], selectors: list[str]) -> None:
        self.names, self.selectors = set(names), set(selectors)

    def series_exists(self, selector: str) -> bool:
        return selector in self.selectors

    def metric_names(self) -> set[str]:
        return set(self.names)


class DownSeries:
    def series_exists(self, selector: str) -> bool:
        raise PrometheusUnavailable("connection refused")

    def metric_names(self) -> set[str]:
        raise PrometheusUnavailable("connection refused")


def build_input(overrides: dict) -> AuditInput:
    parts = {**DOC["base"], **overrides}
    rules_text = yaml.safe_dump({"groups": [{"name": "g", "rules": parts["rules"]}]})
    secret_files = [
        SecretFile(
            f["config_path"], f["path"], f["exists"], f["git_tracked"], f["mode"],
            NOW - timedelta(days=f["age_days"]),
        )
        for f in parts.get("secret_files", [])
    ]
    return AuditInput(
        am=parse_config(parts["am"]),
        rules=load_rule_text(rules_text, "t.rules.yml"),
        expectations=expectations_from_dict(parts["expectations"]),
        now=NOW,
        running=parse_config(parts["running"]) if parts.get("running") else None,
        secret_files=secret_files,
        series=FakeSeries(**parts["series"]),
        dashboards=parts["dashboards"],
    )


def ids(findings: list[Finding]) -> set[str]:
    return {f.check_id for f in findings}


def test_base_is_clean() -> None:
    assert run_checks(build_input({})) == []


def test_every_check_has_a_case() -> None:
    covered = {c["check"] for c in DOC["cases"]}
    assert {spec.id for spec in CHECKS} <= covered


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["check"] for c in DOC["cases"]])
def test_check_triggers_and_stays_quiet(case: dict) -> None:
    triggered = run_checks(build_input(case["trigger"]))
    assert case["check"] in ids(triggered), triggered
    quiet = run_checks(build_input(case.get("clean", {})))
    assert case["check"] not in ids(quiet), quiet
    for f in triggered:
        assert f.level in ("error", "warning", "info")


def test_inline_secret_value_never_appears() -> None:
    case = next(c for c in DOC["cases"] if c["check"] == "inline-secret")
    findings = run_checks(build_input(case["trigger"]))
    dumped = json.dumps([asdict(f) for f in findings])
    assert "routing_key_file" in dumped
    assert "CANARY-7f3a9c" not in dumped


def test_dead_selector_names_the_job_bug() -> None:
    case = next(c for c in DOC["cases"] if c["check"] == "dead-selector")
    [f] = [f for f in run_checks(build_input(case["trigger"])) if f.check_id == "dead-selector"]
    assert f.alert == "ApiDown"
    assert 'up{job="api"}' in f.message and "exists" in f.message


def test_online_checks_skip_with_a_note_when_prometheus_is_down() -> None:
    inp = build_input({})
    inp.series = DownSeries()
    findings = run_checks(inp)
    assert ids(findings) == {"online-skipped"}
    assert all("connection refused" in f.message for f in findings)
    inp.series = None
    assert ids(run_checks(inp)) == {"online-skipped"}


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        (['a="x"'], ['a="x"', 'b="y"'], True),
        (['a=~"x|y"'], ['a="y"'], True),
        (['a!="z"'], ['a="y"'], True),
        (['a!~"z.*"'], ['a="y"'], True),
        ([], ['a="y"'], True),
        (['a=~".*"'], ['b="y"'], True),
        (['a="x"'], ['a=~"x|y"'], False),
        (['a="x"'], ['b="x"'], False),
        (['a=~"x.*"'], ['a=~"x.+"'], False),  # true in fact, but not proven: stay quiet
    ],
)
def test_shadowing_is_proven_not_guessed(earlier: list, later: list, expected: bool) -> None:
    e = build_route({"matchers": earlier, "receiver": "r"})
    la = build_route({"matchers": later, "receiver": "r"})
    assert shadows(e, la) is expected
    e.continue_ = True
    assert shadows(e, la) is False
