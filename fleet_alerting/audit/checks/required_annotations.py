"""Alert rules missing required annotations (summary, runbook_url, ...)."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "missing-annotation"
TITLE = "Alert rules without the required annotations"
WHY = (
    "A notification without a summary or a runbook link leaves the person on call to work out "
    "what broke and what to do."
)
FIX = "Add the missing annotations (`summary`, `runbook_url`) to each rule listed."


def check(inp: AuditInput) -> list[Finding]:
    out = []
    for rule in inp.alert_rules:
        for a in inp.expectations.annotations_for(rule):
            if not rule.annotations.get(a, "").strip():
                out.append(
                    Finding(
                        CHECK_ID,
                        "warning",
                        rule.name,
                        message=f"missing annotation {a} ({rule.where})",
                        subject=a,
                    )
                )
    return out
