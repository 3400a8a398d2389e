"""The store on its own: serialized evaluation across processes, episodes and threads, retention,
the schema version and in-place upgrades (a store written by main), and unusable store files.
Tests taking `state_db` run on SQLite and on PostgreSQL (tests/stores.py)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.incidents import State
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import migrations as migrate
from fleet_alerting.store.database import SCHEMA_VERSION, Retention, Store
from fleet_alerting.store.errors import StoreError
from tests.servers import free_port
from tests.stores import new_database, raw_engine, write_lock_free, write_lock_held

ROOT = Path(__file__).parent.parent
MAIN_STORE = Path(__file__).parent / "fixtures" / "store-main-c4597d7.sqlite"
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PAGE_AT_ONCE = PolicyConfig(
    open_after=1, resolve_after=1, page=["pagerduty"], page_after=timedelta(0), mirror=True
)
WARN = PolicyConfig(open_after=1, resolve_after=1)
DAY = timedelta(days=1)


def down(key: str, fail: bool = True, since: datetime | None = None) -> Signal:
    return Signal(key, "blackbox", fail, Severity.critical, f"{key} down", since=since)


def record(store: Store, signals: list[Signal], now: datetime, policy=PAGE_AT_ONCE) -> int:
    return store.evaluate(lambda current: evaluate(signals, current, lambda _s: policy, now), now)[
        1
    ]


# serialized evaluation ----------------------------------------------------------------------
def _evaluating_process(db: str, rounds: int, barrier) -> None:  # runs in a child process
    from fleet_alerting.tasks.pipeline import evaluate_and_record

    store = Store(db)
    for round_ in range(rounds):
        barrier.wait(timeout=120)
        # each process with its own clock, as five flows started by the same cron tick are
        signal = down(f"blackbox:target=api-{round_}")
        evaluate_and_record(store, [signal], lambda _s: PAGE_AT_ONCE, utcnow())
    store.close()


def test_concurrent_runs_evaluate_one_at_a_time_and_queue_each_notification_once(
    state_db: str,
) -> None:
    """Concurrent runs race: every process reads "no incident" and queues its own opening with
    its own onset. Read, evaluate and record in one write transaction: one opening per key."""
    db = state_db
    processes, rounds = 4, 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    children = [
        context.Process(target=_evaluating_process, args=(db, rounds, barrier))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
        assert child.exitcode == 0
    store = Store(db)
    per_key: dict[str, list[str]] = {}
    for item in store.outbox(("queued",)):
        n = item.notification
        per_key.setdefault(n.incident.key, []).append(f"{n.channel}:{n.kind}")
    once = ["slack:opened", "slack_mirror:opened", "pagerduty:paged", "slack:paged"]
    once.append("slack_mirror:paged")
    assert per_key == {f"blackbox:target=api-{r}": once for r in range(rounds)}


def test_a_second_evaluation_waits_for_the_first_and_sees_what_it_recorded(state_db: str):
    first, second = Store(state_db), Store(state_db, busy_timeout=60)
    seen: list[int] = []
    assert write_lock_free(state_db)

    def decide_first(current):
        # while this transaction is open, another process's evaluation must wait: try one
        assert not write_lock_free(state_db)
        return evaluate([down("k")], current, lambda _s: PAGE_AT_ONCE, T0)

    first.evaluate(decide_first, T0)

    def decide_second(current):
        seen.append(len(current))
        return evaluate([down("k")], current, lambda _s: PAGE_AT_ONCE, T0 + timedelta(seconds=1))

    assert second.evaluate(decide_second, T0)[1] == 0
    assert seen == [1]


def test_reading_does_not_wait_for_an_evaluation_in_progress(state_db: str) -> None:
    record(Store(state_db), [down("k")], T0)
    with write_lock_held(state_db):  # another process is evaluating
        reader = Store(state_db, busy_timeout=0.2)
        assert [i.key for i in reader.incidents()] == ["k"]
        assert len(reader.outbox()) == 5
        with pytest.raises(StoreError, match=r"locked by another process for more than 0\.2 s"):
            record(reader, [down("j")], T0)


# episodes and threads -----------------------------------------------------------------------
def test_a_reopened_incident_with_the_same_onset_is_queued_again(state_db: str) -> None:
    store = Store(state_db)
    assert record(store, [down("am", since=T0)], T0) == 5
    assert record(store, [down("am", fail=False)], T0 + timedelta(minutes=10)) == 3
    # the silence expires: Alertmanager reports the alert again with its old startsAt
    assert record(store, [down("am", since=T0)], T0 + timedelta(hours=2)) == 5
    paged = [i for i in store.outbox(("queued",)) if i.notification.channel == "pagerduty"]
    assert [i.notification.kind for i in paged] == ["paged", "resolved", "paged"]


def test_a_thread_set_meanwhile_is_kept_for_its_episode_and_dropped_for_the_next(
    state_db: str,
) -> None:
    store = Store(state_db)
    record(store, [down("k", since=T0)], T0)
    stale = store.unresolved()  # an evaluation read the incident before the thread existed
    assert store.set_thread("k", T0, "C1", "111.222", T0)
    later = T0 + timedelta(minutes=40)  # a reminder is due: the stale copy is written back
    policy = PAGE_AT_ONCE.model_copy(update={"repeat": timedelta(minutes=30)})
    evaluation = evaluate([down("k", since=T0)], stale, lambda _s: policy, later)
    assert evaluation.incidents and evaluation.incidents[0].thread_ts is None
    store.record(evaluation, later)
    assert store.incident("k").thread_ts == "111.222"
    record(store, [down("k", fail=False)], later + timedelta(minutes=1))
    assert store.incident("k").thread_ts == "111.222"  # the resolved episode keeps its thread
    record(store, [down("k", since=T0)], later + timedelta(hours=1))  # same onset, new episode
    reopened = store.incident("k")
    assert reopened.state == State.paged and reopened.thread_ts is None


def test_the_thread_is_found_without_parsing_incidents(state_db: str) -> None:
    store = Store(state_db)
    record(store, [down("k")], T0)
    store.set_thread("k", T0, "C1", "111.222", T0)
    with raw_engine(state_db).connect() as raw:
        row = raw.exec_driver_sql("SELECT thread_channel, thread_ts FROM incidents").one()
    assert tuple(row) == ("C1", "111.222")


def test_the_slack_app_and_mcp_read_open_incidents_on_either_backend(state_db: str) -> None:
    from fleet_alerting.config.schema import StateConfig
    from fleet_alerting.surfaces.fleet_queries import read_open_incidents

    record(Store(state_db), [down("k"), down("j")], T0)
    record(Store(state_db), [down("j", fail=False)], T0 + timedelta(minutes=1))
    where = {"url": state_db} if "://" in state_db else {"path": state_db}
    assert [i.key for i in read_open_incidents(StateConfig.model_validate(where))] == ["k"]


# retention ----------------------------------------------------------------------------------
def test_prune_deletes_history_past_retention_and_nothing_open_or_recent(state_db: str) -> None:
    store = Store(state_db)
    old = T0 - timedelta(days=100)
    record(store, [down(f"old-{n}") for n in range(5)], old, WARN)
    record(store, [down(f"old-{n}", fail=False) for n in range(5)], old, WARN)
    record(store, [down("open-since-long")], old, WARN)
    record(store, [down("recent"), down("recent-open")], T0 - timedelta(days=1), WARN)
    record(store, [down("recent", fail=False)], T0 - timedelta(days=1), WARN)
    items = store.outbox(("queued",))
    for item in items[:8]:
        store.queue.mark_sent(item.id, None, 1, "ok")  # no drainer's claim: owner None
    store.queue.mark_dead(items[8].id, None, 1, "permanent: 400")
    retention = Retention(timedelta(days=90), timedelta(days=30), timedelta(days=90))
    pruned = store.prune(T0, retention, batch=3)  # a batch per call: the lock is held briefly
    assert pruned == {
        "resolved incidents": 3,
        "sent notifications": 3,
        "dead letters": 1,
        "actions": 0,
        "ended silences": 0,
    }
    store.prune(T0, retention)
    assert sorted(i.key for i in store.incidents(include_resolved=True)) == [
        "open-since-long",
        "recent",
        "recent-open",
    ]
    left = store.outbox(("queued", "sent", "dead"))
    assert all(i.created_at > T0 - timedelta(days=30) or i.status == "queued" for i in left)
    assert store.prune(T0, retention) == dict.fromkeys(pruned, 0)


def test_the_audit_trail_and_ended_silences_are_pruned_past_their_retention(
    state_db: str,
) -> None:
    """A nightly window over a fleet writes a row per incident as it begins and ends: the trail
    is kept `state.retention.actions`, ended silences `expired_silences`, like the rest."""
    from fleet_alerting.core.muting import Silence
    from fleet_alerting.store import actions, silences

    store = Store(state_db)
    for days_ago in (120, 101, 99, 1):
        at = T0 - timedelta(days=days_ago)
        for n in range(3):
            actions.record(store, f"k{n}", action="muted", actor="window", via="evaluation", now=at)
    for name, ended in (("ended-long-ago", 150), ("ended-101d", 101), ("ended-99d", 99)):
        start = T0 - timedelta(days=ended + 1)
        silences.add(store, Silence(name, ('site="a"',), start, start + timedelta(days=1), "op"))
    forever = Silence("in-force", ('site="b"',), T0 - timedelta(days=400), T0 + DAY, "op")
    silences.add(store, forever)
    kept = Retention(actions=timedelta(days=100), expired_silences=timedelta(days=100))
    first = store.prune(T0, kept, batch=4)  # a batch per call, like the others
    assert (first["actions"], first["ended silences"]) == (4, 2)
    assert store.prune(T0, kept)["actions"] == 2
    assert store.prune(T0, kept) == dict.fromkeys(first, 0)
    trail = actions.history(store)
    assert len(trail) == 6 and min(r.at for r in trail) == T0 - timedelta(days=99)
    left = silences.listing(store, T0, include_expired=True)
    assert sorted(s.id for s in left) == ["ended-99d", "in-force"]


def test_open_incidents_and_pruning_use_indexes(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    with sqlite3.connect(tmp_path / "s.sqlite") as raw:
        plans = {
            "open": "SELECT data FROM incidents WHERE state IN ('pending','firing','paged')",
            "prune": "SELECT rowid FROM incidents WHERE state='resolved' AND resolved_at < 'x'",
            "outbox": "SELECT rowid FROM outbox WHERE status='sent' AND created_at < 'x'",
            "actions": "SELECT id FROM actions WHERE at < 'x'",
            "silences": "SELECT id FROM silences WHERE ends_at < 'x'",
        }
        for name, query in plans.items():
            plan = " ".join(str(r[-1]) for r in raw.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert "USING" in plan and "SCAN" not in plan, (name, plan)


# schema version and upgrades ----------------------------------------------------------------
def test_a_store_written_by_main_opens_upgrades_and_keeps_its_incidents_and_outbox(
    tmp_path: Path,
) -> None:
    """tests/fixtures/store-main-c4597d7.sqlite was written by main before schema versions: a
    paged critical with a Slack thread, a firing and a resolved warning; 4 queued notifications,
    one sent, one dead; a fleet-events cursor."""
    db = tmp_path / "state.sqlite"
    shutil.copy(MAIN_STORE, db)
    store = Store(db)
    assert store.upgraded_from == 0
    by_key = {i.key: i for i in store.incidents(include_resolved=True)}
    assert {k: i.state for k, i in by_key.items()} == {
        "alertmanager:fingerprint=abc123": State.paged,
        "blackbox:target=dev1": State.firing,
        "blackbox:target=dev2": State.resolved,
    }
    assert by_key["alertmanager:fingerprint=abc123"].thread_ts == "1700000000.000100"
    statuses = [i.status for i in store.outbox(("queued", "sent", "dead"))]
    assert sorted(statuses) == ["dead", "queued", "queued", "queued", "queued", "sent"]
    assert store.get_value("fleet_events:cursor")["seen"] == ["x"]
    store.close()
    # upgraded in place: reopening does nothing more, and the data in new columns is there
    again = Store(db)
    assert again.upgraded_from == SCHEMA_VERSION
    with sqlite3.connect(db) as raw:
        meta = dict(raw.execute("SELECT key, value FROM store_meta"))
        resolved_at = raw.execute(
            "SELECT resolved_at FROM incidents WHERE key='blackbox:target=dev2'"
        ).fetchone()
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert resolved_at == ("2026-11-20T03:03:00+00:00",)
    # the upgraded store goes on working: the paged incident resolves in its thread's episode
    t1 = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    key = "alertmanager:fingerprint=abc123"
    signal = Signal(key, "alertmanager", False, Severity.critical, "gone")
    assert record(again, [signal], t1) == 3
    assert again.incident(key).thread_ts == "1700000000.000100"
    retention = Retention(timedelta(days=1), timedelta(days=1), timedelta(days=1))
    pruned = again.prune(t1 + timedelta(days=2), retention)
    assert pruned == {
        "resolved incidents": 2,
        "sent notifications": 1,
        "dead letters": 1,
        "actions": 0,
        "ended silences": 0,
    }


def test_upgrade_adds_tables_columns_and_indexes_declared_later(state_db: str) -> None:
    """Whatever a later change declares in the metadata appears in existing stores."""
    engine = raw_engine(state_db)
    v1 = sa.MetaData()
    sa.Table("things", v1, sa.Column("id", sa.Integer, primary_key=True))
    with engine.begin() as conn:
        assert migrate.upgrade(conn, v1, 1, {}, "s") is None
        conn.exec_driver_sql("INSERT INTO things (id) VALUES (7)")
    v2 = sa.MetaData()
    sa.Table(
        "things",
        v2,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("lease_until", sa.String),
        sa.Column("lane", sa.String, nullable=False, server_default="default"),
        sa.Index("ix_things_lane", "lane"),
    )
    sa.Table("destinations", v2, sa.Column("name", sa.String, primary_key=True))
    steps_run: list[int] = []
    with engine.begin() as conn:
        migrate.upgrade(conn, v2, 2, {2: lambda _c: steps_run.append(2)}, "s")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT id, lease_until, lane FROM things").all() == [
            (7, None, "default")
        ]
        assert sa.inspect(conn).has_table("destinations")
        assert "ix_things_lane" in {ix["name"] for ix in sa.inspect(conn).get_indexes("things")}
    assert steps_run == [2]


def _opening_process(db: str, barrier) -> None:  # runs in a child process
    barrier.wait(timeout=120)
    Store(db).close()


def test_a_postgres_store_of_an_older_shape_is_upgraded_in_place_once(
    request: pytest.FixtureRequest,
) -> None:
    """A store written before the claims (no lease columns, no destinations table), opened by
    three processes at once: the advisory lock lets one upgrade while the others wait, then find
    it done; the incidents and the queued notifications are kept and drain."""
    db = new_database(request)
    store = Store(db)
    record(store, [down("k")], T0)
    store.close()
    with raw_engine(db).begin() as raw:
        raw.exec_driver_sql(
            "ALTER TABLE outbox DROP COLUMN claimed_by, DROP COLUMN lease_until, DROP COLUMN errors"
        )
        raw.exec_driver_sql("DROP INDEX ix_outbox_lane")
        raw.exec_driver_sql("DROP TABLE destinations")
        raw.exec_driver_sql("UPDATE store_meta SET value = 'old' WHERE key = 'schema_fingerprint'")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    children = [context.Process(target=_opening_process, args=(db, barrier)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=300)
        assert child.exitcode == 0
    with raw_engine(db).connect() as raw:
        inspector = sa.inspect(raw)
        columns = {c["name"] for c in inspector.get_columns("outbox")}
        assert {"claimed_by", "lease_until", "errors"} <= columns
        assert "ix_outbox_lane" in {ix["name"] for ix in inspector.get_indexes("outbox")}
        assert inspector.has_table("destinations")
    upgraded = Store(db)
    assert upgraded.upgraded_from == SCHEMA_VERSION  # nothing left to do
    assert [i.key for i in upgraded.incidents()] == ["k"]
    assert len(upgraded.outbox(("queued",))) == 5
    claimed = upgraded.queue.claim_next("pagerduty", "me", T0, timedelta(minutes=1))
    assert claimed is not None and upgraded.queue.mark_sent(claimed.id, "me", 1, "ok")


def test_an_unreachable_postgres_is_one_line_naming_the_url(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://fleet@127.0.0.1:{port}/fleet"
    (tmp_path / "pg.password").write_text("CANARYpgPassw0rd")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state:\n  url: {url}\n  password: {{file: pg.password}}\nnotify: {{dry_run: true}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "fleet_alerting.surfaces.cli", "incidents", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
    )
    _one_line(result, f"state.url {url}", "cannot connect (connection refused)")
    assert "CANARY" not in result.stdout + result.stderr


def test_a_store_from_newer_code_is_refused(state_db: str) -> None:
    Store(state_db).close()
    with raw_engine(state_db).begin() as raw:
        raw.exec_driver_sql(  # as newer code that older code may not use records it
            "UPDATE store_meta SET value='99' WHERE key IN ('schema_version', 'compatible_from')"
        )
    where = "state.url " + state_db if "://" in state_db else state_db
    with pytest.raises(StoreError) as refused:
        Store(state_db)
    assert str(refused.value).startswith(f"{where}: written by a newer fleet-alerting")


# unusable store files -----------------------------------------------------------------------
def _incidents_cli(tmp_path: Path, store: Path, user: int | None = None):
    config = tmp_path / "config.yaml"
    config.write_text(f"state:\n  path: {store}\nnotify: {{dry_run: true}}\n")
    command = [sys.executable, "-m", "fleet_alerting.surfaces.cli", "incidents"]
    return subprocess.run(
        [*command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        user=user,
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
    )


def _one_line(result: subprocess.CompletedProcess, store: Path | str, *words: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{store}: "), lines
    for word in words:
        assert word in lines[0], lines


def test_a_directory_garbage_or_empty_file_is_one_line_naming_the_store(tmp_path: Path) -> None:
    directory = tmp_path / "dir.sqlite"
    directory.mkdir()
    _one_line(_incidents_cli(tmp_path, directory), directory, "is a directory")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, just some text " * 200)
    _one_line(_incidents_cli(tmp_path, garbage), garbage, "not a SQLite database", "backup")
    truncated = tmp_path / "truncated.sqlite"
    Store(truncated).close()
    truncated.write_bytes(b"")  # an existing store truncated: never silently started afresh
    _one_line(_incidents_cli(tmp_path, truncated), truncated, "empty (0 bytes)", "backup")
    assert truncated.stat().st_size == 0


def test_a_locked_store_is_one_line_naming_the_store(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    store = Store(db)
    record(store, [down("k")], T0)
    store.close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"state\.sqlite: locked by another process for more"):
            Store(db, busy_timeout=0.2).incidents()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _immutable(path: Path, on: bool) -> bool:
    flag = "+i" if on else "-i"
    chattr = shutil.which("chattr")
    return bool(chattr) and subprocess.run([chattr, flag, str(path)], check=False).returncode == 0


def test_a_read_only_store_is_one_line_naming_the_store(tmp_path: Path) -> None:
    """Root (as in CI) writes files whatever their mode, so the store is made immutable. It can
    still be read (`incidents`), but a run is told before it observes anything."""
    db = tmp_path / "ro" / "state.sqlite"
    store = Store(db)
    record(store, [down("k")], T0)
    store.close()
    if not _immutable(db, True):
        pytest.skip("chattr +i is not available on this file system")
    try:
        listed = _incidents_cli(tmp_path, db)
        assert listed.returncode == 0 and "k down" in listed.stdout
        with pytest.raises(StoreError) as raised:
            Store(db).check_writable()
        message = str(raised.value)
        assert message.startswith(f"{db}: cannot be opened for writing"), message
        assert "write access" in message and "\n" not in message
    finally:
        _immutable(db, False)


@pytest.mark.integration
def test_a_run_against_an_unusable_store_fails_in_one_line_without_a_traceback(
    prefect_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from prefect.exceptions import FailedRun

    from fleet_alerting.flows.watches import blackbox_probe

    store = tmp_path / "state.sqlite"
    store.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state: {{path: {store}}}\n"
        "blackbox: {targets: [{name: api, url: 'http://127.0.0.1:9/healthz'}]}\n"
        "notify: {dry_run: true}\n"
    )
    with caplog.at_level("INFO"), pytest.raises(FailedRun) as failed:
        asyncio.run(blackbox_probe(str(config)))
    assert str(failed.value).startswith(f"{store}: is a directory")
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def test_the_schema_is_whole_whatever_was_imported() -> None:
    """Opening a store from a process that imported only the store must see every table, or a
    CLI command and a flow would migrate one store back and forth (and fail on a read-only one)."""
    import pkgutil
    import subprocess
    import sys

    import fleet_alerting.store as store_package

    every = "import importlib\n" + "".join(
        f"importlib.import_module('fleet_alerting.store.{m.name}')\n"
        for m in pkgutil.iter_modules(store_package.__path__)
    )
    show = "from fleet_alerting.store.database import metadata; print(sorted(metadata.tables))"
    only_sqlite, everything = (
        subprocess.run(
            [sys.executable, "-c", code + show], capture_output=True, text=True, check=True
        ).stdout
        for code in ("", every)
    )
    assert only_sqlite == everything


def _open_files(path: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    return [str(fd) for fd in fds.iterdir() if os.path.realpath(fd).startswith(str(path))]


def test_a_store_used_in_a_with_block_is_closed_after_it(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    with Store(db) as store:
        store.set_value("cursor", 1)
        assert _open_files(db)  # the pooled connection holds the file
    assert _open_files(db) == []


@pytest.mark.parametrize("collation", ["C", "und-x-icu", "en-US-x-icu"])
def test_stored_timestamps_sort_as_times_under_any_collation(
    request: pytest.FixtureRequest, collation: str
) -> None:
    """Compared as text in the database: a whole second beside a fraction of it must not
    flip (ICU puts "." before "+")."""
    from fleet_alerting.store.outbox import ts

    second = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)
    moments = [second, second + timedelta(microseconds=500_000), second + timedelta(seconds=1)]
    moments += [second - timedelta(microseconds=1), second + timedelta(microseconds=1)]
    with raw_engine(new_database(request)).connect() as conn:
        for a in moments:
            for b in moments:
                query = f'SELECT CAST(:a AS text) COLLATE "{collation}" < CAST(:b AS text)'
                earlier = conn.execute(sa.text(query), {"a": ts(a), "b": ts(b)}).scalar_one()
                assert earlier == (a < b), (ts(a), ts(b), collation)
