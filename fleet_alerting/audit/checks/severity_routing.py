"""Each alert rule reaches the receivers its severity (or the alert's override) expects."""

from __future__ import annotations

from fleet_alerting.alertmanager.routing import Route
from fleet_alerting.audit.checks._common import expectation, receivers, routed
from fleet_alerting.audit.model import AuditInput, Finding, Rule

CHECK_ID = "severity-routing"
TITLE = "Alerts routed against their severity's expectation"
WHY = (
    "The expectations say who must (and must not) hear each severity; a mismatch means the "
    "wrong people are woken or the right ones are not told."
)
FIX = (
    "Change the route's matchers or the alert's labels so the receivers match the expectation, "
    "or change the expectation deliberately."
)


def check(inp: AuditInput) -> list[Finding]:
    out = []
    for rule, routes in routed(inp):
        exp = expectation(inp, rule)
        got = receivers(routes)
        for want in exp.must_reach:
            if want not in got:
                said = f"must reach {want} but routes to {', '.join(got)}"
                out.append(_finding(rule, routes, want, said, "must_reach"))
        for bad in exp.must_not_reach:
            if bad in got:
                out.append(_finding(rule, routes, bad, f"must not reach {bad}", "must_not_reach"))
    return out


def _finding(rule: Rule, routes: list[Route], receiver: str, said: str, subject: str) -> Finding:
    path = ",".join(r.id for r in routes)
    sev = rule.labels.get("severity", "")
    message = f"severity {sev!r} {said} ({rule.where})"
    return Finding(CHECK_ID, "error", rule.name, path, receiver, message, subject)
