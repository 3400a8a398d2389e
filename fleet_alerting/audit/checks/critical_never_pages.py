"""An alert expected to page (critical by default) reaches no paging receiver."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import expectation, paging_problems, receivers, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "critical-never-pages"
TITLE = "Critical alerts that never page"
WHY = (
    "An alert expected to page that reaches no paging receiver wakes nobody: the outage is "
    "found by users."
)
FIX = (
    'Route `severity="critical"` to a paging receiver that exists and has a pager integration '
    "(see the paging-receiver check first)."
)


def check(inp: AuditInput) -> list[Finding]:
    paging = inp.expectations.paging_receivers
    broken = paging_problems(inp)
    able = paging - set(broken)  # declared, existing, with a pager integration
    if not paging:
        cause = "root cause: no paging receiver is declared"
    elif not able:
        cause = "root cause: " + "; ".join(
            f"{n} {'does not exist' if p == 'missing' else 'has no pager integration'}"
            for n, p in broken.items()
        )
    else:
        cause = f"able to page: {', '.join(sorted(able))}"
    out = []
    for rule, routes in routed(inp):
        got = receivers(routes)
        if expectation(inp, rule).pages is True and not able.intersection(got):
            out.append(
                Finding(
                    CHECK_ID,
                    "error",
                    rule.name,
                    ",".join(r.id for r in routes),
                    ",".join(got),
                    f"expected to page but only reaches {', '.join(got)}; {cause} ({rule.where})",
                )
            )
    return out
