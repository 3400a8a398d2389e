"""Incidents, the outbox and small source state (cursors) in SQLite through SQLAlchemy Core.

`record()` writes incident changes and the notifications they cause in one transaction: after a
crash either both are there or neither is. Notification ids are unique, so recording the same event
twice queues it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.store.outbox import Outbox, OutboxItem, ensure_columns, queue

_incident_json = TypeAdapter(Incident)

metadata = sa.MetaData()
incidents_table = sa.Table(
    "incidents",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("source", sa.String, nullable=False, index=True),
    sa.Column("state", sa.String, nullable=False, index=True),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)
values_table = sa.Table(
    "source_values",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

_insert_incident = sqlite_insert(incidents_table)
_UPSERT_INCIDENT = _insert_incident.on_conflict_do_update(
    index_elements=["key"],
    set_={c: _insert_incident.excluded[c] for c in ("source", "state", "updated_at", "data")},
)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class Store:
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(f"sqlite:///{path}")
        sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        # pysqlite's own BEGIN handling defers locks; take the write lock when a transaction begins
        # so two evaluations never interleave.
        sa.event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        metadata.create_all(self.engine)
        ensure_columns(self.engine)  # the outbox and destinations (store/outbox.py)
        self.queue = Outbox(self.engine)

    def close(self) -> None:
        self.queue.close()
        self.engine.dispose()

    # incidents -----------------------------------------------------------------------------
    def unresolved(self, source: str | None = None) -> dict[str, Incident]:
        query = sa.select(incidents_table.c.data).where(incidents_table.c.state != State.resolved)
        if source is not None:
            query = query.where(incidents_table.c.source == source)
        with self.engine.begin() as conn:
            rows = conn.execute(query).scalars().all()
        loaded = (_incident_json.validate_json(row) for row in rows)
        return {incident.key: incident for incident in loaded}

    def incidents(self, include_resolved: bool = False) -> list[Incident]:
        query = sa.select(incidents_table.c.data).order_by(incidents_table.c.updated_at.desc())
        if not include_resolved:
            query = query.where(incidents_table.c.state != State.resolved)
        with self.engine.begin() as conn:
            return [_incident_json.validate_json(r) for r in conn.execute(query).scalars()]

    def record(self, evaluation: Evaluation, now: datetime) -> int:
        """Store incident changes and queue their notifications atomically; returns how many new
        notifications were queued (a replayed evaluation queues none).

        One executemany per table: a fleet-wide failure changes a thousand incidents per run, and
        building a statement per row cost ~0.5 ms each (bench/README.md)."""
        queued = 0
        with self.engine.begin() as conn:
            self._upsert_incidents(conn, evaluation.incidents, now)
            queued = queue(conn, evaluation.notifications, now)
        return queued

    def update_incident(self, incident: Incident, now: datetime) -> None:
        with self.engine.begin() as conn:
            self._upsert_incidents(conn, [incident], now)

    def set_thread(self, key: str, onset: datetime, channel: str, ts: str, now: datetime) -> bool:
        """Remember the Slack thread of the incident `key` that began at `onset`, read and written
        in one transaction so a concurrent evaluation is not overwritten. False if that incident
        is no longer the stored one."""
        with self.engine.begin() as conn:
            incident = self._load(conn, key)
            if incident is None or incident.onset != onset:
                return False
            threaded = replace(incident, thread_channel=channel, thread_ts=ts)
            self._upsert_incidents(conn, [threaded], now)
        return True

    def incident(self, key: str) -> Incident | None:
        with self.engine.begin() as conn:
            return self._load(conn, key)

    def _load(self, conn: sa.Connection, key: str) -> Incident | None:
        query = sa.select(incidents_table.c.data).where(incidents_table.c.key == key)
        row = conn.execute(query).scalar()
        return None if row is None else _incident_json.validate_json(row)

    def _upsert_incidents(
        self, conn: sa.Connection, incidents: Sequence[Incident], now: datetime
    ) -> None:
        if not incidents:
            return
        threads = self._threads(conn)
        rows = []
        for incident in incidents:
            stored = threads.get(incident.key)
            if incident.thread_ts is None and stored and stored.onset == incident.onset:
                # keep a thread set (by the Slack notifier) since this incident was read
                incident = replace(
                    incident, thread_channel=stored.thread_channel, thread_ts=stored.thread_ts
                )
            rows.append(
                {
                    "key": incident.key,
                    "source": incident.source,
                    "state": incident.state,
                    "updated_at": _ts(now),
                    "data": _incident_json.dump_json(incident).decode(),
                }
            )
        conn.execute(_UPSERT_INCIDENT, rows)

    def _threads(self, conn: sa.Connection) -> dict[str, Incident]:
        """Stored incidents that have a Slack thread (few; only those are parsed)."""
        query = sa.select(incidents_table.c.data).where(
            incidents_table.c.data.like('%"thread_ts":"%')
        )
        loaded = (_incident_json.validate_json(row) for row in conn.execute(query).scalars())
        return {incident.key: incident for incident in loaded}

    # outbox (queries in store/outbox.py) ---------------------------------------------------
    def outbox(self, statuses: Iterable[str] = ("queued", "dead")) -> list[OutboxItem]:
        return self.queue.items(statuses)

    def prune_sent(self, now: datetime, keep: timedelta = timedelta(days=30)) -> None:
        self.queue.prune_sent(now, keep)

    # small per-source state: cursors, first-seen times ---------------------------------------
    def get_value(self, key: str, default: Any = None) -> Any:
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(values_table.c.value).where(values_table.c.key == key)
            ).scalar()
        return default if row is None else json.loads(row)

    def set_value(self, key: str, value: Any) -> None:
        encoded = json.dumps(value)
        insert = sqlite_insert(values_table).values(key=key, value=encoded)
        with self.engine.begin() as conn:
            conn.execute(
                insert.on_conflict_do_update(index_elements=["key"], set_={"value": encoded})
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a killed process; only a power loss may undo the last ones.
    # FULL fsyncs every commit (~6.5 ms here), and delivery commits twice per message.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
