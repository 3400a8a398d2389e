"""The audit as one pure call: inputs (already loaded) in, findings and tables out."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fleet_alerting.audit.checks import CHECKS, CheckSpec, run_checks
from fleet_alerting.audit.matrix import escalation_matrix, routing_matrix
from fleet_alerting.audit.model import AuditInput, Finding


@dataclass
class AuditResult:
    findings: list[Finding]
    routing: pd.DataFrame
    escalation: pd.DataFrame
    input: AuditInput


def run_audit(inp: AuditInput, checks: tuple[CheckSpec, ...] = CHECKS) -> AuditResult:
    return AuditResult(
        findings=run_checks(inp, checks),
        routing=routing_matrix(inp.am, inp.rules),
        escalation=escalation_matrix(inp.am, inp.rules, inp.expectations),
        input=inp,
    )
