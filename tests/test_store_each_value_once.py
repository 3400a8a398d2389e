"""What an opening writes holds each value once (schema 9): an incident's texts row holds its signal
without the key (the row's own: the record's is put back when it is read), and a message's copy of
its incident's record leaves out a group's members (a storm's group lists thousands; no message
reads them, the group's own record keeps them). Every reader reads what was decided, on both
backends, keys that need JSON escapes included; a store of schema 8 upgrades and reads its rows
as they were; code of 8, which cannot read a signal without its key, is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter

from fleet_alerting.core.incidents import Notification
from fleet_alerting.core.policy import Evaluation, default_policies
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import StormRules
from fleet_alerting.store import migrations, tables
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.tables import outbox_table, texts_table
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.stores import raw_engine
from tests.test_texts_rendered_once import ALERTS, T0, alertmanager_storm

POLICY = default_policies()[Severity.critical].model_copy(update={"open_after": 1})
# keys that need JSON escapes, or are not ASCII
ODD_KEYS = ['probe:target="a\\b"', "probe:target=Zürich\n\t", "probe:target=\u2028☃"]


def storm() -> list[Signal]:
    """An Alertmanager storm (critical `HostDown` alerts), and a few signals with odd keys."""
    odd = [
        Signal(key, "probe", True, Severity.critical, f"{key} down", labels={"k": key})
        for key in ODD_KEYS
    ]
    return alertmanager_storm("restart it", {}) + odd


def opening(store: Store, now: datetime = T0) -> Evaluation:
    evaluation, _ = evaluate_and_record(store, storm(), lambda _s: POLICY, now, rules=StormRules())
    return evaluation


def unlisted(n: Notification) -> Notification:
    """A message as its outbox row keeps it: its incident without a group's members."""
    return replace(n, incident=replace(n.incident, members=(), members_told=()))


def rows(db: str, table: sa.Table, column: str) -> list[tuple[str, str]]:
    """(key, `column`) of each row of `table` (an outbox row: its incident's key)."""
    key = table.c.incident_key if table is outbox_table else table.c.key
    with raw_engine(db).connect() as conn:
        return list(conn.execute(sa.select(key, table.c[column])).tuples())


def test_an_openings_rows_hold_each_value_once_and_read_back_as_decided(state_db: str) -> None:
    with Store(state_db) as store:
        evaluation = opening(store)
        decided = {i.key: i for i in evaluation.incidents}
        [group] = [i for i in decided.values() if i.key.startswith("group/alertmanager")]
        assert len(group.members) == len(group.members_told) == ALERTS
        assert {i.key: i for i in store.incidents()} == decided
        assert {k: store.incident(k) for k in decided} == decided
        with store.transaction() as unit:
            records = unit.records()
            assert {k: records[k] for k in decided} == decided
        shown, counts = open_incidents(store, 100)
        assert {i.key: i for i in shown} == decided and counts["critical"] == len(decided)
        queued = [item.notification for item in store.outbox()]
    assert sorted(queued, key=lambda n: n.id) == sorted(
        (unlisted(n) for n in evaluation.notifications), key=lambda n: n.id
    )
    assert len(decided) >= ALERTS + 1 + len(ODD_KEYS)
    texts = rows(state_db, texts_table, "signal")
    assert {k for k, _ in texts} == set(decided)
    assert [k for k, signal in texts if '"key"' in signal] == []  # main: every one
    messages = rows(state_db, outbox_table, "data")
    assert [k for k, data in messages if '"members_told"' in data] == []  # main: every one


SIGNAL_JSON = TypeAdapter(Signal)
NOTIFICATION_JSON = TypeAdapter(Notification)


def as_schema_8(db: str, evaluation: Evaluation) -> None:
    """The rows as code of schema 8 wrote them: each signal with its key, each message with its
    group's members; the store's version 8."""
    decided = {i.key: i for i in evaluation.incidents}
    with raw_engine(db).begin() as conn:
        for key, _ in rows(db, texts_table, "signal"):
            whole = SIGNAL_JSON.dump_json(decided[key].signal.rendered()).decode()
            conn.execute(
                sa.update(texts_table).where(texts_table.c.key == key).values(signal=whole)
            )
        for n in evaluation.notifications:
            sent = sa.update(outbox_table).where(outbox_table.c.notification_id == n.id)
            conn.execute(sent.values(data=NOTIFICATION_JSON.dump_json(n).decode()))
        conn.exec_driver_sql(
            "UPDATE store_meta SET value = '8' WHERE key IN ('schema_version', 'compatible_from')"
        )


def test_a_store_of_schema_8_upgrades_reads_its_rows_as_they_were_and_goes_on(
    state_db: str,
) -> None:
    with Store(state_db) as store:
        evaluation = opening(store)
        before = store.incidents()
    as_schema_8(state_db, evaluation)
    assert all('"key"' in signal for _, signal in rows(state_db, texts_table, "signal"))
    with Store(state_db) as store:
        assert store.upgraded_from == 8
        assert store.incidents() == before
        queued = sorted((item.notification for item in store.outbox()), key=lambda n: n.id)
        assert queued == sorted(evaluation.notifications, key=lambda n: n.id)  # members kept
        later, _ = evaluate_and_record(
            store, storm(), lambda _s: POLICY, T0 + timedelta(hours=2), rules=StormRules()
        )
        after = {i.key: i for i in store.incidents()}
    assert later.notifications  # the repeat's reminders
    assert {k: i.signal for k, i in after.items()} == {i.key: i.signal for i in before}
    with raw_engine(state_db).connect() as conn:
        meta = migrations.recorded(conn)
    now = str(tables.SCHEMA_VERSION)
    assert (meta["schema_version"], meta["compatible_from"]) == (now, now)


def test_code_of_schema_8_is_refused_by_this_store(state_db: str) -> None:
    """Code of 8 would read a texts row without its key as no signal at all."""
    Store(state_db).close()
    with raw_engine(state_db).begin() as conn, pytest.raises(StoreError, match="usable by code"):
        migrations.upgrade(conn, tables.metadata, 8, {}, state_db)
