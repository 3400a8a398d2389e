"""The Prefect server `serve` starts writes task runs' states in batches (bench/soak_cost.py: a
task run costs it a third): none is lost — a server stopped right after a run still records every
step's final state before it exits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from fleet_alerting.deployments.serve import local_server

STEPS = 3
T = TypeVar("T")


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


@pytest.fixture
def a_fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)


@contextlib.contextmanager
def recorded_in_serves_server() -> Iterator[None]:
    with local_server() as url, temporary_settings({PREFECT_API_URL: url}):
        yield


def polled(read: Callable[[], T], wanted: T, within: float) -> T:
    """What `read` answers once it is `wanted`, or its last answer after `within` seconds."""
    deadline = time.monotonic() + within
    while (found := read()) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


@pytest.mark.usefixtures("a_fresh_home")
def test_a_server_stopped_right_after_a_run_has_recorded_its_steps() -> None:
    with recorded_in_serves_server():
        state = three_steps(return_state=True)
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=30)  # the steps' events reached the server
    run_id = state.state_details.flow_run_id
    with recorded_in_serves_server():
        completed = ["StateType.COMPLETED"] * STEPS
        found = polled(lambda: asyncio.run(states_of_its_task_runs(run_id)), completed, 30)
    assert found == completed


async def a_run_due_a_minute_ago() -> object:
    from datetime import UTC, datetime, timedelta

    from prefect.states import Scheduled

    async with get_client() as client:
        due = datetime.now(UTC) - timedelta(minutes=1)
        return (await client.create_flow_run(three_steps, state=Scheduled(scheduled_time=due))).id


async def state_name(run_id: object) -> str | None:
    async with get_client() as client:
        state = (await client.read_flow_run(run_id)).state  # type: ignore[arg-type]
        return state.name if state else None


@pytest.mark.usefixtures("a_fresh_home")
def test_serves_server_still_marks_a_run_nobody_started_late() -> None:
    """Its background worker polls every second, not every 250 ms: its services still act."""
    with recorded_in_serves_server():
        run_id = asyncio.run(a_run_due_a_minute_ago())
        name = polled(lambda: asyncio.run(state_name(run_id)), "Late", 60)
    assert name == "Late"
