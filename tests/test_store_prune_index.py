"""How resolved incidents are found for pruning: on SQLite by a partial index of the resolved
rows only, so an opening (pending to firing) moves no entry of it; on PostgreSQL by the index on
(state, resolved_at), by which it also reads the open incidents. A store of schema 6 upgrades in
place on both backends, keeps its incidents, and prunes as before."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fleet_alerting.store.database import Retention, Store
from tests.stores import raw_engine
from tests.test_store_opening_rows import MINUTE, T0, incident_indexes, probe, run

DAY = timedelta(days=1)
PRUNED_BY = {"sqlite": "ix_incidents_resolved", "postgresql": "ix_incidents_state_resolved_at"}


def as_schema_6(db: str) -> None:
    """The store as schema 6 made it: pruned by (state, resolved_at) on both backends."""
    with raw_engine(db).begin() as conn:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_incidents_resolved")
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_incidents_state_resolved_at "
            "ON incidents (state, resolved_at)"
        )
        conn.exec_driver_sql("UPDATE store_meta SET value = '6' WHERE key = 'schema_version'")


def resolve_one_and_open_another(store: Store) -> None:
    """`old` resolved at T0 + 3 minutes, `api` firing."""
    for minute, (old, api) in enumerate(((500, 500), (500, 500), (200, 500), (200, 500))):
        run(store, [probe("old", old), probe("api", api)], T0 + minute * MINUTE)


def test_a_store_of_schema_6_upgrades_to_its_pruning_index_and_prunes(state_db: str) -> None:
    dialect = "sqlite" if "://" not in state_db else "postgresql"
    with Store(state_db) as store:
        resolve_one_and_open_another(store)
        before = store.incidents(include_resolved=True)
    as_schema_6(state_db)
    with Store(state_db) as store:
        assert store.upgraded_from == 6
        indexes = incident_indexes(state_db)
        assert indexes & set(PRUNED_BY.values()) == {PRUNED_BY[dialect]}
        assert store.incidents(include_resolved=True) == before
        assert store.prune(T0 + 2 * DAY, Retention(DAY, DAY, DAY))["resolved incidents"] == 1
        assert [(i.key, i.state) for i in store.incidents(include_resolved=True)] == [
            (probe("api").key, "firing")
        ]


def test_sqlite_prunes_by_the_partial_index_and_keeps_no_entry_of_an_open_incident(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.sqlite"
    with Store(db) as store:
        resolve_one_and_open_another(store)
        executed: list[tuple[str, Any]] = []

        def seen(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_rest: Any) -> None:
            if sql.lstrip().upper().startswith("SELECT") and "resolved_at <" in sql:
                executed.append((sql, parameters))

        sa.event.listen(store.engine, "before_cursor_execute", seen)
        store.prune(T0 + 2 * DAY, Retention(DAY, DAY, DAY))
    ((sql, parameters),) = executed
    with sqlite3.connect(db) as raw:
        plan = " ".join(str(r[-1]) for r in raw.execute(f"EXPLAIN QUERY PLAN {sql}", parameters))
        (entries,) = raw.execute(
            "SELECT count(*) FROM incidents INDEXED BY ix_incidents_resolved "
            "WHERE state = 'resolved'"
        ).fetchone()
    assert "USING INDEX ix_incidents_resolved (state=? AND resolved_at<?)" in plan, plan
    assert entries == 0  # `old` pruned; `api`, firing, has no entry
