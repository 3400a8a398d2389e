"""An alert expected to page (critical by default) reaches no paging receiver."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import expectation, receivers, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "critical-never-pages"


def check(inp: AuditInput) -> list[Finding]:
    paging = inp.expectations.paging_receivers
    out = []
    for rule, routes in routed(inp):
        got = receivers(routes)
        if expectation(inp, rule).pages is True and not paging.intersection(got):
            out.append(
                Finding(
                    CHECK_ID,
                    "error",
                    rule.name,
                    ",".join(r.id for r in routes),
                    ",".join(got),
                    f"expected to page but only reaches {', '.join(got)}; paging receivers: "
                    f"{', '.join(sorted(paging)) or '(none declared)'} ({rule.where})",
                )
            )
    return out
