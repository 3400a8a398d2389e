"""Helpers shared by checks: routing each alert rule once, describing routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet_alerting.alertmanager.routing import Route
from fleet_alerting.audit.model import AuditInput, Expectation, Finding, Rule

if TYPE_CHECKING:
    from fleet_alerting.audit.noise import NoiseStats

# a noise check's verdict on one alert row: (level, message), or None when it is fine
NoiseVerdict = Callable[["NoiseStats", Any], "tuple[str, str] | None"]

# integrations that reach a person's phone (Grafana OnCall is a webhook)
PAGER_CONFIGS = (
    "pagerduty_configs",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "webhook_configs",
)


def paging_problems(inp: AuditInput) -> dict[str, str]:
    """Declared paging receivers that cannot page: name -> "missing" | "no-pager-config"."""
    out = {}
    for name in sorted(inp.expectations.paging_receivers):
        rc = inp.am.receivers.get(name)
        if rc is None:
            out[name] = "missing"
        elif not any(rc.get(k) for k in PAGER_CONFIGS):
            out[name] = "no-pager-config"
    return out


def routed(inp: AuditInput) -> list[tuple[Rule, list[Route]]]:
    return [(r, inp.am.routes_for(r.routing_labels)) for r in inp.alert_rules]


def receivers(routes: list[Route]) -> list[str]:
    return [r.opts.receiver for r in routes]


def describe(route: Route) -> str:
    return route.slug(show_continue=True)


def route_finding(check_id: str, level: str, route: Route, message: str) -> Finding:
    """A finding about a route itself (not about an alert): its path and receiver identify it."""
    return Finding(
        check_id, level, route_path=route.id, receiver=route.opts.receiver, message=message
    )


def expectation(inp: AuditInput, rule: Rule) -> Expectation:
    """Severity expectation with alert overrides; `pages` defaults by severity name."""
    exp = inp.expectations.for_rule(rule)
    if exp.pages is None:
        sev = rule.labels.get("severity")
        pages = True if sev == "critical" else False if sev in ("warning", "info") else None
        exp = Expectation(exp.must_reach, exp.must_not_reach, pages, exp.required_annotations)
    return exp


def per_noisy_alert(inp: AuditInput, check_id: str, verdict: NoiseVerdict) -> list[Finding]:
    """One finding per row of the quarter's alert table that `verdict` objects to (none without
    noise statistics)."""
    if inp.noise is None:
        return []
    out = []
    for r in inp.noise.alerts.itertuples():
        said = verdict(inp.noise, r)
        if said is not None:
            level, message = said
            out.append(Finding(check_id, level, r.alert, message=message, subject=r.severity))
    return out
