"""A critical alert rule that never fired in the period: its path to a pager is untested."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "noise-never-fired"
NOISE = True
TITLE = "Critical alerts that never fired"
WHY = (
    "A critical rule that never fired has never been seen to reach a person: its expression, "
    "routing and pager integration are untested."
)
FIX = (
    "Test the path once (e.g. a drill with `amtool alert add` or a temporary rule), and check "
    "that its selector matches series (the dead-selector check)."
)


def check(inp: AuditInput) -> list[Finding]:
    if inp.noise is None:
        return []
    days = inp.noise.seconds / 86400
    return [
        Finding(
            CHECK_ID,
            "info",
            r.alert,
            message=f"never fired in the last {days:.0f} days: the path to the pager is untested",
            subject=r.severity,
        )
        for r in inp.noise.alerts.itertuples()
        if r.severity == "critical" and r.fires == 0
    ]
