"""Stores on both backends for the store and delivery suites: `state_db` (conftest) is a SQLite
file or a new PostgreSQL database of the session's cluster, one per test; helpers reach the
database underneath the store as another process would."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from fleet_alerting.store.backend import WRITE_LOCK, dispose_engines, is_url


def new_database(request: pytest.FixtureRequest) -> str:
    """A PostgreSQL database of its own for this test (the session's cluster)."""
    cluster = request.getfixturevalue("postgres")
    request.addfinalizer(dispose_engines)  # the process keeps a pool per database otherwise
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    return cluster.create_database(f"{name}_{uuid.uuid4().hex[:8]}")


def raw_engine(db: str) -> sa.Engine:
    """A plain engine on the store's database (no store semantics), for looking underneath."""
    return sa.create_engine(db if is_url(db) else f"sqlite:///{db}", poolclass=sa.NullPool)


@contextmanager
def write_lock_held(db: str) -> Iterator[None]:
    """Another process in the middle of a write transaction (an evaluation) on the store."""
    if not is_url(db):
        writer = sqlite3.connect(db, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        return
    with raw_engine(db).connect() as conn, conn.begin() as transaction:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        yield
        transaction.rollback()


def write_lock_free(db: str) -> bool:
    """True if another process could begin a write transaction now (without waiting)."""
    if not is_url(db):
        probe = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        finally:
            probe.close()
        return True
    with raw_engine(db).connect() as conn, conn.begin():
        query = f"SELECT pg_try_advisory_xact_lock({WRITE_LOCK})"
        return bool(conn.exec_driver_sql(query).scalar())
