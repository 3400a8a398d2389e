"""An alert that fired very often and resolved quickly: flapping; its `for:` is too short."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "noise-flapping"
NOISE = True
TITLE = "Flapping alerts"
WHY = (
    "An alert that fires hundreds of times a quarter and clears within minutes trains people "
    "to ignore it, and hides the one time it matters."
)
FIX = (
    "Raise the rule's `for:` above the typical episode length, smooth the expression "
    "(`avg_over_time`, hysteresis), or lower its severity."
)


def check(inp: AuditInput) -> list[Finding]:
    if inp.noise is None:
        return []
    th = inp.noise.thresholds
    out = []
    for r in inp.noise.alerts.itertuples():
        if r.fires >= th.flapping_fires and r.median_resolve_min <= th.flapping_median_minutes:
            out.append(
                Finding(
                    CHECK_ID,
                    "warning",
                    r.alert,
                    message=f"fired {r.fires} times in the period, median "
                    f"{r.median_resolve_min:.1f} min to resolve, {r.flaps} flaps: flapping "
                    "(raise `for:`)",
                    subject=r.severity,
                )
            )
    return out
