"""Benchmark: one 10 MB Prometheus answer (130,000 firing series), read by the adapter.

Side by side in one run, on the same canned answer served over loopback HTTP:

- raw: `GET` + `orjson.loads` of the body, the least any client does;
- adapter: `PrometheusClient.query` — the capped streaming read, the envelope and every sample
  typed (`QueryResult`);
- optionally (`--judge`), what a watch run does next with the samples, each timed once, to show
  where the rest of a run's cost is: the watch evaluation (samples → signals, links included)
  and two runs of `Store.evaluate` (the engine and the SQLite write: run 1 records 130,000
  pending incidents, run 2 opens them).

Time is the median of `--runs` runs; memory is the peak traced by `tracemalloc` in a separate
run of each (tracing slows the code, so it is not timed). Goal: adapter ≤ 2× raw time and
≤ 3× raw memory.

    PYTHONPATH=$PWD .venv/bin/python bench/big_answer.py [--series 130000] [--runs 5] [--judge]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.fakes.http import FakeServer, Request, Response

MB = 1024 * 1024


def answer(series: int) -> bytes:
    """An instant vector as Prometheus writes it: one failing role agent per host."""
    result = [
        {
            "metric": {"host": f"pi-{i:06d}", "job": "node"},
            "value": [1765000000.123, "0"],
        }
        for i in range(series)
    ]
    return orjson.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


class CannedPrometheus(FakeServer):
    def __init__(self, body: bytes):
        super().__init__()
        self.body = body

    def handle(self, request: Request) -> Response:
        return Response(200, self.body, {"content-type": "application/json"})


async def raw(http: httpx.AsyncClient, url: str) -> int:
    body = orjson.loads((await http.get(f"{url}/api/v1/query", params={"query": "x"})).content)
    return len(body["data"]["result"])


async def adapter(http: httpx.AsyncClient, url: str) -> int:
    from fleet_alerting.sources.prometheus.client import PrometheusClient

    return len((await PrometheusClient(http, url, 60).query("x")).samples)


def timed(step: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    started = time.perf_counter()
    count = asyncio.run(step())
    return time.perf_counter() - started, count


def traced(step: Callable[[], Awaitable[int]]) -> float:
    """Peak MB allocated by the step (the answer body included)."""
    tracemalloc.start()
    try:
        asyncio.run(step())
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


def judge_once(url: str) -> dict[str, float]:
    """The watch evaluation of the adapter's samples, timed once (see the module docstring)."""
    from fleet_alerting.config.schema import PrometheusConfig
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.links import LinksConfig
    from fleet_alerting.core.policy import default_policies, evaluate
    from fleet_alerting.sources.prometheus.client import PrometheusClient
    from fleet_alerting.sources.prometheus.judge import (
        WatchOutcome,
        active_watches,
        evaluate_watches,
    )
    from fleet_alerting.store.database import Store

    watch = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
    links = LinksConfig(grafana_url="https://grafana.example", prometheus_url="https://p.example")

    async def samples() -> Any:
        async with httpx.AsyncClient(timeout=120) as http:
            return (await PrometheusClient(http, url, 60).query("x")).samples

    firing = asyncio.run(samples())
    started = time.perf_counter()
    evaluation = evaluate_watches([WatchOutcome(watch, firing, firing)], links)
    figures = {"watch_eval": time.perf_counter() - started, "signals": len(evaluation.signals)}
    policies = default_policies()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.sqlite")
        for run in (1, 2):
            now = utcnow()
            started = time.perf_counter()
            store.evaluate(
                lambda incidents, now=now: evaluate(
                    evaluation.signals, incidents, policies.__getitem__, now
                ),
                now,
            )
            figures[f"store_run{run}"] = time.perf_counter() - started
        store.close()
    figures["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=130_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--judge", action="store_true", help="also time the watch evaluation")
    args = parser.parse_args()
    body = answer(args.series)
    with CannedPrometheus(body) as server:

        def step(kind: Callable[[httpx.AsyncClient, str], Awaitable[int]]) -> Any:
            async def run() -> int:
                async with httpx.AsyncClient(timeout=120) as http:
                    return await kind(http, server.url)

            return run

        times: dict[str, list[float]] = {"raw": [], "adapter": []}
        for _ in range(args.runs):  # interleaved, so load from other jobs hits both alike
            for name, kind in (("raw", raw), ("adapter", adapter)):
                seconds, count = timed(step(kind))
                assert count == args.series, (name, count)
                times[name].append(seconds)
        memory = {name: traced(step(kind)) for name, kind in (("raw", raw), ("adapter", adapter))}
        extra = judge_once(server.url) if args.judge else {}
    raw_s, ours_s = (statistics.median(times[n]) for n in ("raw", "adapter"))
    print(f"answer: {len(body) / MB:.1f} MB, {args.series} series; median of {args.runs} runs")
    print(f"{'':10}{'time ms':>10}{'peak MB':>10}")
    for name, seconds in (("raw", raw_s), ("adapter", ours_s)):
        print(f"{name:10}{seconds * 1000:10.0f}{memory[name]:10.1f}")
    print(
        f"adapter / raw: time {ours_s / raw_s:.2f} (goal ≤ 2), "
        f"memory {memory['adapter'] / memory['raw']:.2f} (goal ≤ 3)"
    )
    if extra:
        print(
            f"watch evaluation: {extra['watch_eval'] * 1000:.0f} ms ({extra['signals']} signals); "
            f"Store.evaluate run 1 (pending): {extra['store_run1'] * 1000:.0f} ms, "
            f"run 2 (opened): {extra['store_run2'] * 1000:.0f} ms; "
            f"peak RSS of the process {extra['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
