"""Deployments: prefect.yaml and deployments/schedules.py agree; `serve` registers every deployment
with its cron and concurrency limit on a real Prefect server and runs what is triggered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet_alerting.deployments.schedules import SCHEDULES
from fleet_alerting.flows import ENTRYPOINTS
from tests.servers import wait_until

ROOT = Path(__file__).parents[1]


def test_trigger_without_a_server_says_so() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from fleet_alerting.deployments.trigger import trigger

    lines: list[str] = []
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert (
            asyncio.run(trigger("blackbox-probe/every-minute", {}, wait=True, out=lines.append))
            == 2
        )
    assert lines[0].startswith("no Prefect server: PREFECT_API_URL is not set")


def test_prefect_yaml_matches_the_schedules() -> None:
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    from_yaml = {(d["entrypoint"], d["name"], d["schedules"][0]["cron"]) for d in declared}
    from_code = {
        (
            ENTRYPOINTS[s.flow]
            .removeprefix("fleet_alerting.")
            .replace(".", "/", 1)
            .replace(":", ".py:"),
            s.name,
            s.cron,
        )
        for s in SCHEDULES
    }
    assert from_yaml == from_code
    assert all(d["concurrency_limit"] == 1 for d in declared)
    for entry in from_yaml:
        assert (ROOT / entry[0].split(":")[0]).is_file()


@pytest.mark.integration
def test_serve_registers_schedules_and_runs_on_demand(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from fleet_alerting.deployments.trigger import trigger

    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"state": {"path": "state.sqlite"}, "notify": {"dry_run": True}})
    )
    env = os.environ | {"PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_alerting.surfaces.cli", "serve", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    async def deployments() -> list:
        async with get_client() as client:
            return await client.read_deployments()

    try:
        wait_until(lambda: len(asyncio.run(deployments())) == len(SCHEDULES), 60, "deployments")
        found = {d.name: d for d in asyncio.run(deployments())}
        probe = found["every-minute"]
        assert [s.schedule.cron for s in probe.schedules] == ["* * * * *"]
        assert probe.global_concurrency_limit.limit == 1
        assert probe.parameters == {"config_path": str(config)}
        audit = found["quarterly"]
        assert [s.schedule.cron for s in audit.schedules] == ["0 9 1 1,4,7,10 *"]
        assert audit.parameters["rules_glob"] == "config/audit/rules/*.yml"
        lines: list[str] = []
        name = f"blackbox-probe/{probe.name}"
        assert asyncio.run(trigger(name, {}, wait=True, poll_seconds=0.2, out=lines.append)) == 0
        assert lines[0].startswith("created flow run") and lines[-1].endswith(": Completed")
        # a run that fails (its config does not exist) is reported with the run's outcome
        broken = {"config_path": str(tmp_path / "missing.yaml")}
        lines.clear()
        assert (
            asyncio.run(trigger(name, broken, wait=True, poll_seconds=0.2, out=lines.append)) == 1
        )
        assert lines[-1].split(" — ")[0].endswith(": Failed")
        lines.clear()
        assert asyncio.run(trigger("nope/none", {}, wait=False, out=lines.append)) == 2
        known = lines[0].split("known: ")[1].split(", ")
        assert (
            name in known and "quarterly-audit/quarterly" in known and len(known) == len(SCHEDULES)
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


@pytest.mark.integration
def test_serve_without_a_server_starts_one_and_stops_it(tmp_path: Path) -> None:
    """Ephemeral mode does not schedule, so `serve` brings its own Prefect server."""
    import httpx

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"state": {"path": "state.sqlite"}, "notify": {"dry_run": True}})
    )
    out = tmp_path / "serve.out"
    with out.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet_alerting.surfaces.cli", "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "UI at http://127.0.0.1:" in out.read_text(), 90, "local server")
        ui = out.read_text().split("UI at ")[1].split()[0]

        def served() -> int:
            answer = httpx.post(f"{ui}/api/deployments/filter", json={}, timeout=5)
            return len(answer.json())

        wait_until(lambda: served() == len(SCHEDULES), 60, "deployments served")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)  # a graceful stop lets a run started on the minute finish or cancel

    def gone() -> bool:
        try:
            httpx.get(f"{ui}/api/health", timeout=1)
        except httpx.HTTPError:
            return True
        return False

    wait_until(gone, 20, "the local server stopped with serve")
