"""The quarterly-audit flow runs once under the Prefect test harness and writes the report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def run_flow(out_dir: Path, **options: Any) -> Any:
    """The flow over the example audit files (`return_state=True` gives its state)."""
    from fleet_alerting.flows.quarterly_audit import quarterly_audit

    return asyncio.run(
        quarterly_audit(
            alertmanager_file=str(REPO / "config/audit/alertmanager.yml"),
            rules_glob=str(REPO / "config/audit/rules/*.yml"),
            expectations_file=str(REPO / "config/audit/expectations.yaml"),
            out_dir=str(out_dir),
            **options,
        )
    )


def latest_artifact() -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from fleet_alerting.flows.quarterly_audit import ARTIFACT_KEY

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
                limit=1,
                sort="CREATED_DESC",
            )

    [artifact] = asyncio.run(read())
    return artifact


def test_quarterly_audit_flow(prefect_api: str, tmp_path: Path) -> None:
    summary = run_flow(tmp_path, dashboards_glob=str(REPO / "config/audit/dashboards/*.json"))
    qdir = Path(summary["directory"])
    assert qdir.parent == tmp_path
    for name in ("report.md", "report.html", "findings.json", "findings.csv"):
        assert (qdir / name).is_file()
    assert summary["warnings"] >= 5 and summary["findings"] >= 10
    assert "# Alerting audit" in latest_artifact().data


def test_quarterly_audit_flow_without_prometheus_writes_the_offline_report(
    prefect_api: str, tmp_path: Path, closed_url: str
) -> None:
    """The scheduled quarter gets its report when Prometheus is down: the artifact opens with
    the note naming the skipped checks and the URL, and the run ends Failed saying so."""
    state = run_flow(tmp_path, prometheus_url=closed_url, return_state=True)
    assert state.is_failed()
    assert state.message.startswith(f"offline report in {tmp_path}/")
    assert f"online checks skipped: Prometheus at {closed_url} is unreachable" in state.message
    [report] = tmp_path.glob("*-Q*/report.md")
    assert "**Offline report: the online checks were skipped**" in report.read_text()
    artifact = latest_artifact()
    top = artifact.data.split("\n\n")[1]
    assert top.startswith("**Offline report: the online checks were skipped** (`noise`, ")
    assert closed_url in top and "offline" in artifact.description
