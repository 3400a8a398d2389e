"""An alert expected not to page (warning/info by default) reaches a paging receiver."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import expectation, routed
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "warning-pages"
TITLE = "Warnings that page"
WHY = "Paging for warnings wakes people for things that can wait and teaches them to ignore pages."
FIX = (
    "Stop warning-level alerts at a non-paging receiver, or raise the alert to critical if it "
    "truly needs a person now."
)


def check(inp: AuditInput) -> list[Finding]:
    paging = inp.expectations.paging_receivers
    out = []
    for rule, routes in routed(inp):
        hits = [r for r in routes if r.opts.receiver in paging]
        if expectation(inp, rule).pages is False and hits:
            for r in hits:
                out.append(
                    Finding(
                        CHECK_ID,
                        "warning",
                        rule.name,
                        r.id,
                        r.opts.receiver,
                        f"severity {rule.labels.get('severity')!r} pages via {r.opts.receiver} "
                        f"({rule.where})",
                    )
                )
    return out
