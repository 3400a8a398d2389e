"""Routes no alert rule reaches (judged on the labels the rules set themselves)."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import describe, route_finding, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "unreachable-route"
TITLE = "Routes no alert rule reaches"
WHY = (
    "Routes that no rule's labels reach are either for alerts that no longer exist or for "
    "labels only series carry; both deserve a look."
)
FIX = (
    "Delete routes for alerts that are gone; for the rest, confirm the series labels that reach"
    " them."
)


def check(inp: AuditInput) -> list[Finding]:
    visited: set[str] = set()
    static_labels: set[str] = set()
    for rule, routes in routed(inp):
        static_labels.update(rule.routing_labels)
        for r in routes:
            parts = r.id.split("/")
            visited.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    out = []

    def visit(route, parent_visited: bool) -> None:  # type: ignore[no-untyped-def]
        for child in route.routes:
            if child.id in visited:
                visit(child, True)
                continue
            if not parent_visited:
                continue
            runtime = sorted({m.name for m in child.matchers} - static_labels)
            below = sum(1 for _ in child.walk()) - 1
            extra = f" (and {below} routes below it)" if below else ""
            if runtime:
                level = "info"
                said = f"no rule sets {', '.join(runtime)}; reachable only through series labels"
            else:
                level, said = "warning", "no alert rule reaches this route"
            out.append(route_finding(CHECK_ID, level, child, f"{describe(child)}{extra}: {said}"))

    visit(inp.am.route, True)
    return out
