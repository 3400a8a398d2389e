"""Read-only summaries of the store for `serve`'s metrics endpoint and heartbeat: counts and
oldest ages by aggregate queries over the outbox (its retained sent rows included) and the open
incidents' records: a scrape grows with those, and is bounded in time by the endpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from fleet_alerting.core.heartbeat import QueuedPage
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import Destination
from fleet_alerting.store.tables import destinations_table, outbox_table


@dataclass(frozen=True)
class OutboxGroup:
    destination: str
    status: str  # queued | sent | dead | withdrawn
    count: int
    oldest: datetime  # created_at of the oldest row
    last_attempt: datetime  # the latest next_attempt_at: for dead letters, about when they died


def outbox_groups(store: Store) -> list[OutboxGroup]:
    t = outbox_table
    query = sa.select(
        t.c.channel,
        t.c.status,
        sa.func.count(),
        sa.func.min(t.c.created_at),
        sa.func.max(t.c.next_attempt_at),
    ).group_by(t.c.channel, t.c.status)
    with store.queue.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        OutboxGroup(
            channel, status, count, datetime.fromisoformat(oldest), datetime.fromisoformat(last)
        )
        for channel, status, count, oldest, last in rows
    ]


def oldest_queued(store: Store, channels: Sequence[str]) -> QueuedPage | None:
    """The longest-waiting queued message to one of `channels` (the pagers)."""
    t = outbox_table
    query = (
        sa.select(t.c.channel, t.c.incident_key, t.c.created_at)
        .where(t.c.status == "queued", t.c.channel.in_(list(channels)))
        .order_by(t.c.created_at, t.c.id)
        .limit(1)
    )
    with store.queue.engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else QueuedPage(row[0], row[1], datetime.fromisoformat(row[2]))


def destinations(store: Store) -> list[Destination]:
    d = destinations_table
    query = sa.select(d.c.name, d.c.blocked_until, d.c.failures).order_by(d.c.name)
    with store.queue.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Destination(name, datetime.fromisoformat(blocked) if blocked else None, failures)
        for name, blocked, failures in rows
    ]


def open_incidents(store: Store) -> Counter[tuple[str, str, str]]:
    """Open incidents by (severity, source, state)."""
    return Counter(
        (i.severity.value, i.source, i.state.value) for i in store.incidents(include_resolved=False)
    )
