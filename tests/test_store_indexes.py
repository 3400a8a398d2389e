"""The incidents table's indexes: a storm's opening changes the state of every row it writes, so
no index begins with what it rewrites and buys nothing. A store of the schema before (indexes on
the state alone and on the source) upgrades in place on both backends and goes on: nothing lost,
nothing told twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.sources.blackbox.client import ProbeResult, ProbeTarget, to_signal
from fleet_alerting.store.database import Store
from tests.stores import raw_engine
from tests.test_records_pending import series

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
POLICY = PolicyConfig(open_after=2, resolve_after=2, repeat=timedelta(hours=1))
SCHEMA_5_INDEXES = {
    "ix_incidents_state": "state",
    "ix_incidents_source": "source",
}


def probe(name: str, status: int = 500) -> Signal:
    target = ProbeTarget(name, f"https://{name}.test/healthz", Severity.critical)
    return to_signal(ProbeResult(target, status < 400, status, 12.0, f"HTTP {status}"))


def run(store: Store, signals: list[Signal], now: datetime) -> tuple[Evaluation, int]:
    return store.evaluate(lambda records: evaluate(signals, records, lambda _s: POLICY, now), now)


def incident_indexes(db: str) -> set[str]:
    with raw_engine(db).connect() as conn:
        return {index["name"] for index in sa.inspect(conn).get_indexes("incidents")}


def test_a_store_of_schema_5_with_open_and_pending_incidents_upgrades_and_goes_on(
    state_db: str,
) -> None:
    api, db = probe("api"), probe("db")
    with Store(state_db) as store:
        run(store, [api], T0)
        opened, queued = run(store, [api, db], T0 + timedelta(minutes=1))  # api opens, db pends
        assert queued and {i.key: i.state for i in opened.incidents} == {
            api.key: "firing",
            db.key: "pending",
        }
        before = store.incidents()
        outbox = [(q.notification.id, q.status) for q in store.outbox(("queued", "sent"))]
    with raw_engine(state_db).begin() as conn:  # the shape schema 5 wrote
        for name, column in SCHEMA_5_INDEXES.items():
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON incidents ({column})")
        conn.exec_driver_sql("UPDATE store_meta SET value = '5' WHERE key = 'schema_version'")
    with Store(state_db) as store:
        assert store.upgraded_from == 5
        assert not incident_indexes(state_db) & set(SCHEMA_5_INDEXES)
        assert store.incidents() == before
        assert [(q.notification.id, q.status) for q in store.outbox(("queued", "sent"))] == outbox
        later, _ = run(store, [api, db], T0 + timedelta(minutes=2))
        assert {(n.incident.key, n.kind) for n in later.notifications} == {(db.key, "opened")}
        steady, queued = run(store, [api, db], T0 + timedelta(minutes=3))
        assert (steady.incidents, queued) == ([], 0)
        assert {i.key: i.state for i in store.incidents()} == {api.key: "firing", db.key: "firing"}


def test_a_new_store_has_no_index_on_the_state_alone_nor_on_the_source(state_db: str) -> None:
    Store(state_db).close()
    indexes = incident_indexes(state_db)
    assert "ix_incidents_state_resolved_at" in indexes and not indexes & set(SCHEMA_5_INDEXES)


def test_an_unreadable_stored_signal_amid_an_opening_leaves_every_row_right(state_db: str) -> None:
    """The opening keeps the stored texts of many rows in one statement; one row's cannot be
    read (edited by hand): the rows before it in that statement, it, and those after it are all
    stored as decided, on both backends (SQLite undoes only the failing statement)."""
    probes = [series(host) for host in ("pi-1", "pi-2", "pi-3")]  # texts kept by fingerprint
    with Store(state_db) as store:
        run(store, probes, T0)
        with raw_engine(state_db).begin() as conn:
            data = conn.execute(
                sa.text("SELECT data FROM incidents WHERE key = :k"), {"k": probes[1].key}
            ).scalar_one()
            headless = data[: data.index(',"signal":')] + "}"
            conn.execute(
                sa.text("UPDATE incidents SET data = :d WHERE key = :k"),
                {"d": headless, "k": probes[1].key},
            )
        opened, _ = run(store, probes, T0 + timedelta(minutes=1))
        assert [i.key for i in opened.incidents] == [p.key for p in probes]
        assert [store.incident(i.key) for i in opened.incidents] == opened.incidents
        assert all(i.state == "firing" and i.signal.summary for i in store.incidents())
