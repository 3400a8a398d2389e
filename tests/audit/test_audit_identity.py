"""A finding's identity across quarters: every check, two quarters, an exact diff."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import CHECK_CASES, build_input

from fleet_alerting.audit.checks import run_checks
from fleet_alerting.audit.model import Finding
from fleet_alerting.audit.report import write_report
from fleet_alerting.audit.run import run_audit

CASES = CHECK_CASES["cases"]
Q1, Q2 = datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 4, 1, 9, tzinfo=UTC)


def _quarter(overrides: dict, now: datetime, out: Path) -> dict:
    inp = build_input(overrides)
    inp.now = now
    return write_report(run_audit(inp), out).summary


@pytest.mark.parametrize("case", CASES, ids=[c["check"] for c in CASES])
def test_no_two_findings_share_an_identity(case: dict) -> None:
    findings = run_checks(build_input(case["trigger"]))
    dupes = [k for k, n in Counter(f.key for f in findings).items() if n > 1]
    assert dupes == []


@pytest.mark.parametrize("case", CASES, ids=[c["check"] for c in CASES])
def test_two_quarters_per_check(case: dict, tmp_path: Path) -> None:
    """Triggered in Q1 and fixed in Q2: every finding is listed as fixed, none as new or open;
    triggered in both: every finding is open, counted once each."""
    n = len(run_checks(build_input(case["trigger"])))
    _quarter(case["trigger"], Q1, tmp_path / "fixed")
    s = _quarter(case.get("clean", {}), Q2, tmp_path / "fixed")
    assert (s["fixed"], s["new"], s["open"]) == (n, 0, 0)
    _quarter(case["trigger"], Q1, tmp_path / "open")
    s = _quarter(case["trigger"], Q2, tmp_path / "open")
    assert (s["fixed"], s["new"], s["open"]) == (0, 0, n)
    _quarter(case.get("clean", {}), Q1, tmp_path / "new")
    s = _quarter(case["trigger"], Q2, tmp_path / "new")
    assert (s["fixed"], s["new"], s["open"]) == (0, n, 0)


def test_metrics_are_distinct_findings(tmp_path: Path) -> None:
    """Three uncovered metrics are three findings; one getting covered is listed as fixed."""
    series = {"names": ["up", "node_load1", "a_total", "b_total", "c_total"], "selectors": []}
    series["selectors"] = ['up{job="fleet-api"}', "node_load1", "c_total"]
    before = {"series": series}
    q1 = _quarter(before, Q1, tmp_path)
    assert q1["by_check"]["uncovered-metric"] == 3
    rules = [
        *CHECK_CASES["base"]["rules"],
        {"alert": "C", "expr": "c_total > 0", "labels": {"severity": "warning"}},
    ]
    rules[-1]["annotations"] = {"summary": "s", "runbook_url": "r"}
    _quarter({"series": series, "rules": rules}, Q2, tmp_path)
    comp = (tmp_path / "2026-Q2" / "comparison.csv").read_text()
    rows = [r for r in comp.splitlines() if "uncovered-metric" in r]
    assert sorted(r.split(",")[0] for r in rows) == ["fixed", "open", "open"]
    assert any(r.startswith("fixed") and "c_total" in r for r in rows)


def test_both_online_notes_are_kept() -> None:
    inp = build_input({})
    inp.series = None
    notes = [f for f in run_checks(inp) if f.check_id == "online-skipped"]
    assert sorted(f.subject for f in notes) == ["dead-selector", "noise", "uncovered-metric"]
    assert len({f.key for f in notes}) == 3


def test_missing_annotations_are_one_finding_each() -> None:
    rule = {"alert": "X", "expr": "up == 0", "labels": {"severity": "warning"}}
    findings = run_checks(build_input({"rules": [*CHECK_CASES["base"]["rules"], rule]}))
    missing = sorted(f.subject for f in findings if f.check_id == "missing-annotation")
    assert missing == ["runbook_url", "summary"]


def test_old_findings_json_without_subject_still_compares(tmp_path: Path) -> None:
    from fleet_alerting.audit.report import compare

    old = Finding("unused-receiver", "warning", receiver="x").__dict__.copy()
    del old["subject"]
    df = compare([Finding("unused-receiver", "warning", receiver="x")], [old])
    assert list(df["status"]) == ["open"]


@pytest.mark.parametrize(
    ("receivers", "paging", "problem", "cause"),
    [
        ([{"name": "slack"}, {"name": "pd"}], ["pd"], "no-pager-config", "pd has no pager"),
        ([{"name": "slack"}], ["pagerduty-fleet"], "missing", "pagerduty-fleet does not exist"),
    ],
)
def test_paging_receiver_is_the_root_cause(
    receivers: list, paging: list, problem: str, cause: str
) -> None:
    am = {
        "route": {
            "receiver": "slack",
            "group_by": ["alertname", "instance"],
            "routes": [{"matchers": ['severity="critical"'], "receiver": receivers[-1]["name"]}],
        },
        "receivers": receivers,
    }
    exp = {"paging_receivers": paging, "severities": {"critical": {"pages": True}}}
    findings = run_checks(build_input({"am": am, "expectations": exp}))
    [p] = [f for f in findings if f.check_id == "paging-receiver"]
    assert (p.level, p.subject, p.receiver) == ("error", problem, paging[0])
    [never] = [f for f in findings if f.check_id == "critical-never-pages"]
    assert f"root cause: {cause}" in never.message


def test_no_paging_receiver_declared() -> None:
    exp = {"severities": {"critical": {"pages": True}}}
    findings = run_checks(build_input({"expectations": exp}))
    [p] = [f for f in findings if f.check_id == "paging-receiver"]
    assert "no paging receiver is declared" in p.message
    [never] = [f for f in findings if f.check_id == "critical-never-pages"]
    assert "root cause: no paging receiver is declared" in never.message


def test_healthy_paging_receiver_is_quiet() -> None:
    # the base's pd receiver has pagerduty_configs
    assert [f for f in run_checks(build_input({})) if f.check_id == "paging-receiver"] == []
