"""What `serve` records of a watch run in its Prefect server — what an operator finds in the UI —
and what it leaves out because nobody reads it: the run with its state, its I/O step as a task
run, its table and notifications artifacts, its log with the summary line; evaluate-and-record
and deliver-notifications as parts of the run (their log lines in the run's log), no flow-run
heartbeat events."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.http import Response, Scripted
from tests.fakes.saas import SlackWebhookServer
from tests.servers import start_serve, wait_until
from tests.test_serve_stop import write_config

pytestmark = pytest.mark.integration


def triggered_run(prefect_api: str, tmp_path: Path) -> str:
    """The id of a blackbox-probe run that `serve` executed: its target down, Slack told."""
    from fleet_alerting.deployments.trigger import trigger

    with Scripted(Response(500, "down")) as target, SlackWebhookServer() as slack:
        config = write_config(tmp_path, f"{target.url}/healthz", slack.url)
        settings = yaml.safe_load(config.read_text())
        settings["schedule"]["every"]["blackbox-probe"] = "1h"  # the triggered run alone
        config.write_text(yaml.safe_dump(settings))
        log = tmp_path / "serve.log"
        proc = start_serve(config, os.environ | {"PREFECT_API_URL": prefect_api}, log)
        try:
            wait_until(lambda: "serving blackbox-probe/scheduled" in log.read_text(), 180, "serve")
            lines: list[str] = []
            code = asyncio.run(
                trigger(
                    "blackbox-probe/scheduled", {}, wait=True, poll_seconds=0.2, out=lines.append
                )
            )
            assert code == 0, lines
            assert slack.messages, "the run told Slack"
        finally:
            proc.terminate()
            proc.wait(30)
    return lines[0].split("(", 1)[1].split(")", 1)[0]


def recorded(api: str, run_id: str) -> dict[str, Any]:
    """The run as the UI shows it: its task runs' names, artifact keys, log lines, and the
    names of the events about it."""
    with httpx.Client(base_url=api, timeout=30) as client:
        of_run = {"flow_runs": {"id": {"any_": [run_id]}}}
        tasks = client.post("/task_runs/filter", json=of_run).json()
        artifacts = client.post("/artifacts/filter", json=of_run).json()
        logs = client.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}})
        about = {"any_resource": {"id": [f"prefect.flow-run.{run_id}"]}}
        events = client.post("/events/filter", json={"filter": about, "limit": 50}).json()
    return {
        "steps": sorted(t["name"].rsplit("-", 1)[0] for t in tasks),
        "artifacts": sorted(a["key"] or "" for a in artifacts),
        "log": [line["message"] for line in logs.json()],
        "events": sorted(e["event"] for e in events["events"]),
    }


def test_a_serve_run_shows_its_io_step_artifacts_and_log_and_sends_no_heartbeat(
    prefect_api: str, tmp_path: Path
) -> None:
    run_id = triggered_run(prefect_api, tmp_path)
    summary = "1 target probed, 1 failing (api); opened 1 incident, told slack"

    def complete() -> bool:
        time.sleep(0.5)
        got = recorded(prefect_api, run_id)
        return summary in got["log"] and "prefect.flow-run.Completed" in got["events"]

    # logs and events reach the server in batches
    wait_until(complete, 60, "the run's log and events")
    shown = recorded(prefect_api, run_id)
    # the I/O step is a task run; evaluating, recording and delivering are the run's own
    assert shown["steps"] == ["probe-targets"], shown["steps"]
    assert shown["artifacts"] == [
        "blackbox-probe",
        "blackbox-probe-notifications",
        "incident-board",
    ], shown["artifacts"]
    assert any(line.startswith("incident blackbox:") for line in shown["log"]), shown["log"]
    assert any(line.startswith("sent slack opened") for line in shown["log"]), shown["log"]
    assert "prefect.flow-run.heartbeat" not in shown["events"], shown["events"]
