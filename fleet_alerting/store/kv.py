"""Small per-source state: cursors, first-seen times. A JSON value per key, read and written in
the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from fleet_alerting.store import backend
from fleet_alerting.store.tables import values_table


def get_value(conn: sa.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute(sa.select(values_table.c.value).where(values_table.c.key == key)).scalar()
    return default if row is None else json.loads(row)


def set_value(conn: sa.Connection, key: str, value: Any) -> None:
    encoded = json.dumps(value)
    insert = backend.insert(values_table, conn.dialect.name).values(key=key, value=encoded)
    conn.execute(insert.on_conflict_do_update(index_elements=["key"], set_={"value": encoded}))
