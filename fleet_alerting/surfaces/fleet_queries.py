"""What operators ask from Slack or an MCP client, answered from the Fleet API and the store.

One `FleetQueries` serves both surfaces, so `/fleet health` and the MCP tool `health_summary` are
the same request. Paths are the Fleet API's behind Caddy (which strips the `/api` prefix).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fleet_alerting.config import Config
from fleet_alerting.config.schema import StateConfig
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.links import explore_url, logql_selector
from fleet_alerting.core.short_ids import short_ids
from fleet_alerting.sources.fleet_events.client import FleetApi
from fleet_alerting.store import incidents as stored_incidents
from fleet_alerting.store import migrations, sqlite_file
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.tables import SCHEMA_VERSION, incidents_table, texts_table

LEVELS = ("debug", "info", "warn", "warning", "error")
_CORRELATION = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class LogsQuery:
    device: str | None = None
    level: str | None = None
    correlation_id: str | None = None
    limit: int = 100

    @classmethod
    def from_words(cls, words: tuple[str, ...]) -> LogsQuery:
        """`[device] [level] [correlation-id]` in any order: levels and UUIDs are recognisable."""
        device = level = correlation = None
        for word in words:
            if word.lower() in LEVELS:
                level = word.lower()
            elif _CORRELATION.match(word):
                correlation = word
            else:
                device = word
        return cls(device, level, correlation)

    def params(self) -> dict[str, Any]:
        wanted = {
            "deviceId": self.device,
            "level": self.level,
            "correlationId": self.correlation_id,
        }
        return {k: v for k, v in wanted.items() if v} | {"limit": self.limit}


class FleetQueries:
    """`api` is None without a `fleet_api` section: the store's answers still work."""

    def __init__(self, config: Config, api: FleetApi | None):
        self.config = config
        self._api = api

    @property
    def api(self) -> FleetApi:
        if self._api is None:
            raise RuntimeError("fleet_api is not configured")  # the surfaces say so before
        return self._api

    async def health_summary(self) -> dict[str, Any]:
        body, _ = await self.api.get_json("/health/summary", {})
        return body

    async def fleet_state(self) -> dict[str, Any]:
        body, _ = await self.api.get_json("/fleet/state", {})
        return body

    async def logs(self, query: LogsQuery) -> dict[str, Any]:
        body, _ = await self.api.get_json("/logs/query", query.params())
        return body

    async def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        page, _problems = await self.api.recent_events(limit)
        return [
            {
                "timestamp": e.timestamp.isoformat(),
                "type": e.type,
                "severity": e.severity,
                "target": e.target,
                "message": e.message,
                "correlationId": e.correlation_id,
            }
            for e in page.events
        ]

    def logs_url(self, query: LogsQuery) -> str | None:
        labels = dict(self.config.fleet_api.log_labels) if self.config.fleet_api else {}
        logql = logql_selector(**labels)
        if query.device:
            logql += f' |= "{query.device}"'
        if query.correlation_id:
            logql += f' |= "{query.correlation_id}"'
        return explore_url(self.config.links, logql)

    async def open_incidents(self) -> list[dict[str, Any]]:
        """Open incidents, read in a worker thread so the event loop keeps serving."""
        incidents = await asyncio.to_thread(read_open_incidents, self.config.state)
        now = utcnow()
        ids = short_ids(i.key for i in incidents)  # what `fleet-alerting ack ID` takes
        return [
            {
                "id": ids[i.key],
                "key": i.key,
                "state": i.state.value,
                "severity": i.severity.value,
                "summary": i.signal.summary,
                "failing_for": format_duration(i.duration(now)),
                "since": i.onset.isoformat(),
                "runbook_url": i.signal.runbook_url,
                # as `incidents -o json` names them; a snooze that has ended is no longer said
                "acked_by": i.acts.acked_by,
                "silenced_by": i.acts.silenced_by,
                "silenced_until": _iso(i.acts.silenced_until),
                "snoozed_until": _iso(i.acts.snoozed_until, after=now),
                "muted_by": i.acts.muted_by,
                "muted_until": _iso(i.acts.muted_until),
            }
            for i in incidents
        ]


def _iso(moment: datetime | None, after: datetime | None = None) -> str | None:
    if moment is None or (after is not None and moment <= after):
        return None
    return moment.isoformat()


def read_open_incidents(state: StateConfig | Path) -> list[Incident]:
    """The store's open incidents through a read-only connection: under WAL a reader sees the last
    committed state and never waits for the write lock an evaluation holds (the store's own
    transactions begin IMMEDIATE, which would). On PostgreSQL the store's reads never wait."""
    if isinstance(state, StateConfig) and state.url:
        with Store(state) as store:
            return store.incidents()
    path = state.path if isinstance(state, StateConfig) else state
    assert path is not None
    if not path.exists():
        return []
    # a store this user may not write (a read-only mount) is read as it is, without a lock: read
    # again if a writer came meanwhile (`Stamp`)
    uri = sqlite_file.reader_uri(path)
    for _ in range(3):
        stamp = sqlite_file.Stamp.of(path)
        listed = _read_open(path, uri)
        if not sqlite_file.unlocked(uri) or sqlite_file.Stamp.of(path) == stamp:
            return listed
    raise StoreError(f"{path}: written by a run while it was read, three times; ask again")


def _read_open(path: Path, uri: str) -> list[Incident]:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    engine = sa.create_engine("sqlite://", creator=connect)
    try:
        with engine.connect() as conn:
            # a store newer code refuses this code: Store() would say so, and so does its reader
            migrations.refuse_newer(migrations.recorded(conn), SCHEMA_VERSION, str(path))
            if sa.inspect(conn).has_table(texts_table.name):
                return stored_incidents.listing(conn, include_resolved=False)
            return _before_schema_6(conn)  # read-only: a writer upgrades it
    except sa.exc.OperationalError as exc:
        raise sqlite_file.unreadable(path, StoreError(f"{path}: {exc.orig}")) from None
    finally:
        engine.dispose()


def _before_schema_6(conn: sa.Connection) -> list[Incident]:
    """The open incidents of a store not upgraded yet: each signal in its record."""
    row = incidents_table.c
    query = sa.select(row.data).where(row.state != State.resolved).order_by(row.updated_at.desc())
    return [stored_incidents.parse(data) for data in conn.execute(query).scalars()]
