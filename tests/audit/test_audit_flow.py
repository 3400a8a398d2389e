"""The quarterly-audit flow runs once under the Prefect test harness and writes the report."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_quarterly_audit_flow(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from fleet_alerting.flows.quarterly_audit import ARTIFACT_KEY, quarterly_audit

    summary = asyncio.run(
        quarterly_audit(
            alertmanager_file=str(REPO / "config/audit/alertmanager.yml"),
            rules_glob=str(REPO / "config/audit/rules/*.yml"),
            expectations_file=str(REPO / "config/audit/expectations.yaml"),
            out_dir=str(tmp_path),
            dashboards_glob=str(REPO / "config/audit/dashboards/*.json"),
        )
    )
    qdir = Path(summary["directory"])
    assert qdir.parent == tmp_path
    for name in ("report.md", "report.html", "findings.json", "findings.csv"):
        assert (qdir / name).is_file()
    assert summary["warnings"] >= 5 and summary["findings"] >= 10

    async def artifacts() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY]))
            )

    [artifact] = asyncio.run(artifacts())
    assert "# Alerting audit" in artifact.data
