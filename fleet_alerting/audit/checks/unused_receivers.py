"""Receivers that no route names."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "unused-receiver"
TITLE = "Receivers no route uses"
WHY = "An unused receiver is configuration (and maybe credentials) kept for nothing."
FIX = "Delete it, or route the alerts that were meant for it."


def check(inp: AuditInput) -> list[Finding]:
    used = {r.opts.receiver for r in inp.am.route.walk()}
    return [
        Finding(CHECK_ID, "warning", receiver=name, message=f"receiver {name} is used by no route")
        for name in inp.am.receivers
        if name not in used
    ]
