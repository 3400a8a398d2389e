"""serve's polls for due runs, against a real Prefect server: scheduled runs start when they are
due (serve knows the next start from its last ask), a triggered run within POLL_SECONDS, the
deployments show Ready — and the ask that marks them so (a write in the server each time) is
made every 20 s, not at every poll."""

from __future__ import annotations

import asyncio
import logging
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect import flow

from fleet_alerting.deployments.serve import (
    INTERVAL_ANCHOR,
    MARK_READY_EVERY,
    POLL_SECONDS,
    run_due,
)

pytestmark = pytest.mark.integration

EVERY = 10
SERVED = 3 * EVERY + 7  # seconds
LATE = 2.5  # seconds a run may start after it is due: its setup on a busy machine


@flow(name="polls-every-10s")
async def every_10s() -> None:
    return None


@flow(name="polls-on-demand")
async def on_demand() -> None:
    return None


class _Asks(logging.Handler):
    """serve's requests to the server by path, as httpx logs each."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.paths: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        url = str(record.args[1])  # type: ignore[index]
        self.paths.append(url.split("/api", 1)[-1].split("?")[0])


def test_runs_start_when_due_and_triggered_ones_within_the_poll(prefect_api: str) -> None:
    asks = _Asks()
    httpx_logger, level = logging.getLogger("httpx"), logging.getLogger("httpx").level
    httpx_logger.setLevel(logging.INFO)
    httpx_logger.addHandler(asks)
    try:
        serving_from = datetime.now(UTC) + timedelta(seconds=POLL_SECONDS)
        scheduled, triggered, deployments = asyncio.run(_serve_for(SERVED))
    finally:
        httpx_logger.removeHandler(asks)
        httpx_logger.setLevel(level)

    # the first run may be due before Prefect's scheduler made it (it makes them in a loop)
    marking = asks.paths.count("/deployments/get_scheduled_flow_runs")
    assert marking <= 1 + (SERVED) // MARK_READY_EVERY, (
        f"{marking} polls that write in the server (they mark the deployments Ready) in "
        f"{SERVED} s: once every {MARK_READY_EVERY:g} s is enough"
    )
    ran = [r for r in scheduled if r.start_time and r.expected_start_time >= serving_from]
    assert len(ran) >= 2, f"scheduled runs started: {[(r.name, r.state_name) for r in scheduled]}"
    lateness = {r.name: (r.start_time - r.expected_start_time).total_seconds() for r in ran}
    assert all(r.expected_start_time.timestamp() % EVERY == 0 for r in ran), "not on round times"
    # on time, give or take the machine's load: serve waits for the next start, not for a poll
    assert statistics.median(lateness.values()) <= LATE, f"started late after due: {lateness}"
    assert max(lateness.values()) < POLL_SECONDS + LATE, f"started late after due: {lateness}"
    asked_at = triggered.created
    waited = (triggered.start_time - asked_at).total_seconds()
    assert triggered.state_name == "Completed"
    assert waited <= POLL_SECONDS + LATE, f"a triggered run waited {waited:.1f} s to start"
    assert all(d.status.value == "READY" for d in deployments), [d.status for d in deployments]


async def _serve_for(seconds: float) -> tuple[list[Any], Any, list[Any]]:
    from prefect.client.orchestration import get_client
    from prefect.schedules import Interval

    scheduled = await every_10s.ato_deployment(
        name="polls",
        schedule=Interval(timedelta(seconds=EVERY), anchor_date=INTERVAL_ANCHOR),
        concurrency_limit=1,
    )
    scheduled_id = await scheduled.aapply()
    demand_id = await (await on_demand.ato_deployment(name="polls", concurrency_limit=1)).aapply()
    flows = {scheduled_id: every_10s, demand_id: on_demand}
    stop = asyncio.Event()
    serving = asyncio.create_task(run_due(flows, stop, POLL_SECONDS, lambda _: None))
    async with get_client() as client:
        await asyncio.sleep(EVERY + 1)  # asked between polls (runs woke serve at round times)
        asked = await client.create_flow_run_from_deployment(demand_id)
        await asyncio.sleep(seconds - EVERY - 1)
        stop.set()
        await serving
        now = datetime.now(UTC)
        runs = await client.read_flow_runs()
        mine = [r for r in runs if r.deployment_id == scheduled_id and r.expected_start_time < now]
        triggered = await client.read_flow_run(asked.id)
        deployments = [await client.read_deployment(d) for d in flows]
    return mine, triggered, deployments


def test_serve_marks_its_deployments_polled_well_within_the_foremans_timeout() -> None:
    """A server that runs Prefect's foreman (one of PREFECT_API_URL, not serve's own) shows a
    deployment Not Ready once it has not been polled for this long: serve's marking asks come
    at least twice as often, or the UI would flip between Ready and Not Ready."""
    from prefect.settings import get_current_settings

    foreman = get_current_settings().server.services.foreman
    assert foreman.deployment_last_polled_timeout_seconds >= MARK_READY_EVERY * 2


def test_serve_counts_a_watchs_interval_from_its_anchor(prefect_api: str) -> None:
    """Watches with one interval fall due together, on round times (one wake-up for all)."""
    from prefect.client.orchestration import get_client

    from fleet_alerting.deployments.schedules import SCHEDULES, Planned
    from fleet_alerting.deployments.serve import register

    watch = next(s for s in SCHEDULES if s.flow == "blackbox-probe")
    planned = [Planned(watch, {"config_path": "unused.yaml"}, None, timedelta(seconds=EVERY))]

    async def registered() -> Any:
        flows = await register(planned, lambda _: None)
        async with get_client() as client:
            [deployment] = [await client.read_deployment(d) for d in flows]
            await client.pause_deployment(deployment.id)  # nobody here runs it
        return deployment

    [schedule] = asyncio.run(registered()).schedules
    assert schedule.schedule.interval == timedelta(seconds=EVERY)
    assert schedule.schedule.anchor_date == INTERVAL_ANCHOR
