"""Benchmark: the Alertmanager escalation with 10,000 alerts listed, against a real Alertmanager.

A real Alertmanager (Debian) holds `--alerts` critical alerts (`HostDown` on pi-00000…, with
summary, description, runbook and generator URL, as Prometheus posts them). Per run:

- **raw**: one `GET /api/v2/alerts?filter=severity="critical"` + JSON decode (httpx) — the least
  any client reading the same answer does;
- **ours**: what the flow does with the answer's alerts: the Alertmanager client (the same GET,
  the alerts read), `to_signals`, and the store's evaluation as the pipeline runs it
  (`evaluate_and_record` with the `unseen` of the judge, storm passes included, one transaction).

Run 1 opens the incidents (open_after 1: Alertmanager debounces), runs 2+ are the steady state.
Each `--code LABEL=DIR` checkout runs in a child process of its own with PYTHONPATH=DIR; the
checkouts' passes alternate (before, after, before, after…), a fresh store each pass; raw and
ours alternate within each run. Printed: ours / raw for the opening run and the steady median;
the store's time split into the engine's (`decide`) and the rest (the write: incidents, outbox,
history, commit), and the opening run's fetch + write alone / raw (what no engine work can cut);
the opening run's CPU of the store and of its engine (steadier than wall time on a busy machine).

    PYTHONPATH=$PWD .venv/bin/python bench/alertmanager_escalation.py [--alerts 10000]
        [--runs 6] [--passes 2] [--code before=/tmp/main --code after=.]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

MATCHERS = ['severity="critical"']


def post_alerts(url: str, count: int) -> None:
    now = datetime.now(UTC)
    ends = (now + timedelta(hours=2)).isoformat()
    alerts = [
        {
            "labels": {
                "alertname": "HostDown",
                "severity": "critical",
                "instance": f"pi-{i:05}:9100",
                "host": f"pi-{i:05}",
                "job": "node",
            },
            "annotations": {
                "summary": f"pi-{i:05} is down",
                "description": "node_exporter has not been scraped for 5 minutes",
                "runbook_url": "https://runbooks.example/host-down",
            },
            "startsAt": (now - timedelta(minutes=10)).isoformat(),
            "endsAt": ends,
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up+%3D%3D+0",
        }
        for i in range(count)
    ]
    with httpx.Client(timeout=120) as client:
        for start in range(0, count, 1000):
            client.post(
                f"{url}/api/v2/alerts", json=alerts[start : start + 1000]
            ).raise_for_status()
        deadline = time.monotonic() + 120
        while len(client.get(f"{url}/api/v2/alerts").json()) < count:
            if time.monotonic() > deadline:
                raise SystemExit("Alertmanager did not list every alert within 120 s")
            time.sleep(0.5)


async def child(url: str, runs: int, workdir: Path) -> list[dict[str, float]]:
    """One pass of this checkout: `runs` runs on a fresh store."""
    from fleet_alerting.config.schema import EscalationRule
    from fleet_alerting.core.links import LinksConfig
    from fleet_alerting.core.policy import default_policies
    from fleet_alerting.core.signals import Severity
    from fleet_alerting.sources.alertmanager.client import Alertmanager
    from fleet_alerting.sources.alertmanager.judge import to_signals, unseen
    from fleet_alerting.store.database import Store
    from fleet_alerting.tasks import pipeline
    from fleet_alerting.tasks.pipeline import evaluate_and_record

    # of the store's time and CPU, the engine's (signals + incidents → evaluation)
    engine, engine_cpu = [0.0], [0.0]
    decide = pipeline.decide

    def timed_decide(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return decide(*args, **kwargs)
        finally:
            engine[0] += time.perf_counter() - started
            engine_cpu[0] += time.process_time() - cpu

    pipeline.decide = timed_decide

    def older_now(now: datetime) -> tuple[datetime, ...]:
        """Code before 2026-12-07 took the run's time (unused) as to_signals' second argument."""
        return (now,) if "now" in inspect.signature(to_signals).parameters else ()

    rule = EscalationRule(name="critical", matchers=MATCHERS)
    links = LinksConfig(grafana_url="https://grafana.example", loki_datasource_uid="LOKI")
    policy = default_policies()[Severity.critical].model_copy(
        update={"open_after": 1, "resolve_after": 1}
    )
    store = Store(workdir / "state.sqlite")
    rows = []
    async with httpx.AsyncClient(timeout=60) as http:
        api = Alertmanager(http, url)
        for _ in range(runs):
            t0 = time.perf_counter()
            raw = await http.get(f"{url}/api/v2/alerts", params=[("filter", MATCHERS[0])])
            raw.json()
            t1 = time.perf_counter()
            now = datetime.now(UTC)
            answer = await api.escalation_alerts(MATCHERS)
            t2 = time.perf_counter()
            signals = to_signals([(rule, answer.alerts)], *older_now(now), url, links)
            t3 = time.perf_counter()
            engine[0] = engine_cpu[0] = 0.0
            cpu = time.process_time()
            evaluation, queued = evaluate_and_record(
                store,
                signals,
                lambda _s: policy,
                now,
                unseen=lambda incidents, s=signals: unseen(s, incidents, [rule.name]),
            )
            t4, cpu = time.perf_counter(), time.process_time() - cpu
            rows.append(
                {
                    "raw": t1 - t0,
                    "fetch": t2 - t1,
                    "signals": t3 - t2,
                    "store": t4 - t3,
                    "engine": engine[0],
                    "store_cpu": cpu,
                    "engine_cpu": engine_cpu[0],
                    "alerts": len(answer.alerts),
                    "changed": len(evaluation.incidents),
                    "queued": queued,
                }
            )
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--code", action="append", default=[], help="LABEL=DIR (repeatable)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # child mode: URL
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(child(args.child, args.runs, Path(tmp)))
        print(json.dumps(rows))
        return
    from tests.servers import start_alertmanager

    codes = [c.split("=", 1) for c in args.code] or [["this", os.getcwd()]]
    results: dict[str, list[list[dict[str, float]]]] = {label: [] for label, _ in codes}
    with tempfile.TemporaryDirectory() as tmp:
        server, url = start_alertmanager(
            Path(tmp) / "am", "route: {receiver: nobody}\nreceivers: [{name: nobody}]\n"
        )
        try:
            post_alerts(url, args.alerts)
            for _ in range(args.passes):
                for label, code in codes:
                    env = os.environ | {"PYTHONPATH": str(Path(code).resolve())}
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", url, "--runs", str(args.runs)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    results[label].append(json.loads(out.splitlines()[-1]))
        finally:
            server.stop()
    report(results, args.alerts)


def ratio(run: dict[str, float]) -> float:
    return (run["fetch"] + run["signals"] + run["store"]) / run["raw"]


def report(results: dict[str, list[list[dict[str, float]]]], alerts: int) -> None:
    ms = 1000
    print(
        f"{alerts} alerts listed; per run: raw GET+decode | ours = fetch + signals + store (ms); "
        "store = engine + write (the write: incidents, outbox, history, commit)"
    )
    for label, passes in results.items():
        for n, rows in enumerate(passes, 1):
            for i, r in enumerate(rows, 1):
                ours = r["fetch"] + r["signals"] + r["store"]
                print(
                    f"{label} pass {n} run {i}: raw {r['raw'] * ms:6.0f} | ours {ours * ms:6.0f} "
                    f"= {r['fetch'] * ms:5.0f} + {r['signals'] * ms:5.0f} + {r['store'] * ms:5.0f}"
                    f" ({r['engine'] * ms:5.0f} + {(r['store'] - r['engine']) * ms:5.0f})"
                    f"  ratio {ours / r['raw']:5.2f}  changed {r['changed']:5.0f}"
                    f"  queued {r['queued']:3.0f}"
                )
    print()
    for label, passes in results.items():
        opening = [ratio(p[0]) for p in passes]
        steady = [ratio(r) for p in passes for r in p[1:]]
        fetch = [r["fetch"] / r["raw"] for p in passes for r in p[1:]]
        floor = [(p[0]["fetch"] + p[0]["store"] - p[0]["engine"]) / p[0]["raw"] for p in passes]
        print(
            f"{label}: opening run ours/raw {', '.join(f'{x:.2f}' for x in opening)} (fetch + "
            f"write alone: {', '.join(f'{x:.2f}' for x in floor)}); steady median "
            f"{statistics.median(steady):.2f} (min {min(steady):.2f}); fetch alone / raw median "
            f"{statistics.median(fetch):.2f}"
        )
        cpu = [(p[0]["store_cpu"] * 1000, p[0]["engine_cpu"] * 1000) for p in passes]
        print(
            f"{label}: opening run's store CPU (engine) ms: "
            + ", ".join(f"{store:.0f} ({engine:.0f})" for store, engine in cpu)
        )


if __name__ == "__main__":
    main()
