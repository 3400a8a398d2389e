"""Quarterly audit flow: Alertmanager routes against severity expectations, rules against
reality. Scheduled `0 9 1 1,4,7,10 *`; the work is in tasks/audit.py. A Prometheus that does
not answer still gives the quarter its report (the offline checks, a note naming what was
skipped), and the run ends Failed with that reason."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.states import Failed

from fleet_alerting.tasks.audit import run_quarterly_audit

ARTIFACT_KEY = "quarterly-audit"
MAX_ARTIFACT_CHARS = 200_000


@flow(name="quarterly-audit")
async def quarterly_audit(
    alertmanager_file: str,
    rules_glob: str,
    expectations_file: str,
    out_dir: str = "reports",
    alertmanager_url: str | None = None,
    prometheus_url: str | None = None,
    dashboards_glob: str | None = None,
    state_path: str | None = None,
    noise_days: float = 90,
    config_path: str | None = None,
) -> dict[str, Any]:
    result = run_quarterly_audit(
        alertmanager_file,
        rules_glob,
        expectations_file,
        out_dir,
        alertmanager_url=alertmanager_url,
        prometheus_url=prometheus_url,
        dashboards_glob=dashboards_glob,
        state_path=state_path,
        noise_days=noise_days,
        config_path=config_path,
    )
    summary = result["summary"]
    markdown = result["markdown"]
    if len(markdown) > MAX_ARTIFACT_CHARS:
        markdown = markdown[:MAX_ARTIFACT_CHARS] + f"\n\n… truncated; see {summary['directory']}\n"
    offline = summary.get("offline")
    await acreate_markdown_artifact(
        markdown=markdown,
        key=ARTIFACT_KEY,
        description=f"Alerting audit {summary['quarter']}: {summary['errors']} errors, "
        f"{summary['warnings']} warnings"
        + (" (offline: online checks skipped)" if offline else ""),
    )
    if offline:  # the report is written, but not the whole audit: the run says so
        return Failed(  # type: ignore[return-value]
            message=f"offline report in {summary['directory']}, online checks skipped: {offline}"
        )
    return summary
