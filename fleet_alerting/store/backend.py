"""What differs between the store's two databases, SQLite (one host) and PostgreSQL (shared).

The queries are written once in SQLAlchemy Core; this module holds the few places where the two
dialects differ: the INSERT with ON CONFLICT (each dialect has its own construct, with the same
API), GREATEST (SQLite's two-argument max()), and how a write transaction is serialized. SQLite
takes its one write lock with BEGIN IMMEDIATE; PostgreSQL takes one transaction-scoped advisory
lock (`pg_advisory_xact_lock`) as the first statement of every write transaction, so evaluations,
operator actions and upgrades run one at a time there too, while reads and outbox claims (row
locks, `FOR UPDATE SKIP LOCKED`) go on beside them.

Timestamps are stored as UTC ISO strings (`outbox.ts`) on both, and compared as strings: the
format is the same on both backends (it is made in Python), and every one has the same width
(microseconds always written, +00:00 at the end), so two differ only in digits at fixed places
and the order is the same under byte order and under any collation.
"""

from __future__ import annotations

import os
import re
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

from fleet_alerting.store.errors import explain_postgres

# One constant key for the store's write lock (b"fleetalr" as a signed 64-bit integer). Two stores
# in one PostgreSQL database would share it; they do not exist (a database is one store).
WRITE_LOCK = int.from_bytes(b"fleetalr", "big", signed=True)

SCHEMES = ("postgresql", "postgresql+psycopg")


def is_url(text: str) -> bool:
    return text.startswith(tuple(f"{scheme}://" for scheme in SCHEMES))


def insert(table: sa.Table, dialect: str) -> PgInsert | SqliteInsert:
    """INSERT … ON CONFLICT of `dialect` (`postgresql` or `sqlite`): the same API on both."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


@cache
def cached(build: Any, dialect: str) -> Any:
    """A statement built once per dialect (`build(dialect)`): building one costs more than
    running it for a small table."""
    return build(dialect)


class Driver:
    """A statement as its SQL for the driver: rows (tuples of `columns`) go to the DBAPI's
    executemany with the statement's own constants, positional or by name as the dialect binds
    them (numbered on SQLite when the statement uses a value twice) — what SQLAlchemy would
    send, without its per-row processing (for columns of strings, integers and booleans, which
    both drivers take as they are). Thousands of rows a run (a storm's incidents, its history)
    cost a fifth less so."""

    def __init__(self, statement: Any, columns: tuple[str, ...], dialect: sa.Dialect):
        self.columns = columns
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        constants = {
            name: value
            for name, value in compiled.construct_params(dict.fromkeys(columns)).items()
            if name not in columns
        }
        self.constants = constants
        order = compiled.positiontup
        if order is None:  # named (psycopg)
            self.positional = False
            return
        self.positional = True
        if list(order[: len(columns)]) != list(columns):
            # a column used twice, or not in the order of `columns` (SQLite): numbered
            self.sql, order = _numbered(statement, columns, dialect)
        self.tail = tuple(constants[name] for name in order[len(columns) :])

    def execute(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        if self.positional:
            tail = self.tail
            conn.exec_driver_sql(self.sql, [row + tail for row in rows] if tail else rows)
        else:
            named = [dict(zip(self.columns, row, strict=True)) | self.constants for row in rows]
            conn.exec_driver_sql(self.sql, named)


def _numbered(
    statement: Any, columns: tuple[str, ...], dialect: sa.Dialect
) -> tuple[str, list[str]]:
    """SQLite's SQL of `statement` with numbered parameters (`?N`), the Nth the Nth of `columns`
    and then of its constants, and that order of the names."""
    if dialect.name != "sqlite":
        raise ValueError(f"no numbered parameters on {dialect.name}")
    compiled = statement.compile(
        dialect=sqlite.dialect(paramstyle="numeric"), column_keys=[*columns]
    )
    names = list(compiled.positiontup or ())
    order = [*columns, *(name for name in names if name not in columns)]
    place = {f":{number}": f"?{order.index(name) + 1}" for number, name in enumerate(names, 1)}
    sql = re.sub(r":\d+\b", lambda found: place[found.group()], compiled.string)
    return sql, order


@lru_cache(maxsize=16)
def driver(build: Any, columns: tuple[str, ...], dialect: sa.Dialect) -> Driver:
    """`Driver` of the statement `build(dialect name)` (built once: `cached`)."""
    return Driver(cached(build, dialect.name), columns, dialect)


def greatest(dialect: str, *values: Any) -> Any:
    return sa.func.greatest(*values) if dialect == "postgresql" else sa.func.max(*values)


def masked(url: str) -> str:
    """The URL as an operator wrote it, without a password should one have slipped in."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


_ENGINES: dict[tuple[Any, ...], sa.Engine] = {}


def postgres_engine(
    url: str, password: str | None, lock_timeout: float, connect_timeout: float
) -> sa.Engine:
    """The engine of a PostgreSQL store, one per process: a run opens the store several times,
    and a new engine costs ~15 ms (a connection and the dialect's first-connect queries) where
    a pooled connection costs nothing. `lock_timeout` is SQLite's busy timeout: how long a write
    waits for another process's write transaction (the advisory lock) before it fails. Errors
    are explained in one line naming `state.url` (errors.explain_postgres)."""
    key = (url, password, lock_timeout, connect_timeout, os.getpid())  # a fork builds its own
    if key not in _ENGINES:
        _ENGINES[key] = _postgres_engine(url, password, lock_timeout, connect_timeout)
    return _ENGINES[key]


def dispose_engines() -> None:
    """Close every pooled PostgreSQL connection of this process (tests, between databases)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def _postgres_engine(
    url: str, password: str | None, lock_timeout: float, connect_timeout: float
) -> sa.Engine:
    target = sa.engine.make_url(url).set(drivername="postgresql+psycopg")
    if password is not None:
        target = target.set(password=password)
    engine = sa.create_engine(
        target,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, round(connect_timeout)),
            "options": f"-c lock_timeout={max(1, round(lock_timeout * 1000))}",
            "application_name": "fleet-alerting",
        },
    )
    sa.event.listen(engine, "begin", _lock_writes)
    where = f"state.url {display(url)}"

    def explain(context: sa.engine.ExceptionContext) -> None:
        # Not for the outbox: delivery retries its own database errors (a lost connection)
        # and keeps them in their lane.
        for part in (context.connection, context.engine):
            if part is not None and part.get_execution_options().get("store_outbox"):
                return
        error = explain_postgres(where, context.original_exception, lock_timeout)
        if error is not None:
            raise error from context.original_exception

    sa.event.listen(engine, "handle_error", explain)
    return engine


def _lock_writes(conn: sa.Connection) -> None:
    options = conn.get_execution_options()
    if options.get("store_read") or options.get("isolation_level") == "AUTOCOMMIT":
        return
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")


def display(url: str) -> str:
    """`postgresql+psycopg://user@host:port/db` for messages: no password, no query string."""
    parts = urlsplit(masked(url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
