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
from contextlib import nullcontext
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

    flows = {"bare": bare, "tasks": tasks, "artifacts": artifacts, "logs": logs}
    # the bare flow again, as serve's deployments are (a concurrency limit of 1: a lease per
    # run, renewed by a thread of its own) and with Prefect's heartbeat off
    return flows | {"limited": bare, "noheartbeat": bare}


DEPLOYMENT_OPTIONS: dict[str, dict[str, Any]] = {"limited": {"concurrency_limit": 1}}


def run_settings(name: str) -> dict[Any, Any]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    return {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None} if name == "noheartbeat" else {}


def server_pid() -> int:
    [pid] = descendants(os.getpid())
    return pid


async def idle_rate(seconds: float) -> float:
    server = server_pid()
    before = cpu_seconds(server)
    await asyncio.sleep(seconds)
    return (cpu_seconds(server) - before) / seconds


async def batch(
    client: Any, flow: Any, deployment_id: Any, runs: int, settle: float, idle: float, name: str
):
    from prefect.settings import temporary_settings

    from fleet_alerting.deployments.prefect_engine import run_in_process

    server = server_pid()
    own, theirs, began = time.process_time(), cpu_seconds(server), time.monotonic()
    for _ in range(runs):
        flow_run = await client.create_flow_run_from_deployment(deployment_id)
        # entered only where it changes something: each entry validates all of Prefect's
        # settings again (~20 ms of CPU), which would count as the run's
        with (
            temporary_settings(updates=run_settings(name)) if run_settings(name) else nullcontext()
        ):
            state = await run_in_process(flow, flow_run)
        assert state.is_completed(), state
    own = time.process_time() - own
    await asyncio.sleep(settle)  # events, task runs and logs recorded by the server's services
    theirs = cpu_seconds(server) - theirs - idle * (time.monotonic() - began)
    return own / runs, theirs / runs


async def polls(
    client: Any, deployment_ids: list[Any], count: int, idle: float, mark_ready: bool
) -> float:
    """The server's CPU per ask for due runs, as serve asks: a plain read, or (`mark_ready`,
    every 20 s) Prefect's runner endpoint, which also marks the deployments Ready."""
    from fleet_alerting.deployments.serve import scheduled_runs

    server = server_pid()
    theirs, began = cpu_seconds(server), time.monotonic()
    for _ in range(count):
        await scheduled_runs(client, deployment_ids, datetime.now(UTC), mark_ready)
    await asyncio.sleep(1.0)  # the runner endpoint's marking runs after its answer
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
        flows = {name: flow for name, flow in make_flows().items() if name in args.variants}
        ids = {}
        for name, flow in flows.items():
            options = DEPLOYMENT_OPTIONS.get(name, {})
            ids[name] = await (await flow.ato_deployment(name=name, **options)).aapply()
        idle = await idle_rate(args.settle * 2)
        totals: dict[str, list[tuple[float, float]]] = {name: [] for name in flows}
        async with one_client() as client:  # the runs' client too, as in serve
            for name, flow in flows.items():  # warm-up: imports, first connections
                await batch(client, flow, ids[name], 2, 1.0, idle, name)
            for _ in range(args.passes):
                for name, flow in flows.items():
                    got = await batch(client, flow, ids[name], args.runs, args.settle, idle, name)
                    totals[name].append(got)
            poll = {
                marks: await polls(client, list(ids.values()), 50, idle, marks)
                for marks in (True, False, True, False)
            }
    report(totals, poll, idle, args)


def report(
    totals: dict[str, list[tuple[float, float]]], poll: dict[bool, float], idle: float, args
) -> None:
    load = os.getloadavg()[0]
    print(
        f"{args.runs} runs × {args.passes} passes per variant; load {load:.1f}; server idle "
        f"{idle * 1000:.0f} ms CPU/s (subtracted)"
    )
    best = {name: min(got, key=lambda g: g[0] + g[1]) for name, got in totals.items()}
    middle = {
        name: sorted(got, key=lambda g: g[0] + g[1])[len(got) // 2] for name, got in totals.items()
    }
    for name, (own, theirs) in best.items():
        own_m, theirs_m = middle[name]
        print(
            f"{name:11}: serve {own * 1000:6.1f} ms + server {theirs * 1000:6.1f} ms per run "
            f"(median of passes {own_m * 1000:6.1f} + {theirs_m * 1000:6.1f})"
        )
    bare = sum(best["bare"])
    parts = {
        "per task run": ("tasks", TASKS),
        "per artifact": ("artifacts", ARTIFACTS),
        "per log line": ("logs", LOGS),
        "a concurrency limit of 1": ("limited", 1),
        "the heartbeat off": ("noheartbeat", 1),
    }
    said = [
        f"{what} {(sum(best[name]) - bare) / n * 1000:+.1f} ms"
        for what, (name, n) in parts.items()
        if name in best
    ]
    print(f"a bare flow run: {bare * 1000:.0f} ms; " + "; ".join(said))
    print(
        f"per poll (server): a read {poll[False] * 1000:.1f} ms; the runner endpoint (marks "
        f"the deployments Ready) {poll[True] * 1000:.1f} ms (the second pass of each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument(
        "--variants",
        type=lambda v: ["bare", *v.split(",")],
        default=["bare", "tasks", "artifacts", "logs", "limited", "noheartbeat"],
        help="besides bare, e.g. limited,noheartbeat",
    )
    args = parser.parse_args()
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-soak-cost-")
    os.environ |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    from fleet_alerting.deployments.serve import local_server

    with local_server() as url:
        asyncio.run(measure(args, url))


if __name__ == "__main__":
    main()
