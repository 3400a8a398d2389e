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
    never_closed,
    noise_always_firing,
    noise_flapping,
    noise_never_fired,
    noise_page_autoresolves,
    paging_receivers,
    required_annotations,
    root_only,
    secret_files,
    severity_routing,
    shadowed_routes,
    silence_matched_nothing,
    silence_too_long,
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
    noise: bool = False  # needs the quarter's firing history (skipped silently without it)
    title: str = ""
    why: str = ""
    fix: str = ""


@dataclass(frozen=True)
class CheckDoc:
    """What a reader of the report needs about a check: a title, why it matters, how to fix."""

    title: str
    why: str
    fix: str


CHECKS: tuple[CheckSpec, ...] = tuple(
    CheckSpec(
        m.CHECK_ID,
        m.check,
        getattr(m, "ONLINE", False),
        getattr(m, "NOISE", False),
        m.TITLE,
        m.WHY,
        m.FIX,
    )
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
        noise_flapping,
        noise_page_autoresolves,
        noise_always_firing,
        noise_never_fired,
        silence_matched_nothing,
        silence_too_long,
        never_closed,
    )
)


DOCS: dict[str, CheckDoc] = {
    **{c.id: CheckDoc(c.title, c.why, c.fix) for c in CHECKS},
    coverage.DASHBOARD_CHECK_ID: CheckDoc(
        "Exported metrics that no dashboard shows",
        "A metric nobody can see on a dashboard is hard to use while an incident is going on.",
        "Add a panel for the metrics people need during incidents, or ignore the rest.",
    ),
    "online-skipped": CheckDoc(
        "Checks that could not run",
        "The checks against Prometheus (dead selectors, coverage) did not run, so their "
        "absence from this report says nothing; without it there are no noise statistics either.",
        "Run the audit with `--prometheus-url` pointing at the Prometheus that evaluates the "
        "rules.",
    ),
}
# a finding of the key check explains the findings of the value check: shown as its root cause
ROOT_CAUSES: dict[str, str] = {"paging-receiver": "critical-never-pages"}


def doc(check_id: str) -> CheckDoc:
    return DOCS.get(check_id, CheckDoc(check_id, "", ""))


def run_checks(inp: AuditInput, checks: tuple[CheckSpec, ...] = CHECKS) -> list[Finding]:
    out: list[Finding] = []
    why = inp.offline or "no Prometheus URL given"
    if inp.series is None and any(spec.noise for spec in checks):
        out.append(
            Finding(
                "online-skipped",
                "info",
                message=f"noise statistics skipped: {why}",
                subject="noise",
            )
        )
    for spec in checks:
        if spec.noise and inp.noise is None:
            continue
        if spec.online and inp.series is None:
            out.append(
                Finding(
                    "online-skipped",
                    "info",
                    message=f"{spec.id} skipped: {why}",
                    subject=spec.id,
                )
            )
            continue
        out.extend(spec.func(inp))
    return out
