"""An alert that is firing for a large share of the period is broken or ignored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet_alerting.audit.checks._common import per_noisy_alert
from fleet_alerting.audit.model import AuditInput, Finding

if TYPE_CHECKING:
    from fleet_alerting.audit.noise import NoiseStats

CHECK_ID = "noise-always-firing"
NOISE = True
TITLE = "Alerts that are always firing"
WHY = (
    "An alert firing for a fifth of the quarter or more is either wrong (a threshold, a dead "
    "target) or ignored; either way it no longer tells anyone anything."
)
FIX = (
    "Fix the cause or the threshold; if the condition is accepted, silence it with an expiry "
    "and a ticket, or delete the rule."
)


def check(inp: AuditInput) -> list[Finding]:
    return per_noisy_alert(inp, CHECK_ID, _always_firing)


def _always_firing(noise: NoiseStats, r: Any) -> tuple[str, str] | None:
    if not r.firing_share > noise.thresholds.always_firing_share:
        return None
    return (
        "error" if r.severity == "critical" else "warning",
        f"firing {r.firing_share:.0%} of the period ({r.firing_hours:.0f} h): broken or ignored",
    )
