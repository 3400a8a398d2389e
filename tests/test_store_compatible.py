"""A rolling deploy: a store upgraded by newer code that says older code may still use it (its
`compatible_from`) keeps the hosts not yet upgraded working, and changed in nothing by them; one
that says otherwise refuses them, naming the schema they need."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import migrations, tables
from fleet_alerting.store.database import SCHEMA_VERSION, Store
from fleet_alerting.store.errors import StoreError
from tests.stores import raw_engine

NEWER = SCHEMA_VERSION + 1
T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _newer_metadata() -> sa.MetaData:
    """This code's tables plus what a next schema might add: a nullable column, a new table."""
    newer = sa.MetaData()
    for table in tables.metadata.sorted_tables:
        table.to_metadata(newer)
    newer.tables["incidents"].append_column(sa.Column("shift_note", sa.String, nullable=True))
    sa.Table("rotations", newer, sa.Column("name", sa.String, primary_key=True))
    return newer


def _upgraded_by_newer_code(state_db: str, compatible_from: int) -> None:
    Store(state_db).close()
    with raw_engine(state_db).begin() as conn:
        migrations.upgrade(conn, _newer_metadata(), NEWER, {}, state_db, compatible_from)


def _meta(state_db: str) -> dict[str, str]:
    with raw_engine(state_db).connect() as conn:
        return migrations.recorded(conn)


def _record(store: Store, signal: Signal) -> None:
    policy = PolicyConfig(open_after=1)
    store.evaluate(lambda current: evaluate([signal], current, lambda _s: policy, T0), T0)


def test_older_code_goes_on_using_a_store_newer_code_allows_it(state_db: str) -> None:
    _upgraded_by_newer_code(state_db, compatible_from=SCHEMA_VERSION)
    before = _meta(state_db)
    assert before["schema_version"] == str(NEWER)
    assert before["compatible_from"] == str(SCHEMA_VERSION)

    with Store(state_db) as store:  # this code, one schema behind
        _record(store, Signal("blackbox:target=pi-01", "blackbox", True, Severity.warning, "down"))
        assert [i.key for i in store.incidents()] == ["blackbox:target=pi-01"]

    assert _meta(state_db) == before  # not "upgraded" back, nothing rewritten
    with raw_engine(state_db).connect() as conn:  # the newer code's column and table are kept
        rows = conn.execute(sa.text("SELECT key, shift_note FROM incidents")).all()
        assert conn.execute(sa.text("SELECT count(*) FROM rotations")).scalar() == 0
    assert [tuple(r) for r in rows] == [("blackbox:target=pi-01", None)]


def test_older_code_is_refused_by_a_store_newer_code_does_not_allow_it(state_db: str) -> None:
    _upgraded_by_newer_code(state_db, compatible_from=NEWER)
    with pytest.raises(StoreError) as refused:
        Store(state_db)
    message = str(refused.value)
    assert f"store schema {NEWER}, usable by code of schema {NEWER} on" in message
    assert f"this code knows {SCHEMA_VERSION}" in message
    assert _meta(state_db)["schema_version"] == str(NEWER)


def test_this_code_records_which_code_may_use_its_store(state_db: str) -> None:
    """What a fresh store says of itself: code of tables.COMPATIBLE_FROM on may use it."""
    Store(state_db).close()
    meta = _meta(state_db)
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["compatible_from"] == str(tables.COMPATIBLE_FROM)
    assert tables.COMPATIBLE_FROM <= SCHEMA_VERSION


def test_a_newer_store_that_says_nothing_of_older_code_is_refused(state_db: str) -> None:
    """A store whose code recorded no `compatible_from` allows no older code (as before)."""
    _upgraded_by_newer_code(state_db, compatible_from=SCHEMA_VERSION)
    with raw_engine(state_db).begin() as raw:
        raw.exec_driver_sql("DELETE FROM store_meta WHERE key = 'compatible_from'")
    with pytest.raises(StoreError, match=f"usable by code of schema {NEWER} on"):
        Store(state_db)


def test_code_of_schema_7_is_refused_by_this_store(state_db: str) -> None:
    """Schema 8 added the outbox status `withdrawn`: code of 7 would read a withdrawn page as
    delivered (its Slack "paged" message saying "Paged" for a page nobody sent) — it must not
    use a store of this code during a rolling deploy."""
    Store(state_db).close()
    with raw_engine(state_db).begin() as conn, pytest.raises(StoreError, match="usable by code"):
        migrations.upgrade(conn, tables.metadata, 7, {}, state_db)
