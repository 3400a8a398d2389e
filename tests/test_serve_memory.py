"""serve's local Prefect server keeps its memory near its use: SQLite's memory bounded for the
whole server process (Prefect gives each connection an ~80 MB page cache), glibc arenas few."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta

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
