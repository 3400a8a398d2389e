"""Every check's findings for its cases in tests/audit/cases/checks.yaml, pinned whole: id,
level, where (alert, route, receiver, subject) and message, one snapshot file per check module
(tests/audit/snapshots/<module>.txt). A reworded message fails here until the snapshot is
rewritten (`UPDATE_SNAPSHOTS=1`) and the new wording read and committed."""

from __future__ import annotations

import difflib
import os
from functools import cache
from pathlib import Path

import pytest
from audit_helpers import CHECK_CASES, build_input

from fleet_alerting.audit.checks import CHECKS, CheckSpec, run_checks
from fleet_alerting.audit.model import AuditInput, Finding

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
SKIPPED = "online-skipped"  # run_checks' own note, not a check module's
WHERE = ("alert", "route_path", "receiver", "subject")


def module_of(spec: CheckSpec) -> str:
    return spec.func.__module__.rsplit(".", 1)[-1]


MODULES = sorted({module_of(spec) for spec in CHECKS})


@cache
def case_input(index: int, part: str) -> AuditInput:
    return build_input(CHECK_CASES["cases"][index].get(part, {}))


def render(finding: Finding) -> str:
    where = " ".join(f"{k}={getattr(finding, k)}" for k in WHERE if getattr(finding, k))
    return f"{finding.level} {finding.check_id} [{where}]: {finding.message}"


def snapshot(module: str) -> str:
    """The findings of the module's checks for each case of a check id it reports."""
    specs = tuple(spec for spec in CHECKS if module_of(spec) == module)
    lines = [f"# findings of audit/checks/{module}.py for its cases in cases/checks.yaml"]
    for index, case in enumerate(CHECK_CASES["cases"]):
        trigger, clean = (
            [f for f in run_checks(case_input(index, part), specs) if f.check_id != SKIPPED]
            for part in ("trigger", "clean")
        )
        if case["check"] not in {spec.id for spec in specs} | {f.check_id for f in trigger}:
            continue
        for part, findings in (("trigger", trigger), ("clean", clean)):
            lines += [f"== {case['check']}: {part}", *([render(f) for f in findings] or ["(none)"])]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("module", MODULES)
def test_findings_match_the_snapshot(module: str) -> None:
    path = SNAPSHOTS / f"{module}.txt"
    rendered = snapshot(module)
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(rendered)
    pinned = path.read_text() if path.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            pinned.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            str(path),
            "now",
        )
    )
    assert not diff, f"findings changed; read them, then UPDATE_SNAPSHOTS=1 rewrites:\n{diff}"


def test_every_snapshot_belongs_to_a_check_module() -> None:
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.txt")) == MODULES
