"""Every declared paging receiver exists in alertmanager.yml and has a pager integration.

When none does, nothing can page: this is the root cause of every `critical-never-pages`."""

from __future__ import annotations

from fleet_alerting.audit.checks._common import PAGER_CONFIGS, paging_problems
from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "paging-receiver"
TITLE = "Paging receivers that cannot page"
WHY = (
    "Everything the audit says about paging assumes the declared paging receivers exist and "
    "have a pager integration; when none does, nothing pages at all."
)
FIX = (
    "Declare `paging_receivers` in the expectations, define them in alertmanager.yml with "
    "`pagerduty_configs` (or OnCall/Opsgenie/VictorOps/Pushover/webhook), and route critical "
    "alerts to them."
)


def check(inp: AuditInput) -> list[Finding]:
    declared = sorted(inp.expectations.paging_receivers)
    if not declared:
        return [
            Finding(
                CHECK_ID,
                "error",
                message="no paging receiver is declared (expectations: paging_receivers), so "
                "nothing can be checked to page",
                subject="none-declared",
            )
        ]
    out = []
    for name, problem in paging_problems(inp).items():
        if problem == "missing":
            msg = f"declared paging receiver {name} does not exist in {inp.am_source}"
        else:
            msg = (
                f"paging receiver {name} has no pager integration "
                f"({', '.join(PAGER_CONFIGS)}); it cannot page anyone"
            )
        out.append(Finding(CHECK_ID, "error", receiver=name, message=msg, subject=problem))
    return out
