"""Benchmark: the running system — `run`'s wall time, and `serve` with every watch configured.

1. `fleet-alerting run blackbox-probe` on a 20-target probe (a local HTTP server answers 200),
   as a new user types it: cold (no Prefect API: the plain run) and beside a running `serve`
   (the run recorded in serve's server). Goal: ≤ 5 s wall, cold, on an idle machine.
2. `serve` with all five watches configured, every minute (the blackbox probe every 10 s), for
   `--minutes`: peak RSS of serve's process tree (server, runs — everything), sampled every
   0.5 s. Goal: ≤ 400 MB. Prometheus, Alertmanager and the MQTT broker are addresses where nothing
   listens (those watches report their source unreachable, as they would in an outage); the Fleet
   API is the local server.
3. Meanwhile onset → page: the critical target starts failing (HTTP 503) once serve has run the
   probe a few times; the page is the PagerDuty line in the local outbox file. Probe every 10 s,
   `page_after: 30s`, `open_after: 1`. Expected ≤ page_after + 2 × interval (the engine counts
   persistence from the first failing observation, which comes up to one interval after onset).

    .venv/bin/python bench/running.py [--minutes 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]
CLI = [str(ROOT / ".venv/bin/fleet-alerting")]
FAILING = {"api": False}


class Fleet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/health/events/recent"):
            body, status = b'{"events": [], "count": 0}', 200
        elif self.path == "/api/healthz" and FAILING["api"]:
            body, status = b'{"status": "down"}', 503
        else:
            body, status = b'{"status": "ok"}', 200
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def write_config(folder: Path, base: str, all_watches: bool) -> Path:
    targets = [{"name": "Fleet API", "url": f"{base}/api/healthz", "severity": "critical"}]
    targets += [{"name": f"pi-{i:02}", "url": f"{base}/healthz?d={i}"} for i in range(19)]
    config: dict[str, Any] = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "dry_run": True},
        "policies": {
            "critical": {"open_after": 1, "notify": ["slack"], "page": ["pagerduty"]}
            | {"page_after": "30s"}
        },
        "blackbox": {"targets": targets, "timeout": "3s"},
    }
    if all_watches:
        config |= {
            "prometheus": {"url": "http://127.0.0.1:9", "timeout": "3s"},
            "alertmanager": {"url": "http://127.0.0.1:9"},
            "fleet_api": {"url": base, "token": {"env": "BENCH_FLEET_TOKEN"}},
            "zigbee": {
                "timeout": "3s",
                "coordinators": [{"name": "pi-video-01", "broker": "mqtt://127.0.0.1:9"}],
            },
            "schedule": {"every": {"blackbox-probe": "10s"}},
        }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def timed_run(config: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one `run` (and its CPU seconds, user + system, printed: on a busy machine
    the CPU time is what the wall time would be when idle, give or take the probing itself)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    ran = subprocess.run(
        [*CLI, "run", "blackbox-probe", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    outcome = "ok" if ran.returncode == 0 else f"FAILED: {ran.stderr.splitlines()[-1][:300]}"
    print(f"  run: {wall:.2f} s wall, {cpu:.2f} s CPU, {outcome}", flush=True)
    return wall, ran.stderr.splitlines()[0]


def rss_kb(root_pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total, pids = 0, [root_pid]
    while pids:
        pid = pids.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        pids += [int(c) for c in children]
    return total


def paged_at(outbox: Path) -> float | None:
    if not outbox.exists():
        return None
    for line in outbox.read_text().splitlines():
        sent = json.loads(line)
        if sent["channel"] == "pagerduty" and sent["kind"] == "paged":
            return time.time()
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Fleet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    work = Path(tempfile.mkdtemp(prefix="bench-running-"))
    home = work / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(home), "BENCH_FLEET_TOKEN": "bench-token"}
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}

    (work / "run").mkdir()
    run_config = write_config(work / "run", base, all_watches=False)
    cold = [timed_run(run_config, env) for _ in range(args.runs)]
    print(f"run, cold (no API): {[round(w, 2) for w, _ in cold]} s; mode: {cold[0][1]}")

    (work / "serve").mkdir()
    serve_config = write_config(work / "serve", base, all_watches=True)
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "serve", "--config", str(serve_config)], env=env, stdout=log, stderr=log
    )
    peak, samples, onset, page = 0, [], None, None
    outbox = work / "serve" / "outbox.jsonl"
    try:
        while not (home / "fleet-alerting-serve.json").exists():
            if proc.poll() is not None:
                raise SystemExit(f"serve exited: {(work / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
        started = time.monotonic()
        with_serve = [timed_run(run_config, env) for _ in range(args.runs)]
        print(
            f"run, beside serve: {[round(w, 2) for w, _ in with_serve]} s; mode: {with_serve[0][1]}"
        )
        while time.monotonic() - started < args.minutes * 60:
            kb = rss_kb(proc.pid)
            samples.append(kb)
            peak = max(peak, kb)
            if onset is None and time.monotonic() - started > 45:
                FAILING["api"], onset = True, time.time()
            if onset and page is None and (at := paged_at(outbox)):
                page = at
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()
    completed = (work / "serve.log").read_text().count(": Completed")
    print(
        f"serve, all watches, {args.minutes:g} min: peak RSS {peak / 1024:.0f} MB, "
        f"median {statistics.median(samples) / 1024:.0f} MB, {completed} runs completed"
    )
    if onset and page:
        print(f"onset → page (probe every 10 s, page_after 30s): {page - onset:.1f} s")
    else:
        print("onset → page: no page within the run")
    print(f"cold run median {statistics.median(w for w, _ in cold):.2f} s (goal ≤ 5 s idle)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
