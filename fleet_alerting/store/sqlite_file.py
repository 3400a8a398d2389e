"""The SQLite store's file (PostgreSQL's engine: store/backend.py): checked before it is opened,
created complete or not at all, and its engines with their pragmas and write lock."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import sqlalchemy as sa

from fleet_alerting.store.errors import StoreError, explain


def check(path: Path) -> None:
    """StoreError for a path that is no usable store file (a missing one is fine: it is made)."""
    if path.is_dir():
        raise StoreError(
            f"{path}: is a directory; state.path must name a file, e.g. state/fleet-alerting.sqlite"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    wal = path.with_name(path.name + "-wal")
    if size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        raise StoreError(
            f"{path}: is empty (0 bytes) — a store is never written empty, so it was truncated; "
            "restore it from a backup, or delete it to start again with no incidents"
        )


def create(path: Path, build: Callable[[sa.Connection], object]) -> None:
    """A new store appears complete or not at all: `build` makes its tables under a temporary
    name in one write transaction, then the file is linked into place (if another process won
    the race, its store is used)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"{path}: cannot create its directory ({exc.strerror}); create it, or point "
            "state.path elsewhere"
        ) from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        engine = sa.create_engine(f"sqlite:///{temporary}", poolclass=sa.NullPool)
        sa.event.listen(engine, "connect", lambda conn, _r: _sqlite_pragmas(conn, 10000))
        sa.event.listen(engine, "begin", _begin)
        try:
            with engine.begin() as conn:
                build(conn)
        finally:
            engine.dispose()
        with suppress(FileExistsError):
            os.link(temporary, path)
    except (OSError, sa.exc.DBAPIError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "orig", None) or exc
        raise StoreError(
            f"{path}: cannot be created ({reason}); give this user write access to "
            f"{path.parent}, or point state.path elsewhere"
        ) from None
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + "-wal")):
            leftover.unlink(missing_ok=True)
        temporary.with_name(temporary.name + "-shm").unlink(missing_ok=True)


def read_only_uri(path: Path) -> str | None:
    """How this user reads a store it may not write (None: it may, the usual engine). SQLite
    reads a WAL store through the -shm index beside it, which it makes when missing — not in a
    directory this user cannot write (a read-only mount). While a -wal file is there (a writer
    has the store open, or died with it open) its -shm is there too and is read as it is;
    without one every commit is in the file itself, read as it is (`immutable`: no -shm, no
    lock; `Stamp` tells whether a writer came meanwhile)."""
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return None
    mode = "ro" if path.with_name(path.name + "-wal").exists() else "ro&immutable=1"
    return f"file:{quote(str(path.resolve()))}?mode={mode}"


def reader_uri(path: Path) -> str:
    """How a reader that never writes opens the store: read-only, as `read_only_uri` says when
    this user may not write it."""
    return read_only_uri(path) or f"file:{quote(str(path.resolve()))}?mode=ro"


def unlocked(uri: str | None) -> bool:
    """Whether a store opened by `uri` is read as it is, without a lock: a writer that comes
    meanwhile is not seen (`Stamp` tells)."""
    return uri is not None and "immutable=1" in uri


def unreadable(path: Path, error: StoreError) -> StoreError:
    """`error` of a store opened read-only (`read_only_uri`), said as what is wrong when SQLite
    could not open it: the -shm index it needs is missing and cannot be made."""
    original = error.__cause__ or error
    text = str(original).lower()
    if "readonly" not in text and "read-only" not in text and "unable to open" not in text:
        return error
    return StoreError(
        f"{path}: cannot be read by this user ({original}): it may not write {path.parent}, "
        "and SQLite reads a store that has a -wal file through its -shm file, which is missing "
        "(a writer died?) or not readable by this user; run this as the user that runs the "
        "flows, or copy the store with its -wal file to a writable place and list the copy"
    )


class Stamp(NamedTuple):
    """What of the file changes when a writer comes: a -wal file appears, the file is written."""

    wal: bool
    size: int
    modified: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        stat = path.stat()
        wal = path.with_name(path.name + "-wal").exists()
        return cls(wal, stat.st_size, stat.st_mtime_ns)


def engine(
    path: Path, busy_timeout: float, autocommit: bool = False, uri: str | None = None
) -> sa.Engine:
    """The store's engine, or (`autocommit`) the outbox's: every outbox statement is its own
    transaction, and pysqlite cannot switch a pooled connection to autocommit and back. `uri`
    (`read_only_uri`) opens it read-only: nothing is written, not even the journal mode."""
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if uri is not None:
        options["creator"] = lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
    made = sa.create_engine(f"sqlite:///{path}", **options)
    if not autocommit:
        # pysqlite's own BEGIN handling defers locks; a write transaction takes the write
        # lock when it begins, so two evaluations never interleave. Reads (`read`) do not.
        sa.event.listen(made, "begin", _begin)
    timeout_ms = int(busy_timeout * 1000)
    writes = uri is None
    sa.event.listen(made, "connect", lambda conn, _r: _sqlite_pragmas(conn, timeout_ms, writes))
    if not autocommit:
        _explain_errors(made, path, busy_timeout)
    return made


def _explain_errors(made: sa.Engine, path: Path, busy_timeout: float) -> None:
    """A SQLite error in one line (PostgreSQL's: store/backend.py). Not for the outbox's
    engine: delivery retries its own database errors (`database is locked`)."""

    def explain_error(context: sa.engine.ExceptionContext) -> None:
        error = explain(path, context.original_exception, busy_timeout)
        if error is not None:
            raise error from context.original_exception

    sa.event.listen(made, "handle_error", explain_error)


def _begin(conn: sa.Connection) -> None:
    read = conn.get_execution_options().get("store_read", False)
    conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int, writes: bool = True) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    if not writes:  # read-only: the store is in WAL mode already (its writer set it)
        cursor.close()
        return
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a killed process; only a power loss may undo the last ones.
    # FULL fsyncs every commit (~6.5 ms here), and delivery commits twice per message.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
