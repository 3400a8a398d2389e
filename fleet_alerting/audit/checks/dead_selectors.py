"""Online: rule selectors that match no series (e.g. `up{job="api"}` when the job is fleet-api)."""

from __future__ import annotations

from fleet_alerting.audit.model import AuditInput, Finding, PrometheusUnavailable
from fleet_alerting.audit.promql import PromQLError, selectors

CHECK_ID = "dead-selector"
TITLE = "Rule selectors that match no series"
WHY = (
    "A rule whose selector selects nothing never fires: in the Fleet `ApiDown` selected "
    '`job="api"` while the scrape job is `fleet-api`.'
)
FIX = (
    "Fix the metric name or label values so the selector returns series (try it in the "
    "Prometheus UI)."
)
ONLINE = True


def check(inp: AuditInput) -> list[Finding]:
    if inp.series is None:
        return []
    try:
        names = inp.series.metric_names()
        out: list[Finding] = []
        seen: dict[str, bool] = {}
        for rule in inp.rules:
            try:
                sels = selectors(rule.expr)
            except PromQLError as exc:
                out.append(
                    Finding(
                        CHECK_ID,
                        "warning",
                        rule.name,
                        message=f"cannot read expr: {exc} ({rule.where})",
                        subject="expr",
                    )
                )
                continue
            for sel in sels:
                text = sel.text()
                if text not in seen:
                    seen[text] = inp.series.series_exists(text)
                if seen[text]:
                    continue
                if sel.metric and sel.metric in names and sel.matchers:
                    msg = (
                        f"{text}: metric {sel.metric} exists but these label matchers select "
                        f"no series"
                    )
                else:
                    msg = f"{text}: no such metric is exported"
                out.append(
                    Finding(
                        CHECK_ID, "error", rule.name, message=f"{msg} ({rule.where})", subject=text
                    )
                )
        return out
    except PrometheusUnavailable as exc:
        return [
            Finding(
                "online-skipped", "info", message=f"{CHECK_ID} skipped: {exc}", subject=CHECK_ID
            )
        ]
