"""An alert that fired very often and resolved quickly: flapping; its `for:` is too short."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet_alerting.audit.checks._common import per_noisy_alert
from fleet_alerting.audit.model import AuditInput, Finding

if TYPE_CHECKING:
    from fleet_alerting.audit.noise import NoiseStats

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
    return per_noisy_alert(inp, CHECK_ID, _flapping)


def _flapping(noise: NoiseStats, r: Any) -> tuple[str, str] | None:
    th = noise.thresholds
    flapping = r.fires >= th.flapping_fires and r.median_resolve_min <= th.flapping_median_minutes
    if not flapping:
        return None
    return (
        "warning",
        f"fired {r.fires} times in the period, median {r.median_resolve_min:.1f} min to resolve, "
        f"{r.flaps} flaps: flapping (raise `for:`)",
    )
