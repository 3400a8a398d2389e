"""Benchmark: one watch with 1,000 (or 20,000) hosts' series, against a real Prometheus.

Per run it measures the raw instant query (HTTP + JSON decode of the watch expression), the
adapter (the two queries the flow really sends, parsed into samples), then what this project
adds: the watch evaluation (result → signals) and `Store.evaluate` — reading the open incidents,
the engine (`policy.evaluate`) and the write of what changed, in one transaction, as the flow
runs it. Two ratios:

- eval+store / raw query (goal ≤ 1.0);
- (adapter + eval+store) / the same two queries raw (the expression and the presence query, GET +
  JSON decode each): the flow's whole side, its own queries included (goal ≤ 1.5).

Run 1 creates the pending incidents, run 2 opens them (Slack + mirror queued), later runs are the
steady state of a fleet-wide failure: every series failing, nothing changes, nobody is told.
Each size runs in a process of its own (peak RSS per size), with three passes (a fresh store
each): the steady-state median of each pass, then min/median over the passes.

`--code DIR` runs the children on another checkout of the project (e.g. `git archive main`):
before and after, interleaved in one run.

    PYTHONPATH=$PWD .venv/bin/python bench/prometheus_watch.py [--hosts 1000,20000] [--runs 6]
        [--passes 3] [--code before=/tmp/main --code after=.]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.http import FakeServer, Request, Response
from tests.servers import start_prometheus, wait_until

MS = 1000


class FleetExporter(FakeServer):
    def __init__(self, hosts: int):
        super().__init__()
        lines = ["# TYPE role_agent_last_run_success gauge"]
        lines += [f'role_agent_last_run_success{{host="pi-{i:05d}"}} 0' for i in range(hosts)]
        self.body = "\n".join(lines) + "\n"

    def handle(self, request: Request) -> Response:
        return Response(200, self.body, {"content-type": "text/plain; version=0.0.4"})


async def raw_query(http: httpx.AsyncClient, url: str, expr: str) -> None:
    """GET + JSON decode: the least any client does."""
    (await http.get(f"{url}/api/v1/query", params={"query": expr})).json()


async def bench(url: str, hosts: int, runs: int, store_path: Path) -> list[dict[str, float]]:
    from fleet_alerting.config.schema import PrometheusConfig
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.incidents import Incident
    from fleet_alerting.core.links import LinksConfig
    from fleet_alerting.core.policy import Evaluation, default_policies, evaluate
    from fleet_alerting.sources.prometheus.client import PrometheusClient
    from fleet_alerting.sources.prometheus.judge import (
        WatchEvaluation,
        WatchOutcome,
        active_watches,
        evaluate_watches,
        presence_query,
    )
    from fleet_alerting.store.database import Store

    watch = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
    links = LinksConfig(
        grafana_url="https://grafana.example", prometheus_url="https://prometheus.example"
    )
    policies = default_policies()
    store = Store(store_path)
    rows = []
    async with httpx.AsyncClient(timeout=60) as http:
        client = PrometheusClient(http, url, 60)
        for _ in range(runs):
            now = utcnow()
            t0 = time.perf_counter()
            await raw_query(http, url, watch.expr)
            t0b = time.perf_counter()
            # the adapter's two queries raw, sent as the adapter sends them: concurrently
            await asyncio.gather(
                raw_query(http, url, watch.expr), raw_query(http, url, presence_query(watch) or "")
            )
            t1 = time.perf_counter()
            firing, present = await asyncio.gather(
                client.query(watch.expr), client.query(presence_query(watch) or "")
            )
            t2 = time.perf_counter()
            assert len(firing.samples) == hosts, len(firing.samples)
            result = evaluate_watches([WatchOutcome(watch, firing.samples, present.samples)], links)
            t3 = time.perf_counter()
            marks: dict[str, float] = {}

            def decide(
                incidents: Mapping[str, Incident],
                result: WatchEvaluation = result,
                now: datetime = now,
                marks: dict[str, float] = marks,
            ) -> Evaluation:
                marks["read"] = time.perf_counter()
                seen = {s.key for s in result.signals}  # what the pipeline hands to `vanish`
                unseen = [incidents[k] for k in incidents if k not in seen]
                signals = result.signals + result.unseen(unseen)
                evaluation = evaluate(signals, incidents, policies.__getitem__, now)
                marks["decided"] = time.perf_counter()
                return evaluation

            evaluation, queued = store.evaluate(decide, now)
            t4 = time.perf_counter()
            rows.append(
                {
                    "raw_query": t0b - t0,
                    "raw_both": t1 - t0b,
                    "adapter": t2 - t1,
                    "watch_eval": t3 - t2,
                    "load": marks["read"] - t3,
                    "engine": marks["decided"] - marks["read"],
                    "store_write": t4 - marks["decided"],
                    "ours": t4 - t2,
                    "changed": len(evaluation.incidents),
                    "queued": queued,
                }
            )
    store.close()
    return rows


def child(hosts: int, runs: int, passes: int) -> dict[str, Any]:
    """One size, in this process: a Prometheus, then `passes` fresh stores of `runs` runs."""
    with tempfile.TemporaryDirectory() as tmp, FleetExporter(hosts) as exporter:
        workdir = Path(tmp)
        server, url = start_prometheus(workdir, {"node": f"127.0.0.1:{exporter.port}"})
        try:
            count = f"count(role_agent_last_run_success) == {hosts}"
            wait_until(
                lambda: bool(
                    httpx.get(f"{url}/api/v1/query", params={"query": count}, timeout=60).json()[
                        "data"
                    ]["result"]
                ),
                180,
                "all hosts scraped",
            )
            results = [
                asyncio.run(bench(url, hosts, runs, workdir / f"state-{n}.sqlite"))
                for n in range(passes)
            ]
        finally:
            server.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"hosts": hosts, "passes": results, "rss_mb": rss_mb}


def steady(rows: list[dict[str, float]], name: str) -> float:
    return statistics.median(r[name] for r in rows[2:] or rows)


def ratios(rows: list[dict[str, float]]) -> tuple[float, float]:
    """Steady-state medians: eval+store / raw query, (adapter + eval+store) / the same two
    queries raw."""
    ours = statistics.median(r["ours"] for r in rows[2:] or rows)
    total = statistics.median(r["ours"] + r["adapter"] for r in rows[2:] or rows)
    return ours / steady(rows, "raw_query"), total / steady(rows, "raw_both")


def report(label: str, result: dict[str, Any]) -> None:
    hosts, passes = result["hosts"], result["passes"]
    print(f"\n[{label}] {hosts} series failing, one watch; ms per run, last pass:")
    print(
        "run  raw_query  raw_both  adapter  watch_eval   load  engine  store_write  eval+store"
        "  ratio  +adapter  changed  queued"
    )
    for i, r in enumerate(passes[-1], 1):
        print(
            f"{i:>3}  {r['raw_query'] * MS:9.1f}  {r['raw_both'] * MS:8.1f}  "
            f"{r['adapter'] * MS:7.1f}  "
            f"{r['watch_eval'] * MS:10.1f}  {r['load'] * MS:5.1f}  {r['engine'] * MS:6.1f}  "
            f"{r['store_write'] * MS:11.1f}  {r['ours'] * MS:10.1f}  "
            f"{r['ours'] / r['raw_query']:5.2f}  {(r['ours'] + r['adapter']) / r['raw_both']:8.2f}"
            f"  {r['changed']:7d}  {r['queued']:6d}"
        )
    both = [ratios(rows) for rows in passes]
    first = [b[0] for b in both]
    second = [b[1] for b in both]
    parts = ", ".join(
        f"{name} {statistics.median(steady(rows, name) for rows in passes) * MS:.1f}"
        for name in (
            "raw_query",
            "raw_both",
            "adapter",
            "watch_eval",
            "load",
            "engine",
            "store_write",
        )
    )
    print(f"steady state, median over passes (ms): {parts}")
    print(
        f"[{label}] {hosts} series: eval+store / raw = min {min(first):.2f}, median "
        f"{statistics.median(first):.2f} (goal <= 1.0); with the adapter's queries = min "
        f"{min(second):.2f}, median {statistics.median(second):.2f} (vs both queries raw; goal "
        "<= 1.5); "
        f"passes {', '.join(f'{a:.2f}/{b:.2f}' for a, b in both)}; peak RSS "
        f"{result['rss_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", default="1000,20000")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--code", action="append", default=[], help="LABEL=DIR: a checkout to run (repeatable)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runs, args.passes)))
        return
    codes = [c.split("=", 1) for c in args.code] or [["this", os.getcwd()]]
    here = Path(__file__).resolve()
    for hosts in (int(h) for h in args.hosts.split(",")):
        for label, code in codes:
            env = os.environ | {"PYTHONPATH": str(Path(code).resolve())}
            command = [sys.executable, str(here), "--child", str(hosts)]
            command += ["--runs", str(args.runs), "--passes", str(args.passes)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{label} ({code}), {hosts} series: {done.stderr.strip()[-2000:]}")
            report(label, json.loads(done.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
