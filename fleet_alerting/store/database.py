"""The store (`Store`): incidents, the outbox and small source state (cursors) in SQLite, or in
PostgreSQL for workers on several hosts, through SQLAlchemy Core (what differs: store/backend.py).

`Store` opens the database (store/sqlite_file.py or backend.postgres_engine), upgrades it in place
(store/migrations.py) and hands out transactions: `read()` for a consistent view that takes no
write lock, `transaction()` for a unit of work — the incident, outbox and key/value operations
(store/incidents.py, outbox.py, kv.py) on one connection, committed together or not at all.

`evaluate()` reads the open incidents, lets the engine decide and writes incident changes and the
notifications they cause in one write transaction: two processes never evaluate at once, and after
a crash either both are there or neither is. Notification ids are unique, so recording the same
event twice queues it once.

What a run reads does not grow with history: open incidents are found by index, a Slack thread
lives in columns of its incident, and `prune()` deletes resolved incidents, sent notifications,
dead letters, the actions trail and ended silences past their retention (history: store/history.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fleet_alerting.core.batch import no_gc_pauses
from fleet_alerting.core.incidents import Incident, Notification, Records
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.store import backend, incidents, kv, migrations, outbox, sqlite_file
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.incidents import OPEN
from fleet_alerting.store.outbox import Outbox, OutboxItem
from fleet_alerting.store.tables import (
    SCHEMA_VERSION,
    actions_table,
    delete_at_most,
    incidents_table,
    metadata,
    outbox_table,
    silences_table,
    ts,
)

if TYPE_CHECKING:
    from fleet_alerting.config.schema import StateConfig

# names that callers outside the store import from here
__all__ = [
    "OPEN",
    "SCHEMA_VERSION",
    "OutboxItem",
    "Retention",
    "Store",
    "Transaction",
    "incidents_table",
    "metadata",
    "outbox_table",
]


@dataclass(frozen=True)
class Retention:
    """How long history is kept (the config's `state.retention`)."""

    resolved_incidents: timedelta = timedelta(days=90)
    sent_notifications: timedelta = timedelta(days=30)
    dead_letters: timedelta = timedelta(days=90)
    actions: timedelta = timedelta(days=100)
    expired_silences: timedelta = timedelta(days=100)


Decide = Callable[[Mapping[str, Incident]], Evaluation]
Also = Callable[[sa.Connection], object]


@dataclass(frozen=True)
class Transaction:
    """One unit of work in one write transaction (`Store.transaction()`): what it reads sees
    what it wrote, and all of it is committed together or not at all. `conn` is the connection,
    for statements of the store's other tables (actions, history) in the same transaction."""

    conn: sa.Connection
    briefs_sql: str

    def records(self) -> Records:
        """The open incidents as the engine reads them: every brief, full records on demand."""
        return incidents.records(self.conn, self.briefs_sql)

    def incident(self, key: str) -> Incident | None:
        return incidents.load(self.conn, key)

    def write_incidents(
        self, changed: Sequence[Incident], now: datetime, stored: Records | None = None
    ) -> None:
        incidents.write(self.conn, changed, now, stored)

    def queue(self, notifications: Sequence[Notification], now: datetime) -> int:
        """Queue notifications (an id already queued is ignored); how many were new."""
        return outbox.queue(self.conn, notifications, now)

    def record(self, evaluation: Evaluation, now: datetime, stored: Records | None = None) -> int:
        """Store incident changes and queue their notifications; how many were new. `stored`:
        the records the evaluation was made from, read in this transaction."""
        self.write_incidents(evaluation.incidents, now, stored)
        if not evaluation.notifications:
            return 0
        return self.queue(evaluation.notifications, now)

    def set_thread(self, key: str, onset: datetime, channel: str, ts: str, now: datetime) -> bool:
        return incidents.set_thread(self.conn, key, onset, channel, ts, now)

    def get_value(self, key: str, default: Any = None) -> Any:
        return kv.get_value(self.conn, key, default)

    def set_value(self, key: str, value: Any) -> None:
        kv.set_value(self.conn, key, value)


def _old_actions(now: datetime, retention: Retention) -> sa.ColumnElement[bool]:
    """The audit trail past its retention (by the index on `at`), but never the trail of an
    episode the store still keeps: `incidents --show` shows an incident with its trail."""
    a, i = actions_table.c, incidents_table.c
    kept = sa.select(i.key).where(i.key == a.incident_key, i.onset == a.onset)
    return sa.and_(a.at < ts(now - retention.actions), ~sa.exists(kept))


class Store:
    """`Store(path)` or `Store(url)` (PostgreSQL, a password from `password`), or
    `Store(config.state)`: the configured one, with its password secret resolved.
    `create=False` (commands that only read): a SQLite file that does not exist is an error,
    never an empty store made in its place. `with Store(…) as store:` closes it after."""

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
        uri: str | None = None  # SQLite, when this user may not write the store
        self._stamp: sqlite_file.Stamp | None = None  # read without a lock: as it was then
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
            sqlite_file.check(self.path)
            if not self.path.exists():
                if not create:
                    raise StoreError(f"no store at {self.path} (has any run used this config?)")
                sqlite_file.create(self.path, self._upgrade)
            uri = sqlite_file.read_only_uri(self.path)
            if sqlite_file.unlocked(uri):
                self._stamp = sqlite_file.Stamp.of(self.path)
            self.engine = sqlite_file.engine(self.path, busy_timeout, uri=uri)
            outbox_engine = sqlite_file.engine(self.path, busy_timeout, autocommit=True, uri=uri)
        self.dialect = self.engine.dialect.name
        self._briefs_sql = incidents.briefs_sql(self.engine.dialect)
        try:
            with self.read() as conn:
                current = migrations.current(conn)
            if not current and uri is not None:
                raise StoreError(
                    f"{self.where}: not upgraded to this version yet, and this user may not write "
                    "it; the next run (or any command of the user that runs them) upgrades it"
                )
            if not current:
                with self.engine.begin() as conn:  # the write lock: two processes upgrade once
                    self.upgraded_from = self._upgrade(conn)
        except StoreError as exc:
            self._dispose(outbox_engine)
            if uri is not None and self.path is not None:
                raise sqlite_file.unreadable(self.path, exc) from None
            raise
        except BaseException:
            self._dispose(outbox_engine)
            raise
        self.queue = Outbox(outbox_engine)  # claims, leases, destinations (store/outbox.py)

    def _upgrade(self, conn: sa.Connection) -> int | None:
        return migrations.upgrade_store(conn, self.where)

    def close(self) -> None:
        self._dispose(self.queue.engine)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        written = self._stamp is not None and sqlite_file.Stamp.of(Path(self.where)) != self._stamp
        if exc[0] is None and written:
            raise StoreError(
                f"{self.where}: a run wrote it while it was read (read without a lock: this "
                "user may not write beside it); run the command again"
            )

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
                f"UPDATE {migrations.meta_table_name} SET value = value "
                "WHERE key = 'schema_version'"
            )

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction: a consistent view that takes no write lock."""
        with self.engine.connect() as conn:
            conn.execution_options(store_read=True)
            with conn.begin():
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction (the write lock: SQLite's, or PostgreSQL's advisory lock), committed
        when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield Transaction(conn, self._briefs_sql)

    # incidents -----------------------------------------------------------------------------
    def unresolved(self, source: str | None = None) -> dict[str, Incident]:
        with self.read() as conn:
            return incidents.unresolved(conn, source)

    def open_keys(self, source: str) -> set[str]:
        with self.read() as conn:
            return incidents.open_keys(conn, source)

    def incidents(self, include_resolved: bool = False) -> list[Incident]:
        with self.read() as conn:
            return incidents.listing(conn, include_resolved)

    def incident_states(self) -> dict[str, str]:
        """Every stored incident's key and state, newest first (no record is parsed)."""
        with self.read() as conn:
            return incidents.states(conn)

    def incident(self, key: str) -> Incident | None:
        with self.read() as conn:
            return incidents.load(conn, key)

    def evaluate(
        self, decide: Decide, now: datetime, also: Also | None = None
    ) -> tuple[Evaluation, int]:
        """Read the open incidents, `decide` (the engine), record the outcome: one write
        transaction, so a second process evaluating the same keys waits and then sees what this
        one recorded. Returns the evaluation and how many notifications were newly queued.
        `also` writes more in the same transaction (the run's observations: store/history.py).

        The engine gets `Records`: every open incident's brief, and a full record only for
        those it asks for (a steady failure is compared on its brief and never parsed)."""
        with no_gc_pauses(), self.transaction() as unit:
            records = unit.records()
            evaluation = decide(records)
            queued = unit.record(evaluation, now, records)
            # the briefs go before the collector walks what the run made (a storm: 50,000)
            del records
            if also is not None:
                also(unit.conn)
            return evaluation, queued

    def record(self, evaluation: Evaluation, now: datetime) -> int:
        """Store incident changes and queue their notifications atomically; returns how many new
        notifications were queued (a replayed evaluation queues none)."""
        with self.transaction() as unit:
            return unit.record(evaluation, now)

    def set_thread(self, key: str, onset: datetime, channel: str, ts: str, now: datetime) -> bool:
        """Remember the Slack thread of the incident `key` that began at `onset` (False if that
        incident is no longer the stored one)."""
        with self.transaction() as unit:
            return unit.set_thread(key, onset, channel, ts, now)

    # retention -----------------------------------------------------------------------------
    def prune(self, now: datetime, retention: Retention, batch: int = 5000) -> dict[str, int]:
        """Delete history past its retention, at most `batch` rows of each kind per call (each
        run takes its share, so a first run over a large old store does not hold the lock long).
        Indexed: a call with nothing to delete costs the same at any size."""
        with self.transaction() as unit:
            conn = unit.conn
            return {
                "resolved incidents": incidents.prune(
                    conn, now, retention.resolved_incidents, batch
                ),
                "sent notifications": outbox.prune(  # and those withdrawn (never needed)
                    conn, ("sent", outbox.WITHDRAWN), now, retention.sent_notifications, batch
                ),
                "dead letters": outbox.prune(conn, ("dead",), now, retention.dead_letters, batch),
                "actions": delete_at_most(conn, actions_table, _old_actions(now, retention), batch),
                "ended silences": delete_at_most(  # by the index on `ends_at`
                    conn,
                    silences_table,
                    silences_table.c.ends_at < ts(now - retention.expired_silences),
                    batch,
                ),
            }

    # outbox (queries in store/outbox.py) ---------------------------------------------------
    def outbox(self, statuses: Iterable[str] = ("queued", "dead")) -> list[OutboxItem]:
        return self.queue.items(statuses)

    # small per-source state: cursors, first-seen times (store/kv.py) ------------------------
    def get_value(self, key: str, default: Any = None) -> Any:
        with self.read() as conn:
            return kv.get_value(conn, key, default)

    def set_value(self, key: str, value: Any) -> None:
        with self.transaction() as unit:
            unit.set_value(key, value)


def _password(state: StateConfig) -> str:
    from fleet_alerting.config.secrets import SecretError

    assert state.password is not None
    try:
        return state.password.resolve().get_secret_value()
    except SecretError as exc:
        raise StoreError(f"state.password: {exc}") from None
