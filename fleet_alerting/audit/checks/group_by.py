"""Routes that alerts reach whose group_by does not cover the required labels."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import describe, route_finding, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "group-by"
TITLE = "Routes that group different hosts into one notification"
WHY = (
    "Without `alertname` and `instance` in `group_by`, one notification hides which hosts fail "
    "and new hosts do not re-notify."
)
FIX = "Add the missing labels to the route's `group_by` (or `...`)."


def check(inp: AuditInput) -> list[Finding]:
    required = inp.expectations.required_group_by
    alerts: dict[str, list[str]] = {}
    routes = {}
    for rule, rs in routed(inp):
        for r in rs:
            alerts.setdefault(r.id, [])
            if rule.name not in alerts[r.id]:
                alerts[r.id].append(rule.name)
            routes[r.id] = r
    out = []
    for rid, route in routes.items():
        if route.opts.group_by_all:
            continue
        missing = [n for n in required if n not in route.opts.group_by]
        if missing:
            # the alerts are in the message, not the identity: the route is the subject
            said = (
                f"{describe(route)} groups by [{', '.join(sorted(route.opts.group_by))}]; "
                f"missing {', '.join(missing)} (alerts: {', '.join(alerts[rid])})"
            )
            out.append(route_finding(CHECK_ID, "warning", route, said))
    return out
