"""The observation history the pipeline records for what-if, on SQLite and PostgreSQL: only
changes, run segments that extend while the interval holds, a period read back with each key's
state at its start, pruning past retention, and an older store upgraded in place."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from fleet_alerting.config.schema import Config
from fleet_alerting.core.history import Status, signal_from, signal_record
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import history
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.stores import raw_engine

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
CONFIG = Config()


def probe(name: str, firing: bool, summary: str = "") -> Signal:
    return Signal(
        key=f"blackbox:url=http://{name}/healthz",
        source="blackbox",
        firing=firing,
        severity=Severity.warning,
        summary=summary or f"{name} {'down' if firing else 'up'}",
        labels={"url": f"http://{name}/healthz"},
    )


def run(store: Store, signals: list[Signal], at: datetime) -> None:
    evaluate_and_record(store, signals, CONFIG.policy, at, rules=CONFIG.storm_rules())


def _changes(found: history.History) -> list[tuple[datetime, str, str]]:
    return [
        (
            c.at,
            c.key.split("//")[1].split("/")[0],
            Status.unobserved if c.signal is None else "failing" if c.signal.firing else "ok",
        )
        for c in found.changes
    ]


def statuses(found: history.History) -> list[tuple[int, str, str]]:
    return [((at - T0) // timedelta(minutes=1), name, st) for at, name, st in _changes(found)]


def test_only_changes_are_kept_and_runs_are_segments(state_db: str) -> None:
    with Store(state_db) as store:
        for minute in range(10):
            a = probe("a", 3 <= minute < 6)
            b = probe("b", False, summary="b up" if minute < 5 else "b up again")  # re-worded
            run(store, [a] if minute == 8 else [a, b], T0 + timedelta(minutes=minute))
        run(store, [probe("a", False)], T0 + timedelta(minutes=15))  # the interval broke
        found = history.read(store, T0, T0 + timedelta(hours=1))
    assert statuses(found) == [
        (0, "a", "ok"),
        (0, "b", "ok"),
        (3, "a", "failing"),
        (5, "b", "ok"),  # another fingerprint: what the engine compares changed
        (6, "a", "ok"),
        (8, "b", Status.unobserved),
        (9, "b", "ok"),
        (15, "b", Status.unobserved),
    ]
    assert [(r.stream, r.first - T0, r.every, r.count) for r in found.runs] == [
        ("blackbox", timedelta(0), timedelta(minutes=1), 10),
        ("blackbox", timedelta(minutes=15), timedelta(0), 1),
    ]
    failing = found.changes[2].signal
    assert failing is not None and failing.labels == {"url": "http://a/healthz"}
    assert failing.severity == Severity.warning and failing.fingerprint


def test_a_period_starts_from_each_keys_last_change_and_old_history_is_pruned(
    state_db: str,
) -> None:
    old = T0 - timedelta(days=120)
    with Store(state_db) as store:
        run(store, [probe("a", True), probe("b", False)], old)
        run(store, [probe("a", True), probe("b", True)], old + timedelta(days=5))
        run(store, [probe("a", False), probe("b", True)], T0)
        found = history.read(store, T0 - timedelta(days=90), T0 + timedelta(hours=1))
        assert statuses(found)[-1] == (0, "a", "ok")
        # the state when the period begins: a failing since 120 days, b since 115
        assert [(name, at - T0) for at, name, _ in _changes(found)[:2]] == [
            ("a", -timedelta(days=120)),
            ("b", -timedelta(days=115)),
        ]
        # past retention: every change but each key's latest (b has failed steadily for 115
        # days: a later period must still know it)
        pruned = history.prune(store, T0, timedelta(days=100))
        assert pruned["history changes"] == 2 and pruned["history runs"] == 1
        later = history.read(store, T0 - timedelta(days=90), T0 + timedelta(hours=1))
        assert statuses(later) == [(-165600, "b", "failing"), (0, "a", "ok")]
        assert [(name, at - T0) for at, name, _ in _changes(later)] == [
            ("b", -timedelta(days=115)),
            ("a", timedelta(0)),
        ]


def history_keys(state_db: str) -> list[str]:
    with raw_engine(state_db).connect() as raw:
        return raw.execute(sa.text("SELECT key FROM history_keys ORDER BY key")).scalars().all()


def test_keys_no_longer_observed_for_longer_than_the_retention_are_forgotten(
    state_db: str,
) -> None:
    """A storm's series (or a retired device) seen once stays in the history as "no longer
    observed" forever unless that too is pruned: a period later replays it as never seen."""
    old = T0 - timedelta(days=120)
    storm = [probe(f"storm-{n}", True) for n in range(5)]
    with Store(state_db) as store:
        run(store, [probe("a", True), *storm], old)
        run(store, [probe("a", True)], old + timedelta(minutes=1))  # the storm's series gone
        run(store, [probe("a", True), probe("b", False)], T0 - timedelta(days=1))
        run(store, [probe("a", True)], T0)  # b gone yesterday: within the retention
        before = history.read(store, T0 - timedelta(days=90), T0 + timedelta(hours=1))
        history.prune(store, T0, timedelta(days=100), batch=3)  # a batch per call
        assert len(history_keys(state_db)) == 4
        history.prune(store, T0, timedelta(days=100))
        assert history_keys(state_db) == [probe(n, True).key for n in ("a", "b")]
        assert history.prune(store, T0, timedelta(days=100))["history keys no longer observed"] == 0
        after = history.read(store, T0 - timedelta(days=90), T0 + timedelta(hours=1))
        # a storm series that comes back is a change again
        run(store, [probe("a", True), probe("storm-0", True)], T0 + timedelta(minutes=1))
        back = history.read(store, T0, T0 + timedelta(hours=1))
    gone = {("storm-" in c.key) for c in before.changes if c.at < T0 - timedelta(days=90)}
    assert gone == {True, False}  # the storm's "no longer observed" was there before
    assert all("storm-" not in c.key for c in after.changes)
    assert statuses(after) == [
        (-172800, "a", "failing"),
        (-1440, "b", "ok"),
        (0, "b", "unobserved"),
    ]
    assert statuses(back)[-1] == (1, "storm-0", "failing")


def test_a_store_from_before_the_history_gets_its_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state.sqlite"
    Store(path).close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table in ("history_changes", "history_keys", "history_runs"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("UPDATE store_meta SET value = '3' WHERE key = 'schema_version'")
    engine.dispose()
    with Store(path) as store:
        assert store.upgraded_from == 3
        run(store, [probe("a", True)], T0)
        assert statuses(history.read(store, T0, T0 + timedelta(minutes=1))) == [(0, "a", "failing")]


def test_a_history_that_cannot_be_written_keeps_the_evaluation(
    state_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(state_db) as store:
        run(store, [probe("a", True)], T0)
        with raw_engine(state_db).begin() as conn:  # the history broken underneath the store
            conn.execute(sa.text("DROP TABLE history_keys"))
        with caplog.at_level(logging.WARNING, logger="fleet_alerting.store"):
            run(store, [probe("a", True)], T0 + timedelta(minutes=1))
        incident = store.incident("blackbox:url=http://a/healthz")
        queued = store.outbox(("queued",))
    assert incident is not None and incident.state == "firing"  # opened at the second failure
    assert [q.notification.kind for q in queued] == ["opened"]
    (warning,) = [r for r in caplog.records if r.name == "fleet_alerting.store"]
    assert "observations were not kept for what-if" in warning.getMessage()
    assert "history_keys" in warning.getMessage()


@pytest.mark.parametrize(
    "starts, segments",
    [
        ([0, 60.3, 120.1, 180.9, 240.2, 300.7], [(60, 6)]),  # late by milliseconds: one segment
        ([0, 10.4, 20.1, 30.3, 40.9], [(10, 5)]),  # 10 s runs: within a quarter of the interval
        ([0, 60, 120, 185, 245], [(60, 3), (60, 2)]),  # 5 s late: beyond 2 s, a new segment
        ([0, 60, 120, 240, 300], [(60, 3), (60, 2)]),  # a run missed
        ([0, 10.5, 21, 31.5, 42], [(10.5, 5)]),  # exactly regular: exactly its interval
    ],
    ids=["jittered", "jittered-10s", "late", "missed", "regular-10.5s"],
)
def test_runs_a_little_off_their_beat_extend_the_segment(
    starts: list[float], segments: list[tuple[float, int]], state_db: str
) -> None:
    with Store(state_db) as store:
        for second in starts:
            run(store, [probe("a", False)], T0 + timedelta(seconds=second))
        found = history.read(store, T0, T0 + timedelta(hours=1))
    assert [(r.every.total_seconds(), r.count) for r in found.runs] == segments
    replayed = [r.first + r.every * n for r in found.runs for n in range(r.count)]
    for second, beat in zip(starts, replayed, strict=True):  # each run near its real start
        assert abs(beat - (T0 + timedelta(seconds=second))) <= timedelta(seconds=2)


ODD_LABELS = {
    "non-ASCII": {"host": "pi-é-∆", "zone": "日本"},
    "quote, backslash, newline": {"path": 'C:\\logs\\"x"', "note": "two\nlines"},
    "NUL and control characters": {"value": "a\x00b\x1fc"},
    "a lone surrogate (orjson refuses it)": {"host": "pi-\ud800"},
}


@pytest.mark.parametrize("labels", ODD_LABELS.values(), ids=ODD_LABELS.keys())
def test_a_change_reads_back_as_the_signal_it_recorded(
    labels: dict[str, str], state_db: str
) -> None:
    signal = Signal(
        key="alertmanager/HostDown:host=pi-1",
        source="alertmanager",
        firing=True,
        severity=Severity.critical,
        summary=f"{labels} — down",
        target="pi-1",
        since=T0 - timedelta(minutes=3),
        labels=labels,
    )
    with Store(state_db) as store:
        with store.transaction() as unit:
            assert history.record(unit.conn, store.dialect, [signal], None, T0) == 1
        (change,) = history.read(store, T0, T0 + timedelta(hours=1)).changes
    expected = signal_from(signal.key, json.loads(json.dumps(signal_record(signal))))
    assert change.signal == expected
    assert change.signal is not None and change.signal.labels == labels
