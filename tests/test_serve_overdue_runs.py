"""serve stopped (killed: its deployments stay unpaused, the runs its server made
ahead stay Scheduled) and restarted later finds many overdue runs. README: "if several scheduled
runs of a watch are due at once (serve was stopped ...), the newest runs and the older ones are
cancelled as superseded". serve's poll reads them oldest first with no limit, and Prefect's
server returns at most 200 (PREFECT_SERVER_API_DEFAULT_LIMIT): past 200 overdue runs serve runs
the 200th oldest — a stale run — and then another one, instead of only the newest. (A 1-minute
watch after 45 min down, five of them after 40 min: the server keeps up to 100 runs ahead each;
re-registering deletes only future auto-scheduled runs, not overdue ones.)"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect import flow

from fleet_alerting.deployments.serve import run_due

pytestmark = pytest.mark.integration

OVERDUE = 250


@flow(name="review-overdue")
async def overdue() -> None:
    return None


def test_past_200_overdue_runs_only_the_newest_runs(prefect_api: str) -> None:
    ran, newest = asyncio.run(_overdue_then_serve())
    assert ran == [newest], (
        f"{len(ran)} run(s) executed ({ran}); only the newest overdue run ({newest}) should"
    )


async def _overdue_then_serve() -> tuple[list[str], str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.states import Scheduled

    deployment_id = await (
        await overdue.ato_deployment(name="overdue", concurrency_limit=1)
    ).aapply()
    now = datetime.now(UTC)
    async with get_client() as client:
        made = []
        for i in range(OVERDUE):  # one a minute, the newest a minute ago
            at = now - timedelta(minutes=OVERDUE - i)
            run = await client.create_flow_run_from_deployment(
                deployment_id, state=Scheduled(scheduled_time=at)
            )
            made.append(run)
    _as_made_by_the_scheduler([str(r.id) for r in made])
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(12, stop.set)
    await run_due({deployment_id: overdue}, stop, 1.0, lambda _: None)
    async with get_client() as client:
        runs = []
        for offset in range(0, OVERDUE, 200):  # the server answers at most 200 at a time
            runs += await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])
                ),
                limit=200,
                offset=offset,
            )
    ran = sorted(
        (r for r in runs if r.state_name == "Completed"), key=lambda r: r.expected_start_time
    )
    return [
        f"{r.name} (due {(now - r.expected_start_time).total_seconds() / 60:.0f} min before serve)"
        for r in ran
    ], (f"{made[-1].name} (due 1 min before serve)")


def _as_made_by_the_scheduler(ids: list[str]) -> None:
    """Prefect's API makes no auto-scheduled run but its scheduler: mark them so in its database."""
    db = Path(os.environ["PREFECT_HOME"]) / "prefect.db"
    for _ in range(50):
        try:
            with sqlite3.connect(db, timeout=30) as conn:
                marks = ",".join("?" * len(ids))
                ids_hex = [i.replace("-", "") for i in ids]
                n = conn.execute(
                    f"UPDATE flow_run SET auto_scheduled = 1 WHERE id IN ({marks})", ids
                ).rowcount
                if n == 0:
                    n = conn.execute(
                        f"UPDATE flow_run SET auto_scheduled = 1 WHERE hex(id) IN ({marks})",
                        [h.upper() for h in ids_hex],
                    ).rowcount
                assert n == len(ids), f"marked {n} of {len(ids)}"
                return
        except sqlite3.OperationalError:
            time.sleep(0.2)
    raise AssertionError("could not mark the runs auto-scheduled")
