"""A paging alert that mostly resolved by itself within minutes is not page-worthy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleet_alerting.audit.checks._common import per_noisy_alert
from fleet_alerting.audit.model import AuditInput, Finding

if TYPE_CHECKING:
    from fleet_alerting.audit.noise import NoiseStats

CHECK_ID = "noise-page-autoresolves"
NOISE = True
TITLE = "Pages that resolve by themselves"
WHY = (
    "A page that is gone within minutes, before anyone could act, woke someone for nothing; "
    "repeated, it erodes trust in every page."
)
FIX = (
    "Lower it to warning (Slack), or lengthen `for:` so only failures that persist page; "
    "keep paging for what needs a person now."
)


def check(inp: AuditInput) -> list[Finding]:
    return per_noisy_alert(inp, CHECK_ID, _autoresolves)


def _autoresolves(noise: NoiseStats, r: Any) -> tuple[str, str] | None:
    th = noise.thresholds
    if r.pages < th.autoresolve_min_fires:
        return None
    quick = noise.quick_resolves.get((r.alert, r.severity), 0)
    if not quick / r.fires > th.autoresolve_share:
        return None
    return (
        "warning",
        f"paged {r.pages} times; {quick} of {r.fires} fires resolved within "
        f"{th.autoresolve_minutes:g} min by themselves: not page-worthy",
    )
