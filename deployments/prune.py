"""Keeps the Prefect database of `serve` bounded: finished runs of this project's flows older than
`schedule.keep_runs` are deleted through Prefect's API, with their artifacts (task runs and
states go with the run; the server deletes its logs). Runs still scheduled or running are kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from fleet_alerting.core.durations import format_duration

# one read of the runs to delete; a long-stopped serve catches up batch after batch
BATCH = 200
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Pruned:
    runs: int = 0
    artifacts: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.runs + other.runs, self.artifacts + other.artifacts)


async def prune_runs(client: Any, flow_names: Iterable[str], before: datetime) -> Pruned:
    """Delete the finished runs of `flow_names` expected to start before `before`."""
    total = Pruned()
    while ids := await _old_runs(client, sorted(set(flow_names)), before):
        total += await _delete(client, ids)
        await asyncio.sleep(0)
    return total


async def _old_runs(client: Any, flow_names: list[str], before: datetime) -> list[UUID]:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    runs = await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)),
        flow_run_filter=FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime(before_=before),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType(t) for t in TERMINAL])
            ),
        ),
        limit=BATCH,
    )
    return [run.id for run in runs]


async def _delete(client: Any, run_ids: list[UUID]) -> Pruned:
    """Artifacts first: a run deleted before its artifacts would leave them unreachable."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import ObjectNotFound

    of_runs = FlowRunFilter(id=FlowRunFilterId(any_=run_ids))
    artifacts = 0
    while batch := await client.read_artifacts(flow_run_filter=of_runs, limit=BATCH):
        for artifact in batch:
            with contextlib.suppress(ObjectNotFound):  # deleted meanwhile by another serve
                await client.delete_artifact(artifact.id)
        artifacts += len(batch)
    for run_id in run_ids:
        with contextlib.suppress(ObjectNotFound):
            await client.delete_flow_run(run_id)
    return Pruned(len(run_ids), artifacts)


async def keep_pruned(
    flow_names: Iterable[str],
    keep: timedelta,
    stop: asyncio.Event,
    now: Callable[[], datetime],
    out: Callable[[str], None],
    every: timedelta = EVERY,
) -> None:
    """`prune_runs` at start and then every `every` until `stop`; a failed pass is said and
    retried at the next one (the watches keep running either way)."""
    from prefect.client.orchestration import get_client

    names = list(flow_names)
    while not stop.is_set():
        try:
            async with get_client() as client:
                pruned = await prune_runs(client, names, now() - keep)
            if pruned.runs:
                age = format_duration(keep, exact=True)
                out(f"serve: deleted {pruned.runs} run(s) older than {age} from Prefect")
        except Exception as exc:  # the server busy or restarting: next time
            out(f"serve: could not delete old runs from Prefect ({type(exc).__name__})")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every.total_seconds())
