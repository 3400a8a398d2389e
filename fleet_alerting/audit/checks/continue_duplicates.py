"""A `continue` chain that notifies one receiver twice for the same alert."""

from __future__ import annotations

from collections import Counter

from fleet_alerting.audit.checks._common import receivers, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "duplicate-notification"
TITLE = "The same receiver is notified twice for one alert"
WHY = (
    "`continue: true` chains that reach one receiver through two routes send every notification"
    " twice; people learn to ignore duplicates."
)
FIX = (
    "Drop `continue` on the earlier route, or make the later route's matchers exclude what the "
    "earlier one already sent."
)


def check(inp: AuditInput) -> list[Finding]:
    out = []
    for rule, routes in routed(inp):
        for receiver, n in Counter(receivers(routes)).items():
            if n > 1:
                paths = ",".join(r.id for r in routes if r.opts.receiver == receiver)
                out.append(
                    Finding(
                        CHECK_ID,
                        "warning",
                        rule.name,
                        paths,
                        receiver,
                        f"notified {n} times through routes {paths} ({rule.where})",
                    )
                )
    return out
