"""Incidents, the outbox and small source state (cursors) in SQLite, or in PostgreSQL for
workers on several hosts, through SQLAlchemy Core (what differs: store/backend.py).

`evaluate()` reads the open incidents, lets the engine decide and writes incident changes and the
notifications they cause in one write transaction: two processes never evaluate at once, and after
a crash either both are there or neither is. Notification ids are unique, so recording the same
event twice queues it once.

What a run reads does not grow with history: open incidents are found by index, a Slack thread
lives in columns of its incident, and `prune()` deletes resolved incidents, sent notifications and
dead letters past their retention. The schema carries a version; `migrate.upgrade` brings a store
written by older code up to date in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import TypeAdapter

from fleet_alerting.core.batch import no_gc_pauses
from fleet_alerting.core.incidents import Brief, Incident, Records, State
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.store import backend, migrate
from fleet_alerting.store.errors import StoreError, explain
from fleet_alerting.store.metadata import metadata
from fleet_alerting.store.outbox import Outbox, OutboxItem, outbox_table, queue
from fleet_alerting.store.outbox import ts as _ts

if TYPE_CHECKING:
    from fleet_alerting.config.schema import StateConfig

_incident_json = TypeAdapter(Incident)

incidents_table = sa.Table(
    "incidents",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("source", sa.String, nullable=False, index=True),
    sa.Column("state", sa.String, nullable=False, index=True),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    # schema 1: the episode (Incident.episode), for pruning, and the Slack thread in columns
    sa.Column("episode", sa.String),
    sa.Column("resolved_at", sa.String),
    sa.Column("thread_channel", sa.String),
    sa.Column("thread_ts", sa.String),
    # schema 2: what the engine compares for a steady failure (core.incidents.Brief), so that a
    # run reads these columns, not the record, of an incident that stays as it is
    sa.Column("fingerprint", sa.String),
    sa.Column("failures", sa.Integer),
    sa.Column("successes", sa.Integer),
    sa.Column("onset", sa.String),
    sa.Column("notified_at", sa.String),
    sa.Column("acted", sa.Boolean),
    sa.Column("inhibited_by", sa.String),
    sa.Column("grouped_in", sa.String),
    sa.Index("ix_incidents_state_resolved_at", "state", "resolved_at"),
    # SQLite: covering the read of the open incidents' briefs, so the row itself (its `data`
    # spans overflow pages before the brief columns) is not visited. Not on PostgreSQL: an index
    # entry is limited to 2,704 bytes there, and key, inhibited_by and grouped_in are three keys
    # (long when a watch keys by every label); it reads the open rows by the state index.
    sa.Index(
        "ix_incidents_brief",
        "state",
        "key",
        "source",
        "fingerprint",
        "failures",
        "successes",
        "onset",
        "notified_at",
        "acted",
        "inhibited_by",
        "grouped_in",
    ).ddl_if(dialect="sqlite"),
)
values_table = sa.Table(
    "source_values",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# 0: main before versions (c4597d7); 1: episode, resolved_at and the thread in columns;
# 2: the brief (fingerprint, counters, onset, last notified, acted, inhibition, group) in columns
# 3: PostgreSQL drops the covering brief index (its entries could pass 2,704 bytes)
# 4: the silences table (store/silences.py; created by the upgrade, no data step)
# 5: the history tables (store/history.py; created by the upgrade, no data step)
SCHEMA_VERSION = 5
OPEN = [State.pending.value, State.firing.value, State.paged.value]

_BRIEF_COLUMNS = (
    "fingerprint",
    "failures",
    "successes",
    "onset",
    "notified_at",
    "acted",
    "inhibited_by",
    "grouped_in",
)


def _upsert_incident(dialect: str) -> Any:
    insert = backend.insert(incidents_table, dialect)
    new = insert.excluded
    # A thread set (by the Slack notifier) since this incident was read is kept, for the same
    # episode.
    keep_thread = sa.and_(new.thread_ts.is_(None), incidents_table.c.episode == new.episode)
    return insert.on_conflict_do_update(
        index_elements=["key"],
        set_={
            **{
                c: new[c]
                for c in ("source", "state", "updated_at", "data", "episode", "resolved_at")
            },
            **{c: new[c] for c in _BRIEF_COLUMNS},
            **{
                c: sa.case((keep_thread, incidents_table.c[c]), else_=new[c])
                for c in ("thread_channel", "thread_ts")
            },
        },
    )


_INCIDENT_COLUMNS = (
    incidents_table.c.data,
    incidents_table.c.thread_channel,
    incidents_table.c.thread_ts,
)


@dataclass(frozen=True)
class Retention:
    """How long history is kept (the config's `state.retention`)."""

    resolved_incidents: timedelta = timedelta(days=90)
    sent_notifications: timedelta = timedelta(days=30)
    dead_letters: timedelta = timedelta(days=90)


Decide = Callable[[Mapping[str, Incident]], Evaluation]
Also = Callable[[sa.Connection], object]


class Store:
    """`Store(path)` or `Store(url)` (PostgreSQL, a password from `password`), or
    `Store(config.state)`: the configured one, with its password secret resolved.
    `create=False` (commands that only read): a SQLite file that does not exist is an error,
    never an empty store made in its place."""

    def __init__(
        self,
        where: str | Path | StateConfig,
        *,
        busy_timeout: float = 10.0,
        password: str | None = None,
        connect_timeout: float = 10.0,
        create: bool = True,
    ):
        if not isinstance(where, str | Path):  # the config's `state`
            state = where
            connect_timeout = state.connect_timeout.total_seconds()
            if state.url and state.password is not None:
                password = _password(state)
            where = state.url or state.path or ""
        self.busy_timeout = busy_timeout
        self.upgraded_from: int | None = SCHEMA_VERSION
        if isinstance(where, str) and backend.is_url(where):
            self.path: Path | None = None
            self.where = f"state.url {backend.display(where)}"
            self.engine = backend.postgres_engine(where, password, busy_timeout, connect_timeout)
            outbox_engine = self.engine.execution_options(
                isolation_level="AUTOCOMMIT", store_outbox=True
            )
        else:
            self.path = Path(where)
            self.where = str(self.path)
            _check_file(self.path)
            if not self.path.exists():
                if not create:
                    raise StoreError(f"no store at {self.path} (has any run used this config?)")
                _create(self.path)
            self.engine = self._sqlite_engine(self.path)
            outbox_engine = self._sqlite_engine(self.path, autocommit=True)
            sa.event.listen(self.engine, "handle_error", self._explain)
        self.dialect = self.engine.dialect.name
        self._briefs_sql = _briefs_sql(self.engine.dialect)
        try:
            with self.read() as conn:
                current = migrate.up_to_date(conn, metadata, SCHEMA_VERSION)
            if not current:
                with self.engine.begin() as conn:  # the write lock: two processes upgrade once
                    self.upgraded_from = migrate.upgrade(
                        conn, metadata, SCHEMA_VERSION, _STEPS, self.where
                    )
        except BaseException:
            self._dispose(outbox_engine)
            raise
        self.queue = Outbox(outbox_engine)  # claims, leases, destinations (store/outbox.py)

    def _sqlite_engine(self, path: Path, autocommit: bool = False) -> sa.Engine:
        """The store's engine, or (`autocommit`) the outbox's: every outbox statement is its own
        transaction, and pysqlite cannot switch a pooled connection to autocommit and back."""
        if autocommit:
            engine = sa.create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT")
        else:
            engine = sa.create_engine(f"sqlite:///{path}")
            # pysqlite's own BEGIN handling defers locks; a write transaction takes the write
            # lock when it begins, so two evaluations never interleave. Reads (`read`) do not.
            sa.event.listen(engine, "begin", _begin)
        timeout_ms = int(self.busy_timeout * 1000)
        sa.event.listen(engine, "connect", lambda conn, _r: _sqlite_pragmas(conn, timeout_ms))
        return engine

    def _explain(self, context: sa.engine.ExceptionContext) -> None:
        """A SQLite error in one line (PostgreSQL's: store/backend.py). Not for the outbox's
        engine: delivery retries its own database errors (`database is locked`)."""
        assert self.path is not None
        error = explain(self.path, context.original_exception, self.busy_timeout)
        if error is not None:
            raise error from context.original_exception

    def close(self) -> None:
        self._dispose(self.queue.engine)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _dispose(self, outbox_engine: sa.Engine) -> None:
        """SQLite's engines go with the store; PostgreSQL's pool stays for the process's next
        store (backend.postgres_engine)."""
        if self.path is not None:
            outbox_engine.dispose()
            self.engine.dispose()

    def check_writable(self) -> None:
        """StoreError now, in one line, rather than a failed write in the middle of a run (a
        read-only store can still be read: `incidents`, `outbox`)."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE {migrate.meta_table_name} SET value = value WHERE key = 'schema_version'"
            )

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction: a consistent view that takes no write lock."""
        with self.engine.connect() as conn:
            conn.execution_options(store_read=True)
            with conn.begin():
                yield conn

    # incidents -----------------------------------------------------------------------------
    def unresolved(self, source: str | None = None) -> dict[str, Incident]:
        with self.read() as conn:
            return self._unresolved(conn, source)

    def _unresolved(self, conn: sa.Connection, source: str | None) -> dict[str, Incident]:
        query = sa.select(*_INCIDENT_COLUMNS).where(incidents_table.c.state.in_(OPEN))
        if source is not None:
            query = query.where(incidents_table.c.source == source)
        loaded = (_row_incident(row) for row in conn.execute(query))
        return {incident.key: incident for incident in loaded}

    def incidents(self, include_resolved: bool = False) -> list[Incident]:
        query = sa.select(*_INCIDENT_COLUMNS).order_by(incidents_table.c.updated_at.desc())
        if not include_resolved:
            query = query.where(incidents_table.c.state.in_(OPEN))
        with self.read() as conn:
            return [_row_incident(row) for row in conn.execute(query)]

    def incident_states(self) -> dict[str, str]:
        """Every stored incident's key and state, newest first (no record is parsed)."""
        row = incidents_table.c
        query = sa.select(row.key, row.state).order_by(row.updated_at.desc())
        with self.read() as conn:
            return dict(conn.execute(query).tuples().all())

    def evaluate(
        self, decide: Decide, now: datetime, also: Also | None = None
    ) -> tuple[Evaluation, int]:
        """Read the open incidents, `decide` (the engine), record the outcome: one write
        transaction, so a second process evaluating the same keys waits and then sees what this
        one recorded. Returns the evaluation and how many notifications were newly queued.
        `also` writes more in the same transaction (the run's observations: store/history.py).

        The engine gets `Records`: every open incident's brief, and a full record only for
        those it asks for (a steady failure is compared on its brief and never parsed)."""
        with no_gc_pauses(), self.engine.begin() as conn:
            evaluation = decide(self._records(conn))
            queued = self._record(conn, evaluation, now)
            if also is not None:
                also(conn)
            return evaluation, queued

    def _records(self, conn: sa.Connection) -> Records:
        row = incidents_table.c
        parse = datetime.fromisoformat
        # plain SQL, no type processors: a fleet-wide failure is thousands of briefs per run,
        # and converting them cost more than reading them (bench/README.md)
        rows = conn.exec_driver_sql(self._briefs_sql).all()
        briefs = {
            key: Brief(
                state,
                source,
                fingerprint,
                failures or 0,
                successes or 0,
                parse(onset) if onset else _EPOCH,
                parse(notified) if notified else None,
                acted is None or bool(acted),  # unknown (written before schema 2): full check
                inhibited_by,
                group,
            )
            for (
                key,
                state,
                source,
                fingerprint,
                failures,
                successes,
                onset,
                notified,
                acted,
                inhibited_by,
                group,
            ) in rows
        }

        def load(keys: Collection[str]) -> dict[str, Incident]:
            found: dict[str, Incident] = {}
            listed = list(keys)
            for start in range(0, len(listed), _CHUNK):
                chunk = listed[start : start + _CHUNK]
                query = sa.select(*_INCIDENT_COLUMNS).where(row.key.in_(chunk))
                found.update((i.key, i) for i in map(_row_incident, conn.execute(query)))
            return found

        return Records(briefs, load)

    def record(self, evaluation: Evaluation, now: datetime) -> int:
        """Store incident changes and queue their notifications atomically; returns how many new
        notifications were queued (a replayed evaluation queues none)."""
        with self.engine.begin() as conn:
            return self._record(conn, evaluation, now)

    def _record(self, conn: sa.Connection, evaluation: Evaluation, now: datetime) -> int:
        """One executemany per table: a fleet-wide failure changes a thousand incidents per run,
        and building a statement per row cost ~0.5 ms each (bench/README.md)."""
        self.write_incidents(conn, evaluation.incidents, now)
        if not evaluation.notifications:
            return 0
        return queue(conn, evaluation.notifications, now)

    def set_thread(self, key: str, onset: datetime, channel: str, ts: str, now: datetime) -> bool:
        """Remember the Slack thread of the incident `key` that began at `onset`: two columns of
        its row, written in one statement so a concurrent evaluation is not overwritten. False if
        that incident is no longer the stored one."""
        row = incidents_table.c
        with self.engine.begin() as conn:
            incident = self.load_incident(conn, key)
            if incident is None or incident.onset != onset:
                return False
            conn.execute(
                sa.update(incidents_table)
                .where(row.key == key)
                .values(thread_channel=channel, thread_ts=ts, updated_at=_ts(now))
            )
        return True

    def incident(self, key: str) -> Incident | None:
        with self.read() as conn:
            return self.load_incident(conn, key)

    def load_incident(self, conn: sa.Connection, key: str) -> Incident | None:
        """The incident `key` as stored, read in the caller's transaction."""
        query = sa.select(*_INCIDENT_COLUMNS).where(incidents_table.c.key == key)
        row = conn.execute(query).first()
        return None if row is None else _row_incident(row)

    def write_incidents(
        self, conn: sa.Connection, incidents: Sequence[Incident], now: datetime
    ) -> None:
        """Insert or replace `incidents`, in the caller's transaction, `_WRITE_CHUNK` at a time
        so that a storm's opening run does not hold every record's JSON at once."""
        statement = backend.cached(_upsert_incident, self.dialect)
        for start in range(0, len(incidents), _WRITE_CHUNK):
            chunk = incidents[start : start + _WRITE_CHUNK]
            conn.execute(statement, [_incident_row(incident, now) for incident in chunk])

    # retention -----------------------------------------------------------------------------
    def prune(self, now: datetime, retention: Retention, batch: int = 5000) -> dict[str, int]:
        """Delete history past its retention, at most `batch` rows of each kind per call (each
        run takes its share, so a first run over a large old store does not hold the lock long).
        Indexed: a call with nothing to delete costs the same at any size."""
        out = outbox_table.c
        kinds = {
            "resolved incidents": (
                incidents_table,
                sa.and_(
                    incidents_table.c.state == State.resolved.value,
                    incidents_table.c.resolved_at < _ts(now - retention.resolved_incidents),
                ),
            ),
            "sent notifications": (
                outbox_table,
                sa.and_(
                    out.status == "sent", out.created_at < _ts(now - retention.sent_notifications)
                ),
            ),
            "dead letters": (
                outbox_table,
                sa.and_(out.status == "dead", out.created_at < _ts(now - retention.dead_letters)),
            ),
        }
        deleted = {}
        with self.engine.begin() as conn:
            for kind, (table, old) in kinds.items():
                (key,) = table.primary_key.columns
                doomed = sa.select(key).where(old).limit(batch)
                deleted[kind] = conn.execute(sa.delete(table).where(key.in_(doomed))).rowcount
        return deleted

    # outbox (queries in store/outbox.py) ---------------------------------------------------
    def outbox(self, statuses: Iterable[str] = ("queued", "dead")) -> list[OutboxItem]:
        return self.queue.items(statuses)

    # small per-source state: cursors, first-seen times ---------------------------------------
    def get_value(self, key: str, default: Any = None) -> Any:
        with self.read() as conn:
            row = conn.execute(
                sa.select(values_table.c.value).where(values_table.c.key == key)
            ).scalar()
        return default if row is None else json.loads(row)

    def set_value(self, key: str, value: Any) -> None:
        encoded = json.dumps(value)
        insert = backend.insert(values_table, self.dialect).values(key=key, value=encoded)
        with self.engine.begin() as conn:
            conn.execute(
                insert.on_conflict_do_update(index_elements=["key"], set_={"value": encoded})
            )


_EPOCH = datetime.fromtimestamp(0, UTC)


def _briefs_sql(dialect: sa.Dialect) -> str:
    """The open incidents' briefs, as SQL for this dialect (no parameters: the states are
    constants)."""
    row = incidents_table.c
    query = sa.select(row.key, row.state, row.source, *(row[c] for c in _BRIEF_COLUMNS))
    query = query.where(row.state.in_(OPEN))
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


_CHUNK = 500  # keys per `IN (...)`: below every backend's limit of bound parameters
_WRITE_CHUNK = 1000  # rows per executemany: a bounded share of the records' JSON in memory


def _incident_row(incident: Incident, now: datetime) -> dict[str, Any]:
    return {
        "key": incident.key,
        "source": incident.source,
        "state": incident.state,
        "updated_at": _ts(now),
        "data": _incident_json.dump_json(incident).decode(),
        "episode": incident.episode,
        "resolved_at": _ts(incident.resolved_at) if incident.resolved_at else None,
        "thread_channel": incident.thread_channel,
        "thread_ts": incident.thread_ts,
    } | _brief_row(incident)


def _brief_row(incident: Incident) -> dict[str, Any]:
    brief = Brief.of(incident)
    return {
        "fingerprint": brief.fingerprint,
        "failures": brief.failures,
        "successes": brief.successes,
        "onset": _ts(brief.onset),
        "notified_at": _ts(brief.notified_at) if brief.notified_at else None,
        "acted": brief.acted,
        "inhibited_by": brief.inhibited_by,
        "grouped_in": brief.group,
    }


def _row_incident(row: sa.Row[Any]) -> Incident:
    """The incident of a row: its JSON, with the thread from its columns (the truth for it)."""
    data, channel, ts = row
    incident = _incident_json.validate_json(data)
    if (incident.thread_channel, incident.thread_ts) != (channel, ts):
        incident = replace(incident, thread_channel=channel, thread_ts=ts)
    return incident


def _upgrade_to_1(conn: sa.Connection) -> None:
    """From main before versions: fill episode, resolved_at and the thread columns from the JSON
    (open incidents in Python so the episode is spelled as the engine spells it; resolved ones
    only need resolved_at for pruning). Only SQLite stores were written before versions."""
    if conn.dialect.name != "sqlite":
        return
    table = incidents_table.c
    conn.execute(
        sa.update(incidents_table)
        .where(table.state == State.resolved.value)
        .values(
            resolved_at=sa.func.replace(
                sa.func.json_extract(table.data, "$.resolved_at"), "Z", "+00:00"
            )
        )
    )
    rows = conn.execute(
        sa.select(table.key, table.data).where(
            sa.or_(table.state != State.resolved.value, table.data.like('%"thread_ts":"%'))
        )
    ).all()
    for key, data in rows:
        incident = _incident_json.validate_json(data)
        conn.execute(
            sa.update(incidents_table)
            .where(table.key == key)
            .values(
                episode=incident.episode,
                thread_channel=incident.thread_channel,
                thread_ts=incident.thread_ts,
            )
        )


def _upgrade_to_2(conn: sa.Connection) -> None:
    """The brief columns of the unresolved incidents (resolved ones are never compared)."""
    table = incidents_table.c
    rows = conn.execute(
        sa.select(*_INCIDENT_COLUMNS).where(table.state != State.resolved.value)
    ).all()
    for row in rows:
        incident = _row_incident(row)
        conn.execute(
            sa.update(incidents_table)
            .where(table.key == incident.key)
            .values(**_brief_row(incident))
        )


def _upgrade_to_3(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_incidents_brief")


_STEPS: dict[int, migrate.Step] = {1: _upgrade_to_1, 2: _upgrade_to_2, 3: _upgrade_to_3}


def _password(state: StateConfig) -> str:
    from fleet_alerting.config.secrets import SecretError

    assert state.password is not None
    try:
        return state.password.resolve().get_secret_value()
    except SecretError as exc:
        raise StoreError(f"state.password: {exc}") from None


def _check_file(path: Path) -> None:
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


def _create(path: Path) -> None:
    """A new store appears complete or not at all: built under a temporary name, then linked into
    place (if another process won the race, its store is used)."""
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
                migrate.upgrade(conn, metadata, SCHEMA_VERSION, _STEPS, str(path))
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


def _begin(conn: sa.Connection) -> None:
    read = conn.get_execution_options().get("store_read", False)
    conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a killed process; only a power loss may undo the last ones.
    # FULL fsyncs every commit (~6.5 ms here), and delivery commits twice per message.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
