"""Report files, quarter directories and the comparison with the previous quarter."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from fleet_alerting.audit.loader import load_alertmanager_text, load_expectations, load_rules
from fleet_alerting.audit.matrix import escalation_matrix, routing_matrix
from fleet_alerting.audit.model import AuditInput, Finding
from fleet_alerting.audit.report import compare, markdown_table, quarter_label, write_report
from fleet_alerting.audit.run import run_audit

REPO = Path(__file__).resolve().parents[2]
AM_TEXT = (REPO / "config/audit/alertmanager.yml").read_text()


def make_input(now: datetime, am_text: str = AM_TEXT) -> AuditInput:
    return AuditInput(
        am=load_alertmanager_text(am_text, "alertmanager.yml"),
        rules=load_rules(str(REPO / "config/audit/rules/*.yml")),
        expectations=load_expectations(REPO / "config/audit/expectations.yaml"),
        now=now,
    )


@pytest.mark.parametrize(
    ("iso", "label"),
    [
        ("2026-01-01T09:00:00", "2026-Q1"),
        ("2026-03-31T23:59:00", "2026-Q1"),
        ("2026-04-01T00:00:00", "2026-Q2"),
        ("2026-12-31T00:00:00", "2026-Q4"),
    ],
)
def test_quarter_label(iso: str, label: str) -> None:
    assert quarter_label(datetime.fromisoformat(iso)) == label


def test_compare_new_open_fixed() -> None:
    a = Finding("c", "error", "A", message="old wording")
    b = Finding("c", "warning", "B")
    c = Finding("c", "warning", "C")
    prev = [{**a.__dict__, "message": "older wording"}, b.__dict__]
    df = compare([a, c], prev)
    assert dict(zip(df["alert"], df["status"], strict=True)) == {
        "A": "open",
        "C": "new",
        "B": "fixed",
    }
    assert compare([a], None).empty


def test_two_quarters_compare(tmp_path: Path) -> None:
    q1 = write_report(run_audit(make_input(datetime(2026, 1, 1, 9, tzinfo=UTC))), tmp_path)
    assert q1.directory == tmp_path / "2026-Q1"
    assert q1.summary["previous_quarter"] is None
    # next quarter: the unused receiver was removed, a new inline secret appeared
    fixed = AM_TEXT.replace(
        "  - name: email-legacy\n    email_configs:\n      - to: ops@example.invalid\n", ""
    )
    fixed = fixed.replace(
        "routing_key_file: /etc/alertmanager/secrets/pagerduty-routing-key",
        "routing_key: CANARY-d41d8cd9",
    )
    assert fixed != AM_TEXT
    q2 = write_report(run_audit(make_input(datetime(2026, 4, 1, 9, tzinfo=UTC), fixed)), tmp_path)
    s = q2.summary
    assert s["previous_quarter"] == "2026-Q1"
    assert s["fixed"] >= 1 and s["new"] >= 1 and s["open"] >= 5
    comp = pd.read_csv(q2.directory / "comparison.csv")
    assert "unused-receiver" in set(comp[comp.status == "fixed"].check_id)
    assert "inline-secret" in set(comp[comp.status == "new"].check_id)
    for f in q2.directory.rglob("*"):
        if f.is_file():
            assert "CANARY-d41d8cd9" not in f.read_text(), f


def test_report_files_and_html_is_self_contained(tmp_path: Path) -> None:
    w = write_report(run_audit(make_input(datetime(2026, 7, 1, tzinfo=UTC))), tmp_path)
    html = (w.directory / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<style>" in html
    assert "src=" not in html and "<link" not in html and "<script" not in html
    assert '<span class="warning">warning</span>' in html
    md = (w.directory / "report.md").read_text()
    assert "## Routing matrix" in md and "## Escalation matrix" in md
    assert "## Routes that can never match (shadowed by an earlier sibling)" in md
    assert "**How to fix:**" in md and "**Contents:**" in md
    data = json.loads((w.directory / "findings.json").read_text())
    assert data["quarter"] == "2026-Q3" and len(data["findings"]) == w.summary["findings"]
    assert (w.directory / "checks" / "inline-secret.csv").is_file()


def test_routing_and_escalation_matrices() -> None:
    inp = make_input(datetime(2026, 1, 1, tzinfo=UTC))
    rm = routing_matrix(inp.am, inp.rules)
    assert rm.loc["ApiDown [critical]", "grafana-oncall"] == 1
    assert rm.loc["ApiDown [critical]", "pagerduty-critical"] == 1
    assert rm.loc["RoleAgentFailure [warning]", "pagerduty-critical"] == 0
    assert rm["email-legacy"].sum() == 0
    em = escalation_matrix(inp.am, inp.rules, inp.expectations)
    pd_row = em[(em.severity == "critical") & (em.receiver == "pagerduty-critical")].iloc[0]
    assert bool(pd_row.pages) and pd_row.group_wait == "10s" and pd_row.repeat_interval == "1h"
    warn = em[em.severity == "warning"]
    assert not warn.pages.any()
    assert set(warn.receiver) == {"slack-secondary", "slack-operations"}


def test_markdown_table_escapes_pipes() -> None:
    df = pd.DataFrame([{"a": "x|y", "b": 1}])
    assert markdown_table(df) == "| a | b |\n| --- | --- |\n| x\\|y | 1 |\n"
