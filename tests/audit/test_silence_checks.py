"""The audit's checks of silences (matched nothing, longer than a week) and of closing words
(firing messages or pages never closed): tests/cases/silence_audit.yaml."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit.checks import run_checks
from fleet_alerting.audit.model import AuditInput, DeliveryRecord, Expectations, SilenceRecord

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "silence_audit.yaml").read_text())
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
CHECKS = ("silence-matched-nothing", "silence-longer-than-a-week", "never-closed")


def audit_input(case: dict[str, Any]) -> AuditInput:
    base = AuditInput(
        am=parse_config({"route": {"receiver": "a"}, "receivers": [{"name": "a"}]}),
        rules=[],
        expectations=Expectations(),
        now=NOW,
    )
    silences = [
        SilenceRecord(
            s["id"],
            tuple(s["matchers"]),
            NOW + timedelta(days=s["from"]),
            NOW + timedelta(days=s["to"]),
            "ana",
            "",
            s["muted"],
        )
        for s in case.get("silences", [])
    ]
    deliveries = [
        DeliveryRecord(d["key"], "e1", d["channel"], tuple(d["kinds"]), d["resolved"])
        for d in case.get("deliveries", [])
    ]
    return replace(base, silences=silences, deliveries=deliveries)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_silence_audit_table(case: dict[str, Any]) -> None:
    found = [f for f in run_checks(audit_input(case)) if f.check_id in CHECKS]
    assert sorted(f"{f.check_id}: {f.subject}" for f in found) == sorted(case["findings"])


def test_without_a_store_the_checks_are_silent() -> None:
    inp = audit_input({})
    assert [
        f for f in run_checks(replace(inp, silences=None, deliveries=None)) if f.check_id in CHECKS
    ] == []
