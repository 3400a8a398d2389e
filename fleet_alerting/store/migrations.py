"""Schema version and in-place upgrades, without Alembic.

The tables are declared once, in SQLAlchemy metadata. Opening a store compares a fingerprint of
that metadata (tables, columns, indexes) with the one recorded in the store; only when they differ
does `upgrade` look at the file: it creates missing tables and indexes, adds missing columns with
`ALTER TABLE ... ADD COLUMN` (so a new column must be nullable or have a server default), then runs
the numbered data steps between the recorded version and the code's. Everything happens in the
caller's write transaction (SQLite's write lock, PostgreSQL's advisory lock: store/backend.py),
so two processes opening an old store upgrade it once. The SQL is the same on both databases.

A store written by newer code (a higher version) is refused rather than half understood, unless
that code recorded that this version may still use it (`compatible_from`, tables.COMPATIBLE_FROM):
then it is used as it is, and changed in nothing.
`current` and `upgrade_store` apply this to the store's own tables (store/tables.py) and steps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import sqlalchemy as sa

from fleet_alerting.core.incidents import State
from fleet_alerting.store import incidents
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.tables import (
    COMPATIBLE_FROM,
    SCHEMA_VERSION,
    incidents_table,
    metadata,
    texts_table,
)

Step = Callable[[sa.Connection], None]

meta_table_name = "store_meta"  # key/value: schema_version, schema_fingerprint, compatible_from


def fingerprint(metadata: sa.MetaData) -> str:
    parts = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        parts.append(table.name)
        parts += [f"{c.name}:{c.type!r}:{c.nullable}" for c in table.columns]
        parts += sorted(f"ix:{ix.name}" for ix in table.indexes)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def recorded(conn: sa.Connection) -> dict[str, str]:
    """What the store says about itself ({} for a store made before versions existed)."""
    if not sa.inspect(conn).has_table(meta_table_name):
        return {}
    rows = conn.exec_driver_sql(f"SELECT key, value FROM {meta_table_name}").all()
    return {str(k): str(v) for k, v in rows}


def up_to_date(conn: sa.Connection, metadata: sa.MetaData, version: int) -> bool:
    """True if nothing needs doing: checked in a read transaction before taking the write lock."""
    meta = recorded(conn)
    if _newer_yet_usable(meta, version):
        return True
    return meta.get("schema_version") == str(version) and meta.get(
        "schema_fingerprint"
    ) == fingerprint(metadata)


def _found(meta: Mapping[str, str]) -> int:
    return int(meta.get("schema_version", "0"))


def _newer_yet_usable(meta: Mapping[str, str], version: int) -> bool:
    """Written by newer code that says code of `version` may still use it (no key: it may not)."""
    found = _found(meta)
    return found > version and int(meta.get("compatible_from", found)) <= version


def refuse_newer(meta: Mapping[str, str], version: int, where: str) -> None:
    """StoreError if the store (`recorded`) was written by newer code that does not allow code
    of `version` to use it — to read it too: what it keeps may mean otherwise there."""
    found = _found(meta)
    if found > version and not _newer_yet_usable(meta, version):
        usable = int(meta.get("compatible_from", found))
        raise StoreError(
            f"{where}: written by a newer fleet-alerting (store schema {found}, usable by code "
            f"of schema {usable} on; this code knows {version}); upgrade fleet-alerting, or "
            "point the config's state at another store"
        )


def upgrade(
    conn: sa.Connection,
    metadata: sa.MetaData,
    version: int,
    steps: Mapping[int, Step],
    where: str,
    compatible_from: int | None = None,
) -> int | None:
    """Bring the store up to `version` and the shape of `metadata`, recording that code of
    `compatible_from` (default: `version`) on may use it; returns the version found (None for a
    new store, 0 for one written before versions existed). A store of newer code is left as it
    is if that code allows this version, else StoreError."""
    meta = recorded(conn)
    found = _found(meta)
    if _newer_yet_usable(meta, version):
        return found
    refuse_newer(meta, version, where)
    print_ = fingerprint(metadata)
    if found == version and meta.get("schema_fingerprint") == print_:
        return found
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    fresh = not (existing - {meta_table_name})
    for table in metadata.sorted_tables:
        if table.name not in existing:
            table.create(conn)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
        for index in table.indexes:
            index.create(conn, checkfirst=True)  # not one made only elsewhere (ddl_if)
    if not fresh:
        for step in range(found + 1, version + 1):
            if step in steps:
                steps[step](conn)
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {meta_table_name} (key VARCHAR PRIMARY KEY, value VARCHAR)"
    )
    remember = sa.text(
        f"INSERT INTO {meta_table_name} (key, value) VALUES (:key, :value) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    recorded_now = {
        "schema_version": str(version),
        "schema_fingerprint": print_,
        "compatible_from": str(version if compatible_from is None else compatible_from),
    }
    for key, value in recorded_now.items():
        conn.execute(remember, {"key": key, "value": value})
    return None if fresh else found


def current(conn: sa.Connection) -> bool:
    """The store is at this code's schema (`up_to_date` for the store's own tables)."""
    return up_to_date(conn, metadata, SCHEMA_VERSION)


def upgrade_store(conn: sa.Connection, where: str) -> int | None:
    """`upgrade` the store to this code's tables and version, with its data steps."""
    return upgrade(conn, metadata, SCHEMA_VERSION, STEPS, where, COMPATIBLE_FROM)


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
        sa.select(table.key, table.data, texts_table.c.signal)
        .select_from(incidents.WITH_TEXTS)
        .where(sa.or_(table.state != State.resolved.value, table.data.like('%"thread_ts":"%')))
    ).all()
    for key, data, signal in rows:
        incident = incidents.parse(incidents.record_json(data, signal))
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
        incidents.select_incidents().where(table.state != State.resolved.value)
    ).all()
    for row in rows:
        incident = incidents.row_incident(row)
        conn.execute(
            sa.update(incidents_table)
            .where(table.key == incident.key)
            .values(**incidents.brief_row(incident))
        )


def _upgrade_to_3(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_incidents_brief")


def _upgrade_to_6(conn: sa.Connection) -> None:
    for index in _DROPPED_IN_6:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
    incidents.split_texts(conn)


_DROPPED_IN_6 = ("ix_incidents_state", "ix_incidents_source")


def _upgrade_to_7(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_incidents_state_resolved_at")


STEPS: dict[int, Step] = {
    1: _upgrade_to_1,
    2: _upgrade_to_2,
    3: _upgrade_to_3,
    6: _upgrade_to_6,
    7: _upgrade_to_7,
}
