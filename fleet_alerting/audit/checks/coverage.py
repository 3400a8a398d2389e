"""Online: exported metrics that no rule references, and (given dashboards) that no panel shows."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fleet_alerting.audit.model import AuditInput, Finding, PrometheusUnavailable
from fleet_alerting.audit.promql import PromQLError, metric_names

CHECK_ID = "uncovered-metric"
TITLE = "Exported metrics that no rule watches"
WHY = (
    "A metric that is scraped but referenced by no alerting or recording rule cannot tell "
    "anyone when it goes wrong."
)
FIX = (
    "Write a rule for the metrics that matter, or add the rest to `coverage_ignore` in the "
    "expectations."
)
DASHBOARD_CHECK_ID = "undashboarded-metric"
ONLINE = True


def dashboard_exprs(node: Any) -> Iterable[str]:
    """Every `expr` string in a Grafana dashboard (panels, rows, nested panels, targets)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                yield v
            else:
                yield from dashboard_exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from dashboard_exprs(v)


def _names(exprs: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for e in exprs:
        try:
            out |= metric_names(e)
        except PromQLError:
            continue
    return out


def check(inp: AuditInput) -> list[Finding]:
    if inp.series is None:
        return []
    try:
        exported = inp.series.metric_names()
    except PrometheusUnavailable as exc:
        return [
            Finding(
                "online-skipped", "info", message=f"{CHECK_ID} skipped: {exc}", subject=CHECK_ID
            )
        ]
    ignore = [re.compile(p) for p in inp.expectations.coverage_ignore]
    relevant = sorted(m for m in exported if not any(p.search(m) for p in ignore))
    in_rules = _names(r.expr for r in inp.rules) | {r.name for r in inp.rules if r.kind == "record"}
    out = [
        Finding(CHECK_ID, "info", message=f"{m} is exported but no rule references it", subject=m)
        for m in relevant
        if m not in in_rules
    ]
    if inp.dashboards is not None:
        shown = _names(e for d in inp.dashboards.values() for e in dashboard_exprs(d))
        out += [
            Finding(
                DASHBOARD_CHECK_ID,
                "info",
                message=f"{m} is exported but no dashboard panel shows it",
                subject=m,
            )
            for m in relevant
            if m not in shown
        ]
    return out
