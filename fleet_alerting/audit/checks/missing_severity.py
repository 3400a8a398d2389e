"""An alert rule without a severity label cannot be routed by severity."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "missing-severity"
TITLE = "Alert rules without a severity label"
WHY = "Routing is by severity: an alert without one takes whatever path the fallbacks give it."
FIX = "Add `labels: {severity: critical|warning|info}` to the rule."


def check(inp: AuditInput) -> list[Finding]:
    return [
        Finding(CHECK_ID, "warning", r.name, message=f"no severity label ({r.where})")
        for r in inp.alert_rules
        if not r.labels.get("severity")
    ]
