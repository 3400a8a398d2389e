"""What a storm's opening rewrites per incident: its record without the texts of its signal,
which have a row of their own and stay as they are when the engine keeps them, and no index that
buys nothing. A store of the schema before (signals in the records, indexes on the state alone
and on the source) upgrades in place on both backends and goes on: nothing lost, nothing told
twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.sources.blackbox.client import ProbeResult, ProbeTarget, to_signal
from fleet_alerting.store.database import Retention, Store
from fleet_alerting.store.incidents import record_json
from fleet_alerting.store.tables import incidents_table, texts_table
from tests.stores import raw_engine
from tests.test_records_pending import series

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
POLICY = PolicyConfig(open_after=2, resolve_after=2, repeat=timedelta(hours=1))
SCHEMA_5_INDEXES = {"ix_incidents_state": "state", "ix_incidents_source": "source"}
MINUTE = timedelta(minutes=1)


def probe(name: str, status: int = 500) -> Signal:
    target = ProbeTarget(name, f"https://{name}.test/healthz", Severity.critical)
    return to_signal(ProbeResult(target, status < 400, status, 12.0, f"HTTP {status}"))


def run(store: Store, signals: list[Signal], now: datetime) -> tuple[Evaluation, int]:
    return store.evaluate(lambda records: evaluate(signals, records, lambda _s: POLICY, now), now)


def incident_indexes(db: str) -> set[str]:
    with raw_engine(db).connect() as conn:
        return {index["name"] for index in sa.inspect(conn).get_indexes("incidents")}


def texts(db: str) -> dict[str, str]:
    with raw_engine(db).connect() as conn:
        return dict(conn.execute(sa.select(texts_table.c.key, texts_table.c.signal)).tuples().all())


def with_signals() -> sa.Select[Any]:
    """Each incident's key, record and signal row (None: the record holds its signal)."""
    row = incidents_table.c
    return sa.select(row.key, row.data, texts_table.c.signal).select_from(
        incidents_table.outerjoin(texts_table, texts_table.c.key == row.key)
    )


def as_schema_5(db: str) -> None:
    """The store as schema 5 wrote it: each signal in its record, the two indexes."""
    row = incidents_table.c
    with raw_engine(db).begin() as conn:
        for key, data, signal in conn.execute(with_signals()).all():
            whole = record_json(data, signal)
            conn.execute(sa.update(incidents_table).where(row.key == key).values(data=whole))
        conn.execute(sa.delete(texts_table))
        for name, column in SCHEMA_5_INDEXES.items():
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON incidents ({column})")
        conn.exec_driver_sql("UPDATE store_meta SET value = '5' WHERE key = 'schema_version'")


def test_a_store_of_schema_5_with_open_pending_and_resolved_incidents_upgrades_and_goes_on(
    state_db: str,
) -> None:
    old, first, second = probe("old"), series("pi-1"), series("pi-2")
    with Store(state_db) as store:
        run(store, [old], T0)
        run(store, [old, first], T0 + MINUTE)  # old opens, first pends
        run(store, [probe("old", 200), first], T0 + 2 * MINUTE)  # first opens
        run(store, [probe("old", 200), first, second], T0 + 3 * MINUTE)  # old resolves
        before = store.incidents(include_resolved=True)
        outbox = [(q.notification.id, q.status) for q in store.outbox(("queued", "sent"))]
    assert {i.key: i.state for i in before} == {
        old.key: "resolved",
        first.key: "firing",
        second.key: "pending",
    }
    as_schema_5(state_db)
    with Store(state_db) as store:
        assert store.upgraded_from == 5
        assert not incident_indexes(state_db) & set(SCHEMA_5_INDEXES)
        assert set(texts(state_db)) == {first.key, second.key}  # the open ones' signals moved
        assert store.incidents(include_resolved=True) == before
        assert [(q.notification.id, q.status) for q in store.outbox(("queued", "sent"))] == outbox
        later, _ = run(store, [first, second], T0 + 4 * MINUTE)
        assert {(n.incident.key, n.kind) for n in later.notifications} == {(second.key, "opened")}
        steady, queued = run(store, [first, second], T0 + 5 * MINUTE)
        assert (steady.incidents, queued) == ([], 0)
        after = {i.key: i for i in store.incidents(include_resolved=True)}
    assert {k: i.state for k, i in after.items()} == {
        old.key: "resolved",
        first.key: "firing",
        second.key: "firing",
    }
    assert [after[i.key].signal for i in before] == [i.signal for i in before]


def test_an_opening_rewrites_the_records_and_keeps_the_rows_of_their_texts(state_db: str) -> None:
    signals = [series(host) for host in ("pi-1", "pi-2", "pi-3")]  # texts kept by fingerprint
    with Store(state_db) as store:
        run(store, signals, T0)
        stored = texts(state_db)
        marked = stored[signals[1].key].replace("failed its last run", "MARKED")
        with raw_engine(state_db).begin() as conn:  # shows whether the opening wrote it again
            conn.execute(
                sa.update(texts_table)
                .where(texts_table.c.key == signals[1].key)
                .values(signal=marked)
            )
        opened, _ = run(store, signals, T0 + MINUTE)
        assert texts(state_db) == stored | {signals[1].key: marked}
        assert [i.state for i in opened.incidents] == ["firing"] * 3
        by_key = {i.key: i for i in store.incidents()}
    assert by_key[signals[1].key].signal.summary == "Role agent on pi-2 MARKED"
    for incident in (opened.incidents[0], opened.incidents[2]):
        assert by_key[incident.key] == incident


def test_pruning_a_resolved_incident_deletes_the_row_of_its_texts(state_db: str) -> None:
    with Store(state_db) as store:
        for minute, status in enumerate((500, 500, 200, 200)):
            run(store, [probe("api", status)], T0 + minute * MINUTE)
        assert [i.state for i in store.incidents(include_resolved=True)] == ["resolved"]
        assert set(texts(state_db)) == {probe("api").key}
        day = timedelta(days=1)
        pruned = store.prune(T0 + 3 * day, Retention(day, day, day))
    assert pruned["resolved incidents"] == 1 and texts(state_db) == {}


def test_a_new_store_has_no_index_on_the_state_alone_nor_on_the_source(state_db: str) -> None:
    Store(state_db).close()
    indexes = incident_indexes(state_db)
    assert not indexes & set(SCHEMA_5_INDEXES)


def test_an_open_record_holding_a_nul_is_moved_by_the_upgrade(state_db: str) -> None:
    """Written before NULs were kept out: PostgreSQL cannot read the record as JSON, so the
    upgrade moves its signal in Python; the NUL is stored as U+FFFD and the board reads it."""
    from fleet_alerting.store.board import open_incidents

    first = series("pi-1")
    with Store(state_db) as store:
        run(store, [first], T0)
        run(store, [first], T0 + MINUTE)  # opens
    as_schema_5(state_db)
    row = incidents_table.c
    with raw_engine(state_db).begin() as conn:
        data = conn.execute(sa.select(row.data)).scalar_one()
        odd = data.replace("failed its last run", "failed\\u0000its last run")
        conn.execute(sa.update(incidents_table).values(data=odd))
    with Store(state_db) as store:
        assert store.upgraded_from == 5
        (shown,), counts = open_incidents(store, 10)
    assert shown.signal.summary == "Role agent on pi-1 failed\ufffdits last run"
    assert counts["critical"] == 1 and set(texts(state_db)) == {first.key}


def as_an_older_process_wrote(db: str, key: str) -> None:
    """`key`'s record as a process of schema 5 still running after the upgrade writes it: the
    signal in the record, no row of its texts."""
    row = incidents_table.c
    with raw_engine(db).begin() as conn:
        _, data, signal = conn.execute(with_signals().where(row.key == key)).one()
        whole = record_json(data, signal).replace("failed its last run", "failed twice")
        conn.execute(sa.update(incidents_table).where(row.key == key).values(data=whole))
        conn.execute(sa.delete(texts_table).where(texts_table.c.key == key))


def test_a_pending_record_an_older_process_wrote_after_the_upgrade_opens_with_its_texts_row(
    state_db: str,
) -> None:
    """Without a row of its texts, the brief's fingerprint no longer says "kept": as it opens
    the engine reads the record whole and the write gives its signal a row (else the record would
    be left with no signal at all, and every later run fail to read it)."""
    pending = series("pi-1")
    with Store(state_db) as store:
        run(store, [pending], T0)  # pends
    as_an_older_process_wrote(state_db, pending.key)
    with Store(state_db) as store:
        assert store.incident(pending.key).signal.summary == "Role agent on pi-1 failed twice"
        run(store, [pending], T0 + MINUTE)  # opens
        opened = store.incident(pending.key)
    assert set(texts(state_db)) == {pending.key}
    assert opened.state == "firing"
    assert opened.signal.summary == "Role agent on pi-1 failed its last run"


def test_a_resolved_incident_with_a_label_named_signal_reads_back(state_db: str) -> None:
    """A label (or evidence) key named "signal" stays in a resolved record's JSON beside the
    row of its texts: the record is read with its signal all the same."""
    crashed = replace(series("pi-1"), labels={"signal": "SIGSEGV", "host": "pi-1"})
    with Store(state_db) as store:
        for minute, signal in enumerate((crashed, crashed, replace(crashed, firing=False))):
            run(store, [signal], T0 + minute * MINUTE)
        run(store, [replace(crashed, firing=False)], T0 + 3 * MINUTE)
        (resolved,) = store.incidents(include_resolved=True)
    assert resolved.state == "resolved" and resolved.signal.labels["signal"] == "SIGSEGV"


def test_the_slack_app_reads_a_store_not_upgraded_yet(tmp_path: Path) -> None:
    """The Slack app and MCP open the file read-only: a store of schema 5 stays so until a
    writer opens it, and its open incidents are listed as they are."""
    from fleet_alerting.surfaces.fleet_queries import read_open_incidents

    db = tmp_path / "state.sqlite"
    with Store(db) as store:
        run(store, [probe("api")], T0)
        before = store.incidents()
    as_schema_5(str(db))
    with raw_engine(str(db)).begin() as conn:
        conn.exec_driver_sql("DROP TABLE incident_texts")
    assert read_open_incidents(db) == before
