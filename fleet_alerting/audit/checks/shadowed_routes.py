"""A route that can never match because an earlier sibling (without `continue`) takes
every alert it would take. Decided conservatively: only proven shadowing is reported."""

from __future__ import annotations

from fleet_alerting.alertmanager.routing import Matcher, Route
from fleet_alerting.audit.checks._common import describe, route_finding
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "shadowed-route"
TITLE = "Routes that can never match (shadowed by an earlier sibling)"
WHY = (
    "A route after a sibling that takes every alert it would take is dead configuration that "
    "reviewers trust."
)
FIX = (
    "Move the specific route before the general one, or add `continue: true` to the earlier "
    "one, or delete it."
)
_ALWAYS = {".*"}


def implied(e: Matcher, later: tuple[Matcher, ...]) -> bool:
    """True when every label set satisfying all of `later` satisfies `e`."""
    if e.op == "=~" and e.value in _ALWAYS:
        return True
    for m in later:
        if m.name != e.name:
            continue
        if (m.op, m.value) == (e.op, e.value):
            return True
        if m.op == "=":
            return e.matches({e.name: m.value})
    return False


def shadows(earlier: Route, later: Route) -> bool:
    return not earlier.continue_ and all(implied(e, later.matchers) for e in earlier.matchers)


def check(inp: AuditInput) -> list[Finding]:
    out = []
    for route in inp.am.route.walk():
        for j, later in enumerate(route.routes):
            for earlier in route.routes[:j]:
                if shadows(earlier, later):
                    said = f"{describe(later)} is shadowed by earlier sibling {earlier.id} "
                    said += describe(earlier)
                    out.append(route_finding(CHECK_ID, "warning", later, said))
                    break
    return out
