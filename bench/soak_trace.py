"""Where `serve`'s memory grows: `serve` in this process, its config from bench/soak.py (every
watch every 10 s, local servers); tracemalloc starts after `--warmup` minutes, then every `--every`
minutes the biggest growths since then are printed by allocating stack.

    PYTHONPATH=$PWD .venv/bin/python bench/soak_trace.py [--minutes 12] [--warmup 3] [--every 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from running import Fleet
from soak import real_servers, write_config

FRAMES = 12


def report(base: tracemalloc.Snapshot, top: int) -> None:
    now = tracemalloc.take_snapshot()
    stats = now.compare_to(base, "traceback")
    total = sum(s.size_diff for s in stats)
    print(f"--- growth since the first snapshot: {total / 2**20:.1f} MB traced", flush=True)
    for stat in stats[:top]:
        print(f"{stat.size_diff / 2**20:+.2f} MB, {stat.count_diff:+d} blocks", flush=True)
        for line in stat.traceback.format(limit=FRAMES, most_recent_first=True)[::2]:
            print("    " + line.strip(), flush=True)


def holders() -> None:
    """How many Prefect FlowRun objects are alive, and what holds the oldest (two levels)."""
    import gc

    from prefect.client.schemas.objects import FlowRun

    gc.collect()
    runs = [o for o in gc.get_objects() if isinstance(o, FlowRun)]
    print(f"--- FlowRun objects alive: {len(runs)}", flush=True)
    if not runs:
        return
    oldest = min(runs, key=lambda r: r.created or r.expected_start_time)
    for ref in gc.get_referrers(oldest):
        if ref is runs:
            continue
        print(f"  held by {type(ref).__name__}: {_show(ref)}", flush=True)
        for outer in gc.get_referrers(ref):
            if outer is not runs:
                print(f"    held by {type(outer).__name__}: {_show(outer)}", flush=True)
    del runs, oldest


def _show(obj: object) -> str:
    if isinstance(obj, dict):
        return str(list(obj)[:8])[:200]
    return repr(obj)[:200]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    fleet = ThreadingHTTPServer(("127.0.0.1", 0), Fleet)
    threading.Thread(target=fleet.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="bench-soak-trace-"))
    prometheus, alertmanager, servers = real_servers(work)
    base = f"http://127.0.0.1:{fleet.server_port}"
    config = write_config(work / "serve", base, prometheus, alertmanager, {})
    os.environ.pop("PREFECT_API_URL", None)
    os.environ |= {"PREFECT_HOME": str(work / "prefect-home"), "BENCH_FLEET_TOKEN": "bench-token"}
    os.environ |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}

    def watcher() -> None:
        time.sleep(args.warmup * 60)
        tracemalloc.start(FRAMES)  # after start-up: only what is allocated later is traced
        first = tracemalloc.take_snapshot()
        started = time.monotonic()
        while time.monotonic() - started < (args.minutes - args.warmup) * 60:
            time.sleep(args.every * 60)
            report(first, args.top)
            holders()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(120)  # serve stops within this; if not, this bench does not wait for it
        for server in servers:
            server.stop()
        os._exit(0)

    threading.Thread(target=watcher, daemon=True).start()
    from fleet_alerting.deployments.serve import serve_all

    try:
        serve_all(str(config), out=lambda _line: None)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
