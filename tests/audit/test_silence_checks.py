"""The audit's checks of silences (matched nothing, longer than a week) and of closing words
(firing messages or pages never closed): tests/cases/silence_audit.yaml, on the clean base of
cases/checks.yaml."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.audit.checks import run_checks
from tests.audit.audit_helpers import build_input

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "silence_audit.yaml").read_text())
CHECKS = ("silence-matched-nothing", "silence-longer-than-a-week", "never-closed")


def found(inp: Any) -> list[str]:
    return sorted(f"{f.check_id}: {f.subject}" for f in run_checks(inp) if f.check_id in CHECKS)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_silence_audit_table(case: dict[str, Any]) -> None:
    parts = {k: case[k] for k in ("silences", "deliveries") if k in case}
    assert found(build_input(parts)) == sorted(case["findings"])


def test_without_a_store_the_checks_are_silent() -> None:
    assert found(replace(build_input({}), silences=None, deliveries=None)) == []
