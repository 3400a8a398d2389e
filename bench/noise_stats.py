"""Benchmark (not a test): the audit's noise statistics for 200 alerts over 90 days of 1-minute
ALERTS history, read from a real Prometheus.

The history (seeded: each alert fires 0-300 times for 1-180 minutes, 1-minute evaluations, with
its ALERTS_FOR_STATE) is backfilled with `promtool tsdb create-blocks-from openmetrics` into a
Prometheus from Debian on a loopback port. Then, 3 times each, interleaved, best kept:

- raw samples: the exact HTTP queries the audit makes (`ALERTS{alertstate="firing"}[7d]` and
  `ALERTS_FOR_STATE[7d]` instant queries, a week at a time), JSON-decoded, nothing else;
- raw range queries: `query_range` of the same two selectors at a 60 s step over the 90 days,
  in 7-day chunks (Prometheus' 11,000-points limit), JSON-decoded, nothing else;
- ours: `noise_statistics` (the queries above + episodes + per alert/watch/severity tables);
- charts: the two PNGs of the report, separately.

Peak RSS (VmHWM) of the measuring process, a child started after the set-up.
Run: PYTHONPATH=. .venv/bin/python bench/noise_stats.py
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from fleet_alerting.alertmanager.routing import parse_config
from fleet_alerting.audit import synth
from fleet_alerting.audit.live import PrometheusSeries, noise_statistics
from fleet_alerting.audit.model import Expectations, Rule
from fleet_alerting.audit.noise import charts
from tests.servers import Server, free_port, http_ready, require_binary

END = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 90
WEEK = 7 * 86400


def profile(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    sevs = ["critical"] * 2 + ["warning"] * 5 + ["info"] * 3
    return [
        {
            "alert": f"Alert{i:03d}",
            "severity": rng.choice(sevs),
            "fires": rng.choice([0, rng.randint(1, 20), rng.randint(20, 300)]),
            "minutes": rng.randint(1, 180),
            "pending_minutes": rng.choice([0, 1, 5]),
            "offset_minutes": rng.randint(1, 600),
        }
        for i in range(n)
    ]


def peak_rss_mb() -> float:
    """This process' peak RSS (VmHWM: unlike ru_maxrss, not inherited across fork + exec from
    the parent that generated the history)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_samples(url: str, start: float, end: float) -> int:
    n = 0
    with httpx.Client(timeout=300) as client:
        t = end
        while t > start:
            w = min(WEEK, t - start)
            for sel in ('ALERTS{alertstate="firing"}', "ALERTS_FOR_STATE"):
                body = client.get(
                    f"{url}/api/v1/query", params={"query": f"{sel}[{int(w)}s]", "time": t}
                ).json()
                n += sum(len(s["values"]) for s in body["data"]["result"])
            t -= w
    return n


def raw_range(url: str, start: float, end: float) -> int:
    n = 0
    with httpx.Client(timeout=300) as client:
        t = start
        while t < end:
            u = min(t + WEEK, end)
            for sel in ('ALERTS{alertstate="firing"}', "ALERTS_FOR_STATE"):
                body = client.get(
                    f"{url}/api/v1/query_range",
                    params={"query": sel, "start": t, "end": u, "step": 60},
                ).json()
                n += sum(len(s["values"]) for s in body["data"]["result"])
            t = u + 60
    return n


def measure(url: str, n_alerts: int, runs: int) -> None:
    start = END - timedelta(days=DAYS)
    alerts = profile(n_alerts, 11)
    rules = [Rule(a["alert"], "vector(1)", {"severity": a["severity"]}) for a in alerts]
    am = parse_config(
        {
            "route": {
                "receiver": "slack",
                "routes": [{"matchers": ['severity="critical"'], "receiver": "pd"}],
            },
            "receivers": [{"name": "slack"}, {"name": "pd"}],
        }
    )
    exp = Expectations(paging_receivers=frozenset({"pd"}))
    lo, hi = start.timestamp(), END.timestamp()
    best = {"raw samples": 1e9, "raw range": 1e9, "ours": 1e9, "charts": 1e9}
    for _ in range(runs):
        t0 = time.perf_counter()
        n_raw = raw_samples(url, lo, hi)
        best["raw samples"] = min(best["raw samples"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        n_range = raw_range(url, lo, hi)
        best["raw range"] = min(best["raw range"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        stats = noise_statistics(PrometheusSeries(url, timeout=300), am, rules, exp, start, END)
        best["ours"] = min(best["ours"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        charts(stats)
        best["charts"] = min(best["charts"], time.perf_counter() - t0)
    rss = peak_rss_mb()
    fired = int((stats.alerts["fires"] > 0).sum())
    print(
        f"raw samples (the audit's queries, decoded): {best['raw samples']:.2f} s, "
        f"{n_raw:,} samples"
    )
    print(f"raw range queries (60 s step, decoded): {best['raw range']:.2f} s, {n_range:,} points")
    print(
        f"ours (queries + episodes + tables): {best['ours']:.2f} s; {fired} alerts fired, "
        f"{int(stats.alerts['fires'].sum()):,} fires"
    )
    print(f"charts: {best['charts']:.2f} s")
    print(
        f"ratio ours / raw samples = {best['ours'] / best['raw samples']:.2f}; "
        f"ours / raw range queries = {best['ours'] / best['raw range']:.2f}"
    )
    print(f"peak RSS of this process: {rss:.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(args.measure, args.alerts, args.runs)
        return 0
    start = END - timedelta(days=DAYS)
    alerts = profile(args.alerts, 11)
    firing, for_state = synth.alert_history(alerts, start.timestamp(), END.timestamp())
    samples = sum(len(s["values"]) for s in firing)
    work = Path(tempfile.mkdtemp(prefix="bench-noise-"))
    (work / "h.om").write_text(synth.openmetrics(firing + for_state))
    del firing, for_state
    t0 = time.perf_counter()
    subprocess.run(
        [
            require_binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            "--max-block-duration=2400h",
            str(work / "h.om"),
            str(work / "data"),
        ],
        check=True,
    )
    print(
        f"{args.alerts} alerts, {samples:,} firing samples (+ as many ALERTS_FOR_STATE) "
        f"over {DAYS} days; backfill {time.perf_counter() - t0:.1f} s"
    )
    (work / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(
        [
            require_binary("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            "--storage.tsdb.retention.time=10y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        work,
        http_ready(f"{url}/-/ready"),
        "prometheus",
    )
    try:
        # measured in a child process, so its peak RSS is the statistics', not the set-up's
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--measure",
                url,
                "--alerts",
                str(args.alerts),
                "--runs",
                str(args.runs),
            ],
            check=True,
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
