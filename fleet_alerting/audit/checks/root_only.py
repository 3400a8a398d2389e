"""An alert that matches no child route falls through to the root receiver only."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "root-only"
TITLE = "Alerts that only reach the root (default) receiver"
WHY = (
    "An alert that matches no route lands in the catch-all receiver, which usually nobody "
    "watches for it."
)
FIX = "Give the alert a severity/team label a route matches, or add a route for it."


def check(inp: AuditInput) -> list[Finding]:
    root = inp.am.route
    return [
        Finding(
            CHECK_ID,
            "warning",
            rule.name,
            root.id,
            root.opts.receiver,
            f"matches no route below the root; only the default receiver "
            f"{root.opts.receiver} is told ({rule.where})",
        )
        for rule, routes in routed(inp)
        if routes == [root] and root.routes
    ]
