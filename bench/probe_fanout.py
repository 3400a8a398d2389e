"""Benchmark: the blackbox flow's probing step against the socket limit (not a test).

1,000, 5,000 and 10,000 distinct targets (127.0.0.1-10 x up to 1,000 ports), served by a separate
process that answers each request after 100 ms. In one run, at concurrency 100, it times:
  raw      asyncio streams doing the same GETs, a connection each: the limit
  probe    fleet_alerting.sources.blackbox.client.probe_all (what the probe-targets task runs)
  httpx    one shared httpx.AsyncClient, for reference (1,000 targets only)
Each is run 3 times, interleaved; the best time counts. Prints the ratio probe/raw, the peak of
open file handles of the probing process while probing, and peak RSS.
Usage: .venv/bin/python bench/probe_fanout.py [--targets 1000,5000,10000] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import time
from datetime import timedelta
from functools import partial

import httpx

from fleet_alerting.config.schema import BlackboxConfig
from fleet_alerting.core.signals import Severity
from fleet_alerting.sources.blackbox.client import ProbeTarget, probe_all

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def addresses(count: int, base_port: int) -> list[tuple[str, int]]:
    hosts = [f"127.0.0.{i}" for i in range(1, 11)]
    return [(hosts[i % 10], base_port + i // 10) for i in range(count)]


def serve(targets: list[tuple[str, int]], latency: float, ready: multiprocessing.Event) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                await asyncio.sleep(latency)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        servers = [await asyncio.start_server(handle, h, p, backlog=1024) for h, p in targets]
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


async def raw(targets: list[tuple[str, int]], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(host: str, port: int) -> bool:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.close()
            return head.startswith(b"HTTP/1.1 200")

    return sum(await asyncio.gather(*(one(h, p) for h, p in targets)))


async def probe(targets: list[ProbeTarget], concurrency: int) -> int:
    config = BlackboxConfig(concurrency=concurrency, timeout=timedelta(seconds=10))
    return sum(r.ok for r in await probe_all(targets, config))


async def shared_httpx(targets: list[ProbeTarget], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(t: ProbeTarget) -> bool:
            async with gate:
                return (await client.get(t.url)).status_code == 200

        return sum(await asyncio.gather(*(one(t) for t in targets)))


class HandlePeak:
    """Samples this process's open file handles every 5 ms while a client runs."""

    def __init__(self) -> None:
        self.peak = 0

    async def run(self, client) -> int:
        done = False

        async def sample() -> None:
            while not done:
                self.peak = max(self.peak, len(os.listdir("/proc/self/fd")))
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        try:
            return await client
        finally:
            done = True
            await sampler


def timed(make, handles: HandlePeak) -> tuple[float, int]:
    started = time.perf_counter()
    ok = asyncio.run(handles.run(make()))
    return time.perf_counter() - started, ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="1000,5000,10000")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    sizes = [int(n) for n in args.targets.split(",")]
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pairs = addresses(max(sizes), 20000)
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(pairs, args.latency, ready), daemon=True)
    server.start()
    ready.wait(60)
    concurrency = args.concurrency
    print(
        f"distinct targets at {args.latency * 1000:.0f} ms latency, concurrency {concurrency}, "
        f"best of {args.repeat}; open-file limit of the prober {soft}\n"
    )
    header = ("targets", "raw asyncio", "probe step", "ratio", "handles raw/probe", "httpx")
    print("{:>8} {:>12} {:>11} {:>6} {:>18} {:>8}".format(*header))
    for size in sizes:
        chosen = pairs[:size]
        targets = [
            ProbeTarget(f"{h}:{p}", f"http://{h}:{p}/healthz", Severity.warning) for h, p in chosen
        ]
        runs = {
            "raw": partial(raw, chosen, concurrency),
            "probe": partial(probe, targets, concurrency),
        }
        if size <= 1000:
            runs["httpx"] = partial(shared_httpx, targets, concurrency)
        best = dict.fromkeys(runs, float("inf"))
        handles = {name: HandlePeak() for name in runs}
        base = len(os.listdir("/proc/self/fd"))
        for _ in range(args.repeat):
            for name, make in runs.items():
                seconds, ok = timed(make, handles[name])
                assert ok == size, f"{name}: only {ok} of {size} answered 200"
                best[name] = min(best[name], seconds)
        ratio = best["probe"] / best["raw"]
        peaks = f"{handles['raw'].peak - base}/{handles['probe'].peak - base}"
        httpx_s = f"{best['httpx']:.2f}s" if "httpx" in best else "-"
        print(
            f"{size:>8} {best['raw']:>11.2f}s {best['probe']:>10.2f}s {ratio:>6.2f}"
            f" {peaks:>18} {httpx_s:>8}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the probing process: {rss:.0f} MB (handles: above the {base} at rest)")
    server.terminate()


if __name__ == "__main__":
    main()
