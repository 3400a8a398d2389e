"""Benchmark: what one run costs `serve` in Prefect orchestration, by part — a bare flow run, each
task run, each artifact, each log line, each poll for due runs — CPU of serve's process and of its
local Prefect server (a child process, as `serve` starts it), so the cuts worth making show.

Each variant is a deployment's flow run executed in-process as `serve` does (same adapter, same
TLS sharing and suspension skip); variants alternate batch by batch. The server's CPU is read
after its services have settled (`--settle` seconds), minus what it spends idle over the same time.

    PYTHONPATH=$PWD .venv/bin/python bench/soak_cost.py [--runs 20] [--passes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from soak import cpu_seconds, descendants

TASKS = 4
ARTIFACTS = 2
LOGS = 9


def make_flows() -> dict[str, Any]:
    from prefect import Task, flow
    from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
    from prefect.cache_policies import NO_CACHE
    from prefect.logging import get_run_logger

    def step(n: int) -> int:
        return n + 1

    task = Task(fn=step, name="step", cache_policy=NO_CACHE)

    @flow(name="cost-bare")
    async def bare() -> None:
        return None

    @flow(name="cost-tasks")
    async def tasks() -> None:
        for n in range(TASKS):
            task(n)

    @flow(name="cost-artifacts")
    async def artifacts() -> None:
        await acreate_table_artifact([{"target": "pi-01", "ok": True}], description="observed")
        await acreate_markdown_artifact("**nothing to tell**", description="notifications")

    @flow(name="cost-logs")
    async def logs() -> None:
        logger = get_run_logger()
        for n in range(LOGS):
            logger.info("line %d of a run's log", n)

    return {"bare": bare, "tasks": tasks, "artifacts": artifacts, "logs": logs}


def server_pid() -> int:
    [pid] = descendants(os.getpid())
    return pid


async def idle_rate(seconds: float) -> float:
    server = server_pid()
    before = cpu_seconds(server)
    await asyncio.sleep(seconds)
    return (cpu_seconds(server) - before) / seconds


async def batch(client: Any, flow: Any, deployment_id: Any, runs: int, settle: float, idle: float):
    from fleet_alerting.deployments.prefect_engine import run_in_process

    server = server_pid()
    own, theirs, began = time.process_time(), cpu_seconds(server), time.monotonic()
    for _ in range(runs):
        flow_run = await client.create_flow_run_from_deployment(deployment_id)
        state = await run_in_process(flow, flow_run)
        assert state.is_completed(), state
    own = time.process_time() - own
    await asyncio.sleep(settle)  # events, task runs and logs recorded by the server's services
    theirs = cpu_seconds(server) - theirs - idle * (time.monotonic() - began)
    return own / runs, theirs / runs


async def polls(client: Any, deployment_ids: list[Any], count: int, idle: float) -> float:
    server = server_pid()
    theirs, began = cpu_seconds(server), time.monotonic()
    for _ in range(count):
        await client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=deployment_ids, scheduled_before=datetime.now(UTC)
        )
    return (cpu_seconds(server) - theirs - idle * (time.monotonic() - began)) / count


async def measure(args: argparse.Namespace, url: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from fleet_alerting.deployments.prefect_engine import (
        one_client,
        remember_result_storage,
        share_tls_contexts,
        skip_suspension_watch,
    )

    share_tls_contexts()
    skip_suspension_watch()
    remember_result_storage()
    with temporary_settings(updates={PREFECT_API_URL: url}):
        flows = make_flows()
        ids = {}
        for name, flow in flows.items():
            ids[name] = await (await flow.ato_deployment(name="bench")).aapply()
        idle = await idle_rate(args.settle * 2)
        totals: dict[str, list[tuple[float, float]]] = {name: [] for name in flows}
        async with one_client() as client:  # the runs' client too, as in serve
            for name, flow in flows.items():  # warm-up: imports, first connections
                await batch(client, flow, ids[name], 2, 1.0, idle)
            for _ in range(args.passes):
                for name, flow in flows.items():
                    got = await batch(client, flow, ids[name], args.runs, args.settle, idle)
                    totals[name].append(got)
            poll = await polls(client, list(ids.values()), 50, idle)
    report(totals, poll, idle, args)


def report(totals: dict[str, list[tuple[float, float]]], poll: float, idle: float, args) -> None:
    load = os.getloadavg()[0]
    print(
        f"{args.runs} runs × {args.passes} passes per variant; load {load:.1f}; server idle "
        f"{idle * 1000:.0f} ms CPU/s (subtracted)"
    )
    best = {name: min(got, key=lambda g: g[0] + g[1]) for name, got in totals.items()}
    for name, (own, theirs) in best.items():
        print(f"{name:9}: serve {own * 1000:6.1f} ms + server {theirs * 1000:6.1f} ms per run")
    bare = sum(best["bare"])
    print(
        f"a bare flow run: {bare * 1000:.0f} ms; per task run "
        f"{(sum(best['tasks']) - bare) / TASKS * 1000:.0f} ms; per artifact "
        f"{(sum(best['artifacts']) - bare) / ARTIFACTS * 1000:.0f} ms; per log line "
        f"{(sum(best['logs']) - bare) / LOGS * 1000:.1f} ms; per poll (server) "
        f"{poll * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--settle", type=float, default=4.0)
    args = parser.parse_args()
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-soak-cost-")
    os.environ |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    from fleet_alerting.deployments.serve import local_server

    with local_server() as url:
        asyncio.run(measure(args, url))


if __name__ == "__main__":
    main()
