"""Benchmark: a storm of 10,000 failing series in one watch, against a real Prometheus.

Per run it measures the raw instant query (HTTP + JSON decode of the watch expression) and what
this project does with the result: signals from the samples, then `Store.evaluate` as the
pipeline runs it — reading the open incidents, the engine with the storm passes (fleet
aggregates, inhibition, grouping, the per-run bound: `core.storms.decide`) and the store write
(incidents + outbox), one transaction. It prints the
ratio (evaluation + grouping + queueing) / raw query (goal <= 1.5), the messages queued per run
(goal <= 10) and the store's size after each run, beside the same runs without the passes
(`policy.evaluate` alone) for comparison.

Each `--code LABEL=DIR` checkout runs in a child process of its own (PYTHONPATH=DIR), the
checkouts' passes alternating against the same Prometheus, a fresh store each pass; the child
reports its peak RSS (VmHWM) above its baseline (imports done, store open, before the first
query), per failing series.

    PYTHONPATH=$PWD .venv/bin/python bench/storm.py [--hosts 10000] [--runs 6] [--passes 1]
        [--code before=/tmp/main --code after=.] [--plain]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from bench.prometheus_watch import FleetExporter
from fleet_alerting.config.schema import PrometheusConfig
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation, default_policies, evaluate
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.sources.prometheus.client import PrometheusClient
from fleet_alerting.sources.prometheus.judge import (
    WatchEvaluation,
    WatchOutcome,
    active_watches,
    evaluate_watches,
    presence_query,
)
from fleet_alerting.store.database import Store
from tests.servers import start_prometheus, wait_until


def store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("state.sqlite*"))


async def bench(
    url: str, hosts: int, runs: int, workdir: Path, storms: bool
) -> list[dict[str, Any]]:
    watch = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
    links = LinksConfig(
        grafana_url="https://grafana.example", prometheus_url="https://prometheus.example"
    )
    policies = default_policies()
    policy_for = policies.__getitem__
    rules = StormRules()
    folder = workdir / ("storms" if storms else "plain")
    folder.mkdir()
    store = Store(folder / "state.sqlite")
    rows = []
    async with httpx.AsyncClient(timeout=30) as http:
        client = PrometheusClient(http, url, 30)
        for _ in range(runs):
            now = utcnow()
            t0 = time.perf_counter()
            raw = await http.get(f"{url}/api/v1/query", params={"query": watch.expr})
            raw.json()
            t1 = time.perf_counter()
            del raw  # only timed: nothing the pipeline holds
            firing, present = await asyncio.gather(
                client.query(watch.expr), client.query(presence_query(watch) or "")
            )
            assert len(firing.samples) == hosts, len(firing.samples)
            t2 = time.perf_counter()
            result = evaluate_watches([WatchOutcome(watch, firing.samples, present.samples)], links)
            t2a = time.perf_counter()
            marks: dict[str, float] = {}

            def decide_now(
                incidents: Mapping[str, Incident],
                result: WatchEvaluation = result,
                now: datetime = now,
                marks: dict[str, float] = marks,
            ) -> Evaluation:
                # as tasks.pipeline.evaluate_and_record: one transaction, the records as read
                marks["read"] = time.perf_counter()
                seen = {s.key for s in result.signals}  # what the pipeline hands to `vanish`
                unseen = [incidents[k] for k in incidents if k not in seen]
                signals = result.signals + result.unseen(unseen)
                if storms:
                    evaluation = decide(signals, incidents, policy_for, rules, now)
                else:
                    evaluation = evaluate(signals, incidents, policy_for, now)
                marks["decided"] = time.perf_counter()
                return evaluation

            evaluation, queued = store.evaluate(decide_now, now)
            t2b, t3, t4 = marks["read"], marks["decided"], time.perf_counter()
            rows.append(
                {
                    "raw_query": t1 - t0,
                    "evaluation": t3 - t2,
                    "signals": t2a - t2,
                    "load": t2b - t2a,
                    "engine": t3 - t2b,
                    "store_write": t4 - t3,
                    "changed": len(evaluation.incidents),
                    "queued": queued,
                    "bytes": store_bytes(folder),
                }
            )
            # a run's objects go with it, as a watch's flow run's do (the peak is one run's)
            del firing, present, result, evaluation, decide_now
    store.close()
    return rows


def report(title: str, rows: list[dict[str, Any]]) -> None:
    ms = 1000
    print(title)
    print(
        "run  raw_query  evaluation (signals + load + engine)  store_write  ratio  changed"
        "  queued  store_MB"
    )
    for i, r in enumerate(rows, 1):
        ratio = (r["evaluation"] + r["store_write"]) / r["raw_query"]
        split = f"({r['signals'] * ms:.0f} + {r['load'] * ms:.0f} + {r['engine'] * ms:.0f})"
        print(
            f"{i:>3}  {r['raw_query'] * ms:9.1f}  {r['evaluation'] * ms:10.1f} {split:>25}  "
            f"{r['store_write'] * ms:11.1f}  {ratio:5.2f}  {r['changed']:7d}  {r['queued']:6d}"
            f"  {r['bytes'] / 1e6:8.1f}"
        )
    raw = statistics.median(r["raw_query"] for r in rows)
    storm = rows[1]  # run 2: the storm opens
    steady = rows[2:] or rows
    ours = statistics.median(r["evaluation"] + r["store_write"] for r in steady)
    print(
        f"opening run: {(storm['evaluation'] + storm['store_write']) * ms:.0f} ms, ratio "
        f"{(storm['evaluation'] + storm['store_write']) / raw:.2f} vs the median raw query; "
        f"steady state (runs 3+): ratio {ours / raw:.2f} (goal <= 1.5); "
        f"queued at most {max(r['queued'] for r in rows)} per run (goal <= 10); "
        f"store {rows[-1]['bytes'] / 1e6:.1f} MB"
    )


def vm_kb(field: str) -> int:
    """VmRSS / VmHWM of this process, in KB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def child(url: str, hosts: int, runs: int, storms: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        baseline = vm_kb("VmRSS")
        rows = asyncio.run(bench(url, hosts, runs, Path(tmp), storms))
        peak = vm_kb("VmHWM")
    return {"rows": rows, "baseline_kb": baseline, "peak_kb": peak, "hosts": hosts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--code", action="append", default=[], help="LABEL=DIR (repeatable)")
    parser.add_argument("--plain", action="store_true", help="also policy.evaluate alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # child mode: URL
    parser.add_argument("--no-storms", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.hosts, args.runs, not args.no_storms)))
        return
    codes = [c.split("=", 1) for c in args.code] or [["this", os.getcwd()]]
    kinds = [True, False] if args.plain else [True]
    results: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, FleetExporter(args.hosts) as exporter:
        workdir = Path(tmp)
        server, url = start_prometheus(workdir, {"node": f"127.0.0.1:{exporter.port}"})
        try:
            count = f"count(role_agent_last_run_success) == {args.hosts}"
            wait_until(
                lambda: bool(
                    httpx.get(f"{url}/api/v1/query", params={"query": count}).json()["data"][
                        "result"
                    ]
                ),
                120,
                "all hosts scraped",
            )
            for _ in range(args.passes):
                for label, code in codes:
                    for storms in kinds:
                        command = [sys.executable, __file__, "--child", url]
                        command += ["--hosts", str(args.hosts), "--runs", str(args.runs)]
                        command += [] if storms else ["--no-storms"]
                        env = os.environ | {"PYTHONPATH": str(Path(code).resolve())}
                        out = subprocess.run(
                            command, env=env, capture_output=True, text=True, check=True
                        ).stdout
                        results.setdefault((label, storms), []).append(
                            json.loads(out.splitlines()[-1])
                        )
        finally:
            server.stop()
    for (label, storms), passes in results.items():
        what = "with the storm passes" if storms else "policy.evaluate alone"
        for n, result in enumerate(passes, 1):
            report(f"{label}, pass {n}: {args.hosts} series failing, {what} (ms)", result["rows"])
            above = result["peak_kb"] - result["baseline_kb"]
            print(
                f"peak RSS {result['peak_kb'] / 1024:.0f} MB, {above / 1024:.0f} MB above the "
                f"baseline of {result['baseline_kb'] / 1024:.0f} MB: "
                f"{above * 1024 / args.hosts / 1000:.1f} KB per failing series (goal <= 5)"
            )
            print()
    summary(results)


def summary(results: dict[tuple[str, bool], list[dict[str, Any]]]) -> None:
    """Per checkout: the opening runs' and the steady runs' ratios over all passes."""
    for (label, storms), passes in results.items():
        opening, steady = [], []
        for result in passes:
            rows = result["rows"]
            raw = statistics.median(r["raw_query"] for r in rows)
            opening.append((rows[1]["evaluation"] + rows[1]["store_write"]) / raw)
            steady += [(r["evaluation"] + r["store_write"]) / r["raw_query"] for r in rows[2:]]
        peaks = [(p["peak_kb"] - p["baseline_kb"]) * 1.024 / p["hosts"] for p in passes]
        print(
            f"{label}{'' if storms else ' (policy.evaluate alone)'}: opening run "
            f"{', '.join(f'{x:.2f}' for x in opening)}; steady median "
            f"{statistics.median(steady):.2f} (min {min(steady):.2f}) of {len(steady)}; "
            f"peak KB per failing series {', '.join(f'{x:.1f}' for x in peaks)}"
        )


if __name__ == "__main__":
    main()
