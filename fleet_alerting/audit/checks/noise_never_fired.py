"""A critical alert rule that never fired in the period: its path to a pager is untested."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet_alerting.audit.checks._common import per_noisy_alert
from fleet_alerting.audit.model import AuditInput, Finding

if TYPE_CHECKING:
    from fleet_alerting.audit.noise import NoiseStats

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
    return per_noisy_alert(inp, CHECK_ID, _never_fired)


def _never_fired(noise: NoiseStats, r: Any) -> tuple[str, str] | None:
    if not (r.severity == "critical" and r.fires == 0):
        return None
    days = noise.seconds / 86400
    return ("info", f"never fired in the last {days:.0f} days: the path to the pager is untested")
