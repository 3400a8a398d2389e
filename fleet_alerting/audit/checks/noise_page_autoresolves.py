"""A paging alert that mostly resolved by itself within minutes is not page-worthy."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

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
    if inp.noise is None:
        return []
    th = inp.noise.thresholds
    out = []
    for r in inp.noise.alerts.itertuples():
        if r.pages < th.autoresolve_min_fires:
            continue
        quick = inp.noise.quick_resolves.get((r.alert, r.severity), 0)
        if quick / r.fires > th.autoresolve_share:
            out.append(
                Finding(
                    CHECK_ID,
                    "warning",
                    r.alert,
                    message=f"paged {r.pages} times; {quick} of {r.fires} fires resolved within "
                    f"{th.autoresolve_minutes:g} min by themselves: not page-worthy",
                    subject=r.severity,
                )
            )
    return out
