"""Done when: Prefect's database stays bounded under `serve`. The server `serve` starts deletes
finished runs older than `schedule.keep_runs` itself, with their task runs, artifacts and logs,
and keeps events `schedule.keep_events`; against a server serve did not start, serve deletes the
finished runs of this project's flows through the API. Runs still going and recent runs stay
(and, through the API, other projects' runs)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate, LogCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.states import Completed, Failed, Running, Scheduled

from fleet_alerting.deployments.prune import keep_pruned, prune_runs
from fleet_alerting.deployments.serve import _forget_gone, local_server

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=20)


@flow(name="blackbox-probe")
def ours() -> None: ...


@flow(name="someone-elses-flow")
def theirs() -> None: ...


@task
def step() -> None: ...


async def a_run(client: Any, of: Any, scheduled: datetime, final: Any) -> UUID:
    """A run expected at `scheduled` (back-dated through its Scheduled state), then `final`,
    with a task run, an artifact and a log line."""
    run = await client.create_flow_run(of, state=Scheduled(scheduled_time=scheduled))
    await client.set_flow_run_state(run.id, final, force=True)
    await client.create_task_run(step, run.id, dynamic_key="0")
    await client.create_artifact(
        ArtifactCreate(key=f"table-{run.id}", type="markdown", data="x", flow_run_id=run.id)
    )
    await client.create_logs(
        [LogCreate(name="t", level=20, message="m", timestamp=scheduled, flow_run_id=run.id)]
    )
    return run.id


async def exists(client: Any, run_id: UUID) -> bool:
    try:
        await client.read_flow_run(run_id)
    except ObjectNotFound:
        return False
    return True


async def leftovers(client: Any, run_id: UUID) -> list[str]:
    """What of a deleted run is still in the database."""
    found = []
    of_run = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
    if await client.read_artifacts(flow_run_filter=of_run):
        found.append("artifacts")
    if await client.read_task_runs(flow_run_filter=of_run):
        found.append("task runs")
    logs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
    if await client.read_logs(log_filter=logs):
        found.append("logs")
    return found


async def logs_gone(client: Any, run_id: UUID, within: float = 30.0) -> bool:
    """The server deletes a deleted run's logs in the background: polled with a deadline."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not await leftovers(client, run_id):
            return True
        await asyncio.sleep(0.2)
    return False


def test_old_finished_runs_of_our_flows_go_with_what_they_left(prefect_api: str) -> None:
    asyncio.run(old_finished_runs_go())


async def old_finished_runs_go() -> None:
    async with get_client() as client:
        old_done = await a_run(client, ours, OLD, Completed())
        old_failed = await a_run(client, ours, OLD, Failed())
        old_running = await a_run(client, ours, OLD, Running())
        recent = await a_run(client, ours, NOW - timedelta(days=2), Completed())
        not_ours = await a_run(client, theirs, OLD, Completed())

        pruned = await prune_runs(client, ["blackbox-probe"], NOW - timedelta(days=14))

        assert (pruned.runs, pruned.artifacts) == (2, 2)
        for gone in (old_done, old_failed):
            assert not await exists(client, gone)
            assert await logs_gone(client, gone), await leftovers(client, gone)
        for kept in (old_running, recent, not_ours):
            assert await exists(client, kept)
            assert await leftovers(client, kept) == ["artifacts", "task runs", "logs"]


def test_serves_pruning_runs_until_stopped_and_says_what_it_deleted(prefect_api: str) -> None:
    asyncio.run(pruning_until_stopped())


async def pruning_until_stopped() -> None:
    async with get_client() as client:
        old = [await a_run(client, ours, OLD, Completed()) for _ in range(3)]
    stop = asyncio.Event()
    said: list[str] = []

    def out(line: str) -> None:
        said.append(line)
        stop.set()

    await asyncio.wait_for(
        keep_pruned(["blackbox-probe"], timedelta(days=14), stop, lambda: NOW, out), timeout=60
    )
    assert said == ["serve: deleted 3 run(s) older than 14d from Prefect"]
    async with get_client() as client:
        assert not [run for run in old if await exists(client, run)]


def test_serves_own_server_keeps_runs_and_events_as_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    with local_server(keep_runs=timedelta(hours=1), keep_events=timedelta(hours=2)) as url:
        settings = httpx.get(f"{url}/admin/settings", timeout=30).json()["server"]
    vacuum = settings["services"]["db_vacuum"]
    assert settings["events"]["retention_period"] == "PT2H"
    assert set(vacuum["enabled"]) == {"events", "flow_runs"}
    assert vacuum["retention_period"] == "PT1H1S"  # Prefect keeps more than an hour
    assert vacuum["loop_seconds"] == 600  # a sixth of the shorter retention
    off = {name for name, service in settings["services"].items() if not service["enabled"]}
    assert {"foreman", "cleanup_reconciler", "pause_expirations"} <= off  # no workers, no pauses
    assert settings["services"]["triggers"]["enabled"]  # an operator's automations still act
    assert settings["services"]["task_run_recorder"]["batch_size"] == 100  # not one by one


def test_serves_own_server_deletes_old_finished_runs_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No request per run or artifact from serve: the server it starts sweeps finished runs older
    than `keep_runs` with what they left (its vacuum runs at start, then every sweep)."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    keep = {"keep_runs": timedelta(days=14), "keep_events": timedelta(hours=6)}
    with local_server(**keep) as url, temporary_settings({PREFECT_API_URL: url}):
        made = asyncio.run(runs_of_every_kind())
    # the server dates a run's end itself: twenty days pass while it is stopped
    old = [str(made["old done"]), str(made["old failed"])]
    with (
        contextlib.closing(sqlite3.connect(prefect_database())) as db,
        db,
    ):
        dated = db.execute(
            "UPDATE flow_run SET end_time = ? WHERE id IN (?, ?)", (OLD.isoformat(), *old)
        )
        assert dated.rowcount == 2
    with local_server(**keep) as url, temporary_settings({PREFECT_API_URL: url}):
        asyncio.run(only_the_recent_and_unfinished_stay(made))


def prefect_database() -> str:
    """The file of the server `local_server` starts (it has this process's settings)."""
    url = get_current_settings().server.database.connection_url
    return url.get_secret_value().removeprefix("sqlite+aiosqlite:///")


async def runs_of_every_kind() -> dict[str, UUID]:
    async with get_client() as client:
        return {
            "old done": await a_run(client, ours, OLD, Completed(timestamp=OLD)),
            "old failed": await a_run(client, theirs, OLD, Failed(timestamp=OLD)),
            "old running": await a_run(client, ours, OLD, Running(timestamp=OLD)),
            "recent": await a_run(client, ours, NOW - timedelta(days=2), Completed()),
        }


async def only_the_recent_and_unfinished_stay(made: dict[str, UUID]) -> None:
    async with get_client() as client:
        deadline = time.monotonic() + 60
        while await exists(client, made["old done"]) or await exists(client, made["old failed"]):
            assert time.monotonic() < deadline, "the server's vacuum did not delete old runs"
            await asyncio.sleep(0.5)
        for gone in ("old done", "old failed"):
            assert await logs_gone(client, made[gone]), await leftovers(client, made[gone])
        for kept in ("old running", "recent"):
            assert await exists(client, made[kept]), kept
            assert await leftovers(client, made[kept]) == ["artifacts", "task runs", "logs"]


@dataclass(frozen=True)
class Due:
    id: UUID


def test_serve_remembers_a_started_run_only_while_the_server_lists_it_as_due() -> None:
    """Months of runs: the ids serve remembers stay as many as one poll lists."""
    started: set[UUID] = set()
    for _ in range(1000):  # each poll: the run just started is still listed once, then gone
        run = Due(uuid4())
        started.add(run.id)
        _forget_gone(started, [run])
        _forget_gone(started, [])
    assert started == set()
    still_due = Due(uuid4())
    started.add(still_due.id)
    _forget_gone(started, [still_due, Due(uuid4())])
    assert started == {still_due.id}  # not started twice while its new state is on its way
