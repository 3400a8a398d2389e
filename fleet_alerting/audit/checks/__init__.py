"""One check per module; each is a pure function `check(AuditInput) -> list[Finding]`."""

from __future__ import annotations

from dataclasses import dataclass

from fleet_alerting.audit.checks import (
    continue_duplicates,
    coverage,
    critical_never_pages,
    dead_selectors,
    drift,
    group_by,
    inline_secrets,
    missing_severity,
    paging_receivers,
    required_annotations,
    root_only,
    secret_files,
    severity_routing,
    shadowed_routes,
    unreachable_routes,
    unused_receivers,
    warning_pages,
)
from fleet_alerting.audit.model import AuditInput, Check, Finding


@dataclass(frozen=True)
class CheckSpec:
    id: str
    func: Check
    online: bool = False


CHECKS: tuple[CheckSpec, ...] = tuple(
    CheckSpec(m.CHECK_ID, m.check, getattr(m, "ONLINE", False))
    for m in (
        paging_receivers,
        severity_routing,
        critical_never_pages,
        warning_pages,
        missing_severity,
        root_only,
        unreachable_routes,
        shadowed_routes,
        continue_duplicates,
        required_annotations,
        inline_secrets,
        group_by,
        drift,
        unused_receivers,
        secret_files,
        dead_selectors,
        coverage,
    )
)


def run_checks(inp: AuditInput, checks: tuple[CheckSpec, ...] = CHECKS) -> list[Finding]:
    out: list[Finding] = []
    for spec in checks:
        if spec.online and inp.series is None:
            out.append(
                Finding(
                    "online-skipped",
                    "info",
                    message=f"{spec.id} skipped: no Prometheus URL given",
                    subject=spec.id,
                )
            )
            continue
        out.extend(spec.func(inp))
    return out
