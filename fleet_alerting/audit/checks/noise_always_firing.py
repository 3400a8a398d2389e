"""An alert that is firing for a large share of the period is broken or ignored."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

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
    if inp.noise is None:
        return []
    limit = inp.noise.thresholds.always_firing_share
    return [
        Finding(
            CHECK_ID,
            "error" if r.severity == "critical" else "warning",
            r.alert,
            message=f"firing {r.firing_share:.0%} of the period ({r.firing_hours:.0f} h): "
            "broken or ignored",
            subject=r.severity,
        )
        for r in inp.noise.alerts.itertuples()
        if r.firing_share > limit
    ]
