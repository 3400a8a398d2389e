"""Requests already seen, for the HTTP endpoints' replay protection: one row per signed request
(a Slack signature, a PagerDuty event id) until its window ends. In the store, so every app
process sharing it and a restarted one see the same rows.

`first_sight` is an insert-if-absent on a unique key: of two processes racing with the same
request, exactly one inserts it. Expired rows are deleted by the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from fleet_alerting.store import backend
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import replays_table
from fleet_alerting.store.tables import ts as _ts


def _remember(dialect: str) -> sa.ReturningInsert[tuple[str]]:
    insert = backend.insert(replays_table, dialect)
    new = insert.values(key=sa.bindparam("key"), expires_at=sa.bindparam("expires_at"))
    # RETURNING, not rowcount: psycopg reports no rowcount for this statement
    return new.on_conflict_do_nothing(index_elements=["key"]).returning(replays_table.c.key)


def first_sight(store: Store, key: str, now: datetime, keep: timedelta) -> bool:
    """True the first time `key` is seen (it is then remembered until `now + keep`), False for a
    replay of one still remembered."""
    table = replays_table.c
    with store.engine.begin() as conn:
        conn.execute(sa.delete(replays_table).where(table.expires_at <= _ts(now)))
        inserted = conn.execute(
            backend.cached(_remember, store.dialect),
            {"key": key, "expires_at": _ts(now + keep)},
        ).first()
    return inserted is not None


def remembered(store: Store) -> int:
    """How many requests are remembered now (expired ones not yet pruned included)."""
    with store.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(replays_table)).scalar_one())
