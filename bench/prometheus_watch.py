"""Benchmark: one watch whose result holds 1,000 hosts' series, against a real Prometheus.

Per run it measures the raw instant query (HTTP + JSON decode of the watch expression), then what
this project adds: evaluation (result → signals, load open incidents, policy) and the store write
(one transaction: incidents + outbox). Prints the ratio (evaluation + store write) / raw query;
goal ≤ 1.5. Run 1 creates 1,000 pending incidents, run 2 opens them (1,000 Slack notifications
queued), later runs are the steady state of a fleet-wide failure.

    PYTHONPATH=$PWD .venv/bin/python bench/prometheus_watch.py [--hosts 1000] [--runs 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from fleet_alerting.config.schema import PrometheusConfig
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import default_policies, evaluate
from fleet_alerting.sources.prometheus.client import PrometheusClient
from fleet_alerting.sources.prometheus.judge import (
    WatchOutcome,
    active_watches,
    evaluate_watches,
    presence_query,
)
from fleet_alerting.store.sqlite import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.servers import start_prometheus, wait_until


class FleetExporter(FakeServer):
    def __init__(self, hosts: int):
        super().__init__()
        lines = ["# TYPE role_agent_last_run_success gauge"]
        lines += [f'role_agent_last_run_success{{host="pi-{i:04d}"}} 0' for i in range(hosts)]
        self.body = "\n".join(lines) + "\n"

    def handle(self, request: Request) -> Response:
        return Response(200, self.body, {"content-type": "text/plain; version=0.0.4"})


async def bench(url: str, hosts: int, runs: int, workdir: Path) -> list[dict[str, float]]:
    watch = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
    links = LinksConfig(
        grafana_url="https://grafana.example", prometheus_url="https://prometheus.example"
    )
    policies = default_policies()
    store = Store(workdir / "state.sqlite")
    rows = []
    async with httpx.AsyncClient() as http:
        client = PrometheusClient(http, url, 10)
        for _ in range(runs):
            now = utcnow()
            t0 = time.perf_counter()
            raw = await http.get(f"{url}/api/v1/query", params={"query": watch.expr})
            raw.json()
            t1 = time.perf_counter()
            firing, present = await asyncio.gather(
                client.query(watch.expr), client.query(presence_query(watch) or "")
            )
            t2 = time.perf_counter()
            assert len(firing.samples) == hosts, len(firing.samples)
            outcome = WatchOutcome(
                watch,
                firing=firing.samples,
                present=present.samples,
            )
            result = evaluate_watches([outcome], links)
            t2a = time.perf_counter()
            incidents = store.unresolved()
            t2b = time.perf_counter()
            signals = result.signals + result.vanished(incidents.values())
            evaluation = evaluate(signals, incidents, lambda s: policies[s], now)
            t3 = time.perf_counter()
            store.record(evaluation, now)
            t4 = time.perf_counter()
            rows.append(
                {
                    "raw_query": t1 - t0,
                    "adapter": t2 - t1,
                    "evaluation": t3 - t2,
                    "watch_eval": t2a - t2,
                    "engine": t3 - t2a,
                    "load": t2b - t2a,
                    "store_write": t4 - t3,
                    "changed": len(evaluation.incidents),
                    "queued": len(evaluation.notifications),
                }
            )
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
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
                30,
                "all hosts scraped",
            )
            rows = asyncio.run(bench(url, args.hosts, args.runs, workdir))
        finally:
            server.stop()
    ms = 1000
    print(f"{args.hosts} hosts failing, one watch, {args.runs} runs (ms)")
    print(
        "run  raw_query  adapter(2 queries)  evaluation (watches + load/engine)  store_write"
        "  ratio  changed  queued"
    )
    for i, r in enumerate(rows, 1):
        ratio = (r["evaluation"] + r["store_write"]) / r["raw_query"]
        split = f"({r['watch_eval'] * ms:.1f} + {r['engine'] * ms:.1f})"
        print(
            f"{i:>3}  {r['raw_query'] * ms:9.1f}  {r['adapter'] * ms:18.1f}  "
            f"{r['evaluation'] * ms:10.1f} {split:>22}  {r['store_write'] * ms:11.1f}  "
            f"{ratio:5.2f}  {r['changed']:7d}  {r['queued']:6d}"
        )
    steady = rows[2:] or rows

    def median(name: str) -> float:
        return statistics.median(r[name] for r in steady) * ms

    raw = median("raw_query")
    ours = statistics.median(r["evaluation"] + r["store_write"] for r in steady) * ms
    print(
        f"steady state (runs 3+), medians: raw query {raw:.1f} ms, adapter {median('adapter'):.1f}"
        f" ms; watch evaluation {median('watch_eval'):.1f} ms, load + engine "
        f"{median('engine'):.1f} ms (of which load {median('load'):.1f} ms), "
        f"store write {median('store_write'):.1f} ms"
    )
    print(f"ratio (evaluation + store write) / raw query = {ours / raw:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
