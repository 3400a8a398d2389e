"""An alert rule without a severity label cannot be routed by severity."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "missing-severity"


def check(inp: AuditInput) -> list[Finding]:
    return [
        Finding(CHECK_ID, "warning", r.name, message=f"no severity label ({r.where})")
        for r in inp.alert_rules
        if not r.labels.get("severity")
    ]
