"""Benchmark: `serve` over many minutes — does it stay flat in memory and disk?

Every checkout given with `--code LABEL=DIR` runs its own `serve` (own PREFECT_HOME, own store),
all at the same time, with all five watches every 10 s (`--every`): the blackbox probe and the
Fleet API against a local HTTP server, Prometheus and Alertmanager against real local servers
when installed (else an address where nothing listens), the MQTT broker where nothing listens.
Beside them, one process runs the same five watches plainly (`.fn`, no Prefect) as often — the
least the same work costs. Every 30 s: each serve's RSS — its own process and its children (the
local Prefect server, where serve starts it as a child) apart — the size of its prefect.db (with
-wal) and the load average; every line also goes to samples.tsv in the work folder.

Printed: per serve and process, RSS slope (MB/h, least squares over the samples after
`--warmup` minutes, and over the last half alone: a plateau shows as a last-half slope near
zero), the database's size and slope, and CPU seconds (serve and its children) per round of
five runs, serve / plain.

    PYTHONPATH=$PWD .venv/bin/python bench/soak.py [--minutes 16] [--warmup 4]
        [--code before=/tmp/main --code after=.]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from running import Fleet

ROOT = Path(__file__).parents[1]
WATCHES = (
    "blackbox-probe",
    "prometheus-watches",
    "alertmanager-escalation",
    "fleet-events",
    "zigbee-probe",
)
NOWHERE = "http://127.0.0.1:9"


def write_config(
    folder: Path,
    base: str,
    prometheus: str,
    alertmanager: str,
    keep: dict[str, str],
    every: int = 10,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    targets = [{"name": f"pi-{i:02}", "url": f"{base}/healthz?d={i}"} for i in range(20)]
    config: dict[str, Any] = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "dry_run": True},
        "blackbox": {"targets": targets, "timeout": "3s"},
        "prometheus": {"url": prometheus, "timeout": "3s"},
        "alertmanager": {"url": alertmanager},
        "fleet_api": {"url": base, "token": {"env": "BENCH_FLEET_TOKEN"}},
        "zigbee": {
            "timeout": "3s",
            "coordinators": [{"name": "pi-video-01", "broker": "mqtt://127.0.0.1:9"}],
        },
        "schedule": {"every": dict.fromkeys(WATCHES, f"{every}s")} | keep,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            found += [int(c) for c in children]
            todo += [int(c) for c in children]
    return found


def own_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, StopIteration):
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return int(next(x for x in status if x.startswith("VmRSS")).split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU of `pid` and its live descendants (a child's CPU is not in its parent's times)."""
    return sum(cpu_parts(pid))


def cpu_parts(pid: int) -> tuple[float, float]:
    """CPU seconds of `pid` itself and of its live descendants (serve's local server)."""
    own = _own_cpu(pid)
    return own, sum(_own_cpu(child) for child in descendants(pid))


def _own_cpu(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def sample(pid: int) -> dict[str, float]:
    """RSS in MB: serve's own process, its children (the local Prefect server), both."""
    serve = own_rss_mb(pid)
    children = sum(own_rss_mb(child) for child in descendants(pid))
    return {"serve": serve, "server": children, "total": serve + children}


def db_mb(home: Path) -> float:
    files = [home / "prefect.db", home / "prefect.db-wal"]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def finished_runs(log: Path) -> int:
    said = log.read_text()
    return said.count(": Completed") + said.count(": Failed")


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return sum((t - mt) * (v - mv) for t, v in samples) / var * 3600 if var else float("nan")


def plain_rounds(config: str, seconds: float, every: int) -> None:
    """Child mode: the five watches plainly, a round every `every` s; prints CPU per round (the
    first round, imports and connections, not counted)."""
    from fleet_alerting.deployments.run import plain_logging
    from fleet_alerting.flows import get_flow
    from fleet_alerting.tasks.runtime import go_plain

    go_plain()
    plain_logging(open(os.devnull, "w"))  # noqa: SIM115 -- for the child's lifetime

    async def one_round() -> None:
        for watch in WATCHES:
            # a source down fails the run; it still costs what it costs
            with contextlib.suppress(Exception):
                await get_flow(watch).fn(config_path=config)

    asyncio.run(one_round())
    start_cpu, started, rounds = time.process_time(), time.monotonic(), 0
    while time.monotonic() - started < seconds:
        began = time.monotonic()
        asyncio.run(one_round())
        rounds += 1
        time.sleep(max(0.0, every - (time.monotonic() - began)))
    print(f"{(time.process_time() - start_cpu) / max(rounds, 1):.4f} {rounds}", flush=True)


def real_servers(work: Path) -> tuple[str, str, list[Any]]:
    """A real Prometheus and Alertmanager when installed (tests/servers.py), else nowhere."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.servers import start_alertmanager, start_prometheus

        (work / "prometheus").mkdir(parents=True)
        (work / "alertmanager").mkdir(parents=True)
        prometheus, prometheus_url = start_prometheus(work / "prometheus", {"self": None})
        alertmanager, alertmanager_url = start_alertmanager(
            work / "alertmanager", "route: {receiver: nobody}\nreceivers: [{name: nobody}]\n"
        )
    except Exception as exc:  # not installed: the watches report their source unreachable
        print(f"(no real Prometheus/Alertmanager: {exc}; those watches see nothing listening)")
        return NOWHERE, NOWHERE, []
    return prometheus_url, alertmanager_url, [prometheus, alertmanager]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=16.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--code", action="append", default=[], help="LABEL=DIR (repeatable)")
    parser.add_argument("--every", type=int, default=10, help="seconds between a watch's runs")
    parser.add_argument("--keep-runs", help="schedule.keep_runs (e.g. 65m: a plateau within 2 h)")
    parser.add_argument("--keep-events", help="schedule.keep_events (e.g. 1h)")
    parser.add_argument("--plain", help=argparse.SUPPRESS)  # child mode: CONFIG
    args = parser.parse_args()
    if args.plain:
        plain_rounds(args.plain, args.minutes * 60, args.every)
        return
    fleet = ThreadingHTTPServer(("127.0.0.1", 0), Fleet)
    threading.Thread(target=fleet.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{fleet.server_port}"
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    prometheus, alertmanager, servers = real_servers(work)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"BENCH_FLEET_TOKEN": "bench-token", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env |= {"DO_NOT_TRACK": "1"}
    codes = [c.split("=", 1) for c in args.code] or [["this", str(ROOT)]]
    keep = {"keep_runs": args.keep_runs, "keep_events": args.keep_events}
    keep = {key: value for key, value in keep.items() if value}
    serves: dict[str, subprocess.Popen[bytes]] = {}
    for label, code in codes:
        home = work / label / "prefect-home"
        config = write_config(work / label, base, prometheus, alertmanager, keep, args.every)
        log = (work / label / "serve.log").open("w")
        child = env | {"PREFECT_HOME": str(home), "PYTHONPATH": str(Path(code).resolve())}
        cli = [sys.executable, "-m", "fleet_alerting.surfaces.cli", "serve", "--config"]
        # cwd: `python -m` puts it before PYTHONPATH, so each serve imports its own checkout
        serves[label] = subprocess.Popen(
            [*cli, str(config)], env=child, stdout=log, stderr=log, cwd=Path(code).resolve()
        )
    plain_config = write_config(work / "plain", base, prometheus, alertmanager, keep, args.every)
    plain = subprocess.Popen(
        [
            *(sys.executable, __file__, "--plain", str(plain_config), "--every", str(args.every)),
            *("--minutes", str(args.minutes)),
        ],
        env=env | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    parts = ("serve", "server", "total")
    rss = {(label, part): [] for label in serves for part in parts}
    disk: dict[str, list[tuple[float, float]]] = {label: [] for label in serves}
    samples = (work / "samples.tsv").open("w", buffering=1)
    samples.write("minutes\tcode\tserve_mb\tserver_mb\ttotal_mb\tdb_mb\tload1\n")
    started = time.monotonic()
    cpu_at_warmup: dict[str, tuple[float, float]] = {}
    runs_at_warmup: dict[str, int] = {}
    try:
        while time.monotonic() - started < args.minutes * 60:
            at = time.monotonic() - started
            load = os.getloadavg()[0]
            for label, proc in serves.items():
                home = work / label / "prefect-home"
                mb = sample(proc.pid)
                for part in parts:
                    rss[(label, part)].append((at, mb[part]))
                disk[label].append((at, db_mb(home)))
                if at >= args.warmup * 60 and label not in cpu_at_warmup:
                    cpu_at_warmup[label] = cpu_parts(proc.pid)
                    runs_at_warmup[label] = finished_runs(work / label / "serve.log")
                print(
                    f"{at / 60:5.1f} min {label}: RSS {mb['serve']:6.1f} + {mb['server']:6.1f} "
                    f"MB, db {db_mb(home):7.1f} MB, load {load:.1f}"
                )
                samples.write(
                    f"{at / 60:.2f}\t{label}\t{mb['serve']:.1f}\t{mb['server']:.1f}\t"
                    f"{mb['total']:.1f}\t{db_mb(home):.1f}\t{load:.2f}\n"
                )
            sys.stdout.flush()
            time.sleep(30)
        ends = {label: cpu_parts(proc.pid) for label, proc in serves.items()}
    finally:
        for proc in serves.values():
            proc.terminate()
        for proc in serves.values():
            proc.wait(120)
        for server in servers:
            server.stop()
        if sys.exc_info()[0] is not None:
            plain.kill()
    plain_cpu, plain_n = (float(x) for x in plain.communicate(timeout=120)[0].split())
    measured = (args.minutes - args.warmup) * 60 / args.every  # rounds of five after warm-up
    print(f"\nafter {args.warmup:g} min warm-up, {args.minutes:g} min in all (work: {work}):")
    print(f"plain: {plain_cpu * 1000:.0f} ms CPU per round of five runs ({plain_n:.0f} rounds)")
    for label in serves:
        runs = finished_runs(work / label / "serve.log")
        (own_end, server_end), (own_start, server_start) = ends[label], cpu_at_warmup[label]
        own, server = own_end - own_start, server_end - server_start
        cpu = own + server
        per_round = cpu / measured
        # a loaded machine makes runs overrun (superseded, not run): CPU per run finished too
        per_run = cpu / max(1, runs - runs_at_warmup.get(label, 0))
        sizes = disk[label]
        print(
            f"{label}: prefect.db {sizes[0][1]:.1f}→{sizes[-1][1]:.1f} MB, slope "
            f"{slopes(sizes, args.warmup)}; {runs} runs; CPU per round {per_round * 1000:.0f} ms "
            f"= {per_round / plain_cpu:.2f}× plain; per run finished after warm-up "
            f"{per_run * 1000:.0f} ms = {per_run / (plain_cpu / len(WATCHES)):.2f}× plain; per "
            f"round serve's process {own / measured * 1000:.0f} ms + its server "
            f"{server / measured * 1000:.0f} ms"
        )
        for part in parts:
            got = rss[(label, part)]
            print(
                f"  RSS {part}: {got[0][1]:.0f}→{got[-1][1]:.0f} MB, slope "
                f"{slopes(got, args.warmup)}"
            )


def slopes(samples: list[tuple[float, float]], warmup: float) -> str:
    """MB/h after warm-up, and over the last half and the last quarter of the samples (near 0:
    a plateau)."""
    warm = [s for s in samples if s[0] >= warmup * 60]
    half, quarter = samples[len(samples) // 2 :], samples[len(samples) * 3 // 4 :]
    return (
        f"{slope_per_hour(warm):.1f} MB/h after warm-up, {slope_per_hour(half):.1f} last half, "
        f"{slope_per_hour(quarter):.1f} last quarter"
    )


if __name__ == "__main__":
    main()
