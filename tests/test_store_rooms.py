"""The seams between the store's rooms, on both backends: `Store.transaction()` (one unit of work
over incidents, outbox and key/value), the key/value room, and the migrations of an older
store (store/migrations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import kv, migrations
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import SCHEMA_VERSION, incidents_table
from tests.stores import raw_engine, write_lock_free

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
PAGE_AT_ONCE = PolicyConfig(
    open_after=1, resolve_after=1, page=["pagerduty"], page_after=timedelta(0), mirror=True
)
KEY = "blackbox:target=api"
CURSOR = {"seen": ["evt-1", "evt-2"], "at": "2026-12-06T03:00:00+00:00"}


def opening(key: str = KEY) -> Evaluation:
    """The engine's first look at a failing critical: an incident and its notifications."""
    signal = Signal(key, "blackbox", True, Severity.critical, f"{key} down")
    return evaluate([signal], {}, lambda _s: PAGE_AT_ONCE, T0)


# Store.transaction() -----------------------------------------------------------------------------
def test_a_transaction_holds_the_write_lock_and_commits_its_work_together(state_db: str) -> None:
    evaluation = opening()
    with Store(state_db) as store:
        with store.transaction() as unit:
            queued = unit.record(evaluation, T0)
            unit.set_value("fleet_events:cursor", CURSOR)
            # the unit sees what it wrote; nobody else does before it commits
            stored = unit.incident(KEY)
            assert stored is not None and stored.state == evaluation.incidents[0].state
            records = unit.records()
            assert list(records) == [KEY] and records.brief(KEY) is not None
            assert unit.get_value("fleet_events:cursor") == CURSOR
            assert not write_lock_free(state_db)
            assert store.incident(KEY) is None and store.outbox(("queued",)) == []
            assert store.get_value("fleet_events:cursor") is None
        assert write_lock_free(state_db)
        assert queued == len(evaluation.notifications) > 0
        assert store.incident(KEY) == stored
        assert len(store.outbox(("queued",))) == queued
        assert store.get_value("fleet_events:cursor") == CURSOR


def test_a_transaction_that_fails_leaves_no_incident_notification_or_value(state_db: str) -> None:
    evaluation = opening()
    with Store(state_db) as store:
        with pytest.raises(RuntimeError, match="midway"), store.transaction() as unit:
            unit.write_incidents(evaluation.incidents, T0)
            assert unit.queue(evaluation.notifications, T0) == len(evaluation.notifications)
            unit.set_value("fleet_events:cursor", CURSOR)
            raise RuntimeError("midway")
        assert write_lock_free(state_db)
        assert store.incident(KEY) is None and store.incident_states() == {}
        assert store.outbox(("queued", "sent", "dead")) == []
        assert store.get_value("fleet_events:cursor", "none") == "none"


def test_a_notification_queued_twice_in_a_transaction_is_queued_once(state_db: str) -> None:
    evaluation = opening()
    with Store(state_db) as store:
        with store.transaction() as unit:
            assert unit.record(evaluation, T0) == len(evaluation.notifications)
            assert unit.queue(evaluation.notifications, T0) == 0
        assert len(store.outbox(("queued",))) == len(evaluation.notifications)


# key/value ---------------------------------------------------------------------------------------
VALUES: list[Any] = [0, 17.5, "2026-12-06T03:00:00+00:00", [1, "two"], CURSOR, True, {}, None]


def test_values_are_json_kept_per_key_and_the_last_write_wins(state_db: str) -> None:
    with Store(state_db) as store:
        assert store.get_value("missing", default=[]) == []
        for value in VALUES:
            store.set_value("cursor", value)
            assert store.get_value("cursor", default="unset") == value
        with store.transaction() as unit:
            for n, value in enumerate(VALUES):
                kv.set_value(unit.conn, f"key-{n}", value)
        with store.read() as conn:
            assert [kv.get_value(conn, f"key-{n}") for n in range(len(VALUES))] == VALUES
            assert kv.get_value(conn, "cursor", default="unset") is None  # JSON null is a value


# migrations --------------------------------------------------------------------------------------
# (version the store says it has, whether the upgrade fills the brief columns of open incidents)
OLDER = [(4, False), (2, False), (1, True), (0, True)]


@pytest.mark.parametrize(("found", "fills_brief"), OLDER)
def test_an_older_store_runs_the_steps_after_its_version_once(
    state_db: str, found: int, fills_brief: bool
) -> None:
    with Store(state_db) as store:
        store.record(opening(), T0)
    engine = raw_engine(state_db)
    row = incidents_table.c
    with engine.begin() as conn:
        conn.execute(sa.update(incidents_table).values(fingerprint=None, onset=None))
        conn.exec_driver_sql(
            f"UPDATE store_meta SET value = '{found}' WHERE key = 'schema_version'"
        )
    with engine.begin() as conn:
        assert not migrations.current(conn)
        assert migrations.upgrade_store(conn, "test store") == found
    with engine.begin() as conn:
        assert migrations.current(conn)
        assert migrations.upgrade_store(conn, "test store") == SCHEMA_VERSION
        brief = conn.execute(sa.select(row.fingerprint, row.onset)).one()
    engine.dispose()
    assert (None not in brief) is fills_brief
    with Store(state_db) as store:
        assert store.upgraded_from == SCHEMA_VERSION
        assert [i.key for i in store.incidents()] == [KEY]
