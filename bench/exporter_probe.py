"""Benchmark: probing through a real blackbox_exporter — this process's CPU per probe.

A real blackbox_exporter (Debian) probes `--targets` distinct URLs of a local HTTP server that
answers 200 at once (bench/running.py's). Two clients, alternating round by round (best round kept):

- **probe step**: `fleet_alerting.sources.blackbox.client.probe_all` in exporter mode, exactly
  what the `probe-targets` task runs (concurrency 20);
- **minimal**: one aiohttp session (kept-alive connections, limit 20), `GET /probe`, the body
  searched for `probe_success 1` — the least a client of the exporter does.

CPU of the probing process (user + system) per probe, and the ratio. Each `--code LABEL=DIR`
checkout runs in a child of its own (PYTHONPATH=DIR), the checkouts alternating.

    PYTHONPATH=$PWD .venv/bin/python bench/exporter_probe.py [--targets 1000] [--rounds 3]
        [--code before=/tmp/main --code after=.]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from running import Fleet

ROOT = Path(__file__).parents[1]
CONCURRENCY = 20


async def minimal(exporter: str, urls: list[str]) -> int:
    import aiohttp

    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> bool:
            query = urlencode({"module": "http_2xx", "target": url})
            async with gate, session.get(f"{exporter}/probe?{query}") as resp:
                return "\nprobe_success 1\n" in await resp.text()

        return sum(await asyncio.gather(*(one(u) for u in urls)))


async def ours(exporter: str, urls: list[str]) -> int:
    from fleet_alerting.config.schema import BlackboxConfig
    from fleet_alerting.core.signals import Severity
    from fleet_alerting.sources.blackbox.client import ProbeTarget, probe_all

    config = BlackboxConfig(
        mode="exporter",
        exporter_url=exporter,
        concurrency=CONCURRENCY,
        timeout=timedelta(seconds=5),
    )
    targets = [ProbeTarget(f"t{i}", url, Severity.warning) for i, url in enumerate(urls)]
    return sum(r.ok for r in await probe_all(targets, config))


def child(exporter: str, base: str, targets: int, rounds: int) -> dict[str, float]:
    urls = [f"{base}/healthz?i={i}" for i in range(targets)]
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, client in (("ours", ours), ("minimal", minimal)):
            cpu = time.process_time()
            ok = asyncio.run(client(exporter, urls))
            per_probe = (time.process_time() - cpu) / targets
            assert ok == targets, (name, ok)
            best[name] = min(best.get(name, per_probe), per_probe)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", action="append", default=[], help="LABEL=DIR (repeatable)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # EXPORTER BASE
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.targets, args.rounds)))
        return
    sys.path.insert(0, str(ROOT))
    from tests.servers import Server, free_port, http_ready, require_binary

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fleet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    codes = [c.split("=", 1) for c in args.code] or [["this", str(ROOT)]]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        modules = yaml.safe_load((ROOT / "config" / "blackbox.yml").read_text())
        (workdir / "blackbox.yml").write_text(yaml.safe_dump(modules))
        port = free_port()
        exporter_server = Server(
            [
                require_binary("prometheus-blackbox-exporter"),
                f"--config.file={workdir / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            workdir,
            http_ready(f"http://127.0.0.1:{port}/-/healthy"),
            "blackbox_exporter",
        )
        exporter = f"http://127.0.0.1:{port}"
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in codes}
        try:
            for _ in range(2):
                for label, code in codes:
                    env = os.environ | {"PYTHONPATH": str(Path(code).resolve())}
                    command = [sys.executable, __file__, "--child", exporter, base]
                    command += ["--targets", str(args.targets), "--rounds", str(args.rounds)]
                    out = subprocess.run(
                        command, env=env, capture_output=True, text=True, check=True
                    ).stdout
                    results[label].append(json.loads(out.splitlines()[-1]))
        finally:
            exporter_server.stop()
    print(f"{args.targets} probes through blackbox_exporter, concurrency {CONCURRENCY}; CPU/probe")
    for label, runs in results.items():
        for n, r in enumerate(runs, 1):
            print(
                f"{label} child {n}: probe step {r['ours'] * 1e3:.3f} ms, minimal "
                f"{r['minimal'] * 1e3:.3f} ms, ratio {r['ours'] / r['minimal']:.2f}"
            )


if __name__ == "__main__":
    main()
