"""The Prefect server `serve` starts writes task runs' states in batches (bench/soak_cost.py: a
task run costs it a third): none is lost — a server stopped right after a run still records every
step's final state before it exits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from fleet_alerting.deployments.serve import local_server

STEPS = 3


@task
def step(n: int) -> int:
    return n + 1


@flow
def three_steps() -> None:
    for n in range(STEPS):
        step(n)


async def states_of_its_task_runs(run_id: object) -> list[str]:
    async with get_client() as client:
        of_run = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        return sorted(
            str(t.state_type) for t in await client.read_task_runs(flow_run_filter=of_run)
        )


def test_a_server_stopped_right_after_a_run_has_recorded_its_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with local_server() as url, temporary_settings({PREFECT_API_URL: url}):
        state = three_steps(return_state=True)
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=30)  # the steps' events reached the server
    with local_server() as url, temporary_settings({PREFECT_API_URL: url}):
        deadline = time.monotonic() + 30
        found = asyncio.run(states_of_its_task_runs(state.state_details.flow_run_id))
        while found != ["StateType.COMPLETED"] * STEPS and time.monotonic() < deadline:
            time.sleep(0.2)
            found = asyncio.run(states_of_its_task_runs(state.state_details.flow_run_id))
    assert found == ["StateType.COMPLETED"] * STEPS
