"""serve's local Prefect server keeps its memory near its use: SQLite's memory bounded for the
whole server process (Prefect gives each connection an ~80 MB page cache), glibc arenas few."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fleet_alerting.deployments.prefect_engine import SQLITE_MEMORY, bound_sqlite_memory
from fleet_alerting.deployments.serve import _server_environment


def soft_heap_limit() -> int:
    with sqlite3.connect(":memory:") as db:
        return db.execute("PRAGMA soft_heap_limit").fetchone()[0]


@pytest.fixture
def unbounded_after() -> Iterator[None]:
    before = soft_heap_limit()
    yield
    with sqlite3.connect(":memory:") as db:
        db.execute(f"PRAGMA soft_heap_limit = {before}")


def test_the_servers_sqlite_memory_is_bounded_for_every_connection(unbounded_after: None) -> None:
    bound_sqlite_memory()
    assert soft_heap_limit() == SQLITE_MEMORY  # a connection opened later, as the server's are
    assert 16 * 2**20 <= SQLITE_MEMORY <= 128 * 2**20


def test_the_server_starts_with_few_malloc_arenas_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    keep = (timedelta(days=3), timedelta(hours=6))
    assert _server_environment(4321, *keep)["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert _server_environment(4321, *keep)["MALLOC_ARENA_MAX"] == "4"


FREE_WITH_ONE_BLOCK_LEFT_ON_TOP = """
import sys
from pathlib import Path
from fleet_alerting.deployments.prefect_engine import give_back_freed_memory

def rss_mb():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(x for x in status if x.startswith("VmRSS")).split()[1]) / 1024

blocks = [bytearray(4096) for _ in range(50_000)]  # ~200 MB from malloc's heap
top = blocks[-1]
del blocks  # all freed but the last: the heap cannot shrink below it
freed = rss_mb()
assert give_back_freed_memory()
print(freed, rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_memory_the_server_freed_goes_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FREE_WITH_ONE_BLOCK_LEFT_ON_TOP],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    freed, trimmed = map(float, done.stdout.split())
    assert freed - trimmed > 150, (freed, trimmed)
