"""Edges with real things: git-tracked / world-readable / stale secret files, and drift against
a running Alertmanager's /api/v2/status."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from audit_helpers import REPO, build_input

from fleet_alerting.audit.checks import secret_files
from fleet_alerting.audit.checks.drift import check as drift_check
from fleet_alerting.audit.live import fetch_running_config, gather_inputs
from fleet_alerting.audit.loader import AuditInputError, gather_secret_files, load_expectations
from tests.servers import start_alertmanager

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_secret_file_facts_and_findings(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    tracked = tmp_path / "tracked-key"
    tracked.write_text("x")
    tracked.chmod(0o600)
    git(tmp_path, "add", "tracked-key")
    loose = tmp_path / "world-readable"
    loose.write_text("x")
    loose.chmod(0o644)
    stale = tmp_path / "stale"
    stale.write_text("x")
    stale.chmod(0o600)
    old = (NOW - timedelta(days=400)).timestamp()
    os.utime(stale, (old, old))
    good = tmp_path / "good"
    good.write_text("x")
    good.chmod(0o600)
    os.utime(good, (NOW.timestamp(), NOW.timestamp()))
    os.utime(tracked, (NOW.timestamp(), NOW.timestamp()))
    os.utime(loose, (NOW.timestamp(), NOW.timestamp()))
    raw = {
        "receivers": [
            {
                "name": "p",
                "pagerduty_configs": [
                    {"routing_key_file": "tracked-key"},
                    {"routing_key_file": str(loose)},
                    {"routing_key_file": "stale"},
                    {"routing_key_file": "good"},
                    {"routing_key_file": "missing"},
                ],
            }
        ]
    }
    facts = gather_secret_files(raw, tmp_path)
    by_name = {Path(f.path).name: f for f in facts}
    assert by_name["tracked-key"].git_tracked and not by_name["good"].git_tracked
    assert by_name["world-readable"].mode == 0o644
    assert not by_name["missing"].exists

    inp = build_input({})
    inp.secret_files = facts
    inp.now = NOW
    findings = secret_files.check(inp)
    msgs = {Path(f.message.split(":")[0]).name: (f.level, f.message) for f in findings}
    assert "tracked by git" in msgs["tracked-key"][1] and msgs["tracked-key"][0] == "error"
    assert "readable by others" in msgs["world-readable"][1]
    assert "not rotated for 400 days" in msgs["stale"][1]
    assert "does not exist" in msgs["missing"][1]
    assert "good" not in msgs


@pytest.fixture
def alertmanager_url(tmp_path: Path):  # type: ignore[no-untyped-def]
    # the running config differs from the example file: no grafana-oncall route
    text = (
        (REPO / "config/audit/alertmanager.yml")
        .read_text()
        .replace('alertname=~"FleetOffline|ApiDown"', 'alertname=~"FleetOffline"')
    )
    server, url = start_alertmanager(tmp_path / "alertmanager", text)
    yield url
    server.stop()


@pytest.mark.integration
def test_drift_against_running_alertmanager(alertmanager_url: str) -> None:
    assert "FleetOffline" in fetch_running_config(alertmanager_url)
    inp = gather_inputs(
        alertmanager_file=str(REPO / "config/audit/alertmanager.yml"),
        rules_glob=str(REPO / "config/audit/rules/*.yml"),
        expectations_file=str(REPO / "config/audit/expectations.yaml"),
        now=NOW,
        alertmanager_url=alertmanager_url,
    )
    findings = drift_check(inp)
    assert {f.alert for f in findings if f.level == "error"} == {"ApiDown"}
    warnings = [(f.route_path, f.message) for f in findings if f.level == "warning"]
    assert len(warnings) == 1, warnings
    assert warnings[0][0] == "root/2" and 'alertname=~"FleetOffline"' in warnings[0][1]
    assert all("REPLACE_WITH_TOKEN" not in f.message for f in findings)
    # and no drift when the file is the running config
    inp.am = inp.running  # type: ignore[assignment]
    assert drift_check(inp) == []
    assert load_expectations(REPO / "config/audit/expectations.yaml").paging_receivers


def test_unreachable_alertmanager_is_an_input_error(closed_url: str) -> None:
    with pytest.raises(AuditInputError, match="cannot read the running config"):
        fetch_running_config(closed_url, timeout=1)
