"""A `continue` chain that notifies one receiver twice for the same alert."""

from __future__ import annotations

from collections import Counter

from fleet_alerting.audit.checks._common import receivers, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "duplicate-notification"


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
