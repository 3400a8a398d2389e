"""Probing near the open-file limit: no false DOWN from this machine's own exhaustion.

Each case probes in a child process whose RLIMIT_NOFILE is set low (soft = hard, so it cannot be
raised), against a local asyncio HTTP server in another process (backlog 1024: a threaded test
server drops connections long before the prober is at its limit)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, os, resource, sys
from datetime import timedelta
from fleet_alerting.config.schema import BlackboxConfig
from fleet_alerting.core.signals import Severity
from fleet_alerting.sources.blackbox.client import ProbeTarget, probe_all

base, count, headroom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
targets = [ProbeTarget(f"t{i}", f"{base}/ok?{i}", Severity.warning) for i in range(count)]
in_use = len(os.listdir("/proc/self/fd"))
limit = in_use + headroom
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
peak = 0

async def main():
    global peak
    done = False
    async def sample():
        global peak
        while not done:
            try:
                peak = max(peak, len(os.listdir("/proc/self/fd")))
            except OSError:  # no handle left to look with: that is the second case
                pass
            await asyncio.sleep(0.005)
    sampler = asyncio.create_task(sample())
    notes = []
    config = BlackboxConfig(concurrency=1000, timeout=timedelta(seconds=30))
    results = await probe_all(targets, config, notes)
    done = True
    await sampler
    return results, notes

results, notes = asyncio.run(main())
print(json.dumps({
    "ok": sum(r.ok for r in results),
    "failing": sum(not r.ok and r.observed for r in results),
    "unknown": sum(not r.observed for r in results),
    "errors": sorted({r.error for r in results if r.error}),
    "notes": notes,
    "in_use": in_use,
    "limit": limit,
    "peak": peak,
}))
"""


SERVER = r"""
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


@dataclass
class Healthy:
    url: str


@pytest.fixture(scope="module")
def healthy() -> Iterator[Healthy]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())  # printed once listening
        yield Healthy(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def probe_in_child(base: str, count: int, headroom: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, base, str(count), str(headroom)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_low_open_file_limit_caps_concurrency_and_every_target_is_up(healthy: Healthy) -> None:
    got = probe_in_child(healthy.url, 1500, headroom=200)
    assert got["ok"] == 1500, got["errors"]
    assert got["failing"] == 0 and got["unknown"] == 0
    (note,) = got["notes"]
    assert "concurrency capped at" in note and "ulimit -n" in note
    capped = int(note.split("capped at ")[1].split()[0])
    assert capped < 1000
    assert got["peak"] - got["in_use"] <= capped + 50, got


def test_no_handle_left_is_unknown_not_down(healthy: Healthy) -> None:
    got = probe_in_child(healthy.url, 20, headroom=2)  # the event loop (epoll, self-pipe) eats them
    assert got["failing"] == 0, got["errors"]
    assert got["unknown"] == 20
    assert all(e.startswith("not probed: this machine ran out of resources") for e in got["errors"])
