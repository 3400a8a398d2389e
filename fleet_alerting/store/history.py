"""What each run observed, kept for replay (`fleet-alerting what-if`): only changes.

- `history_changes`: one row when a key's observation changes — failing ↔ ok, another severity
  or fingerprint, or no longer observed by its watch's runs — with the compact signal
  (core.history.signal_record).
- `history_keys`: each key's latest observation (status and signature), so a run compares with
  one indexed read of its own watch's keys instead of the changes.
- `history_runs`: when each watch ran, as segments of regular runs (first, every, count): a run
  that starts within a tolerance of its segment's next beat (core.history.joined: a quarter of
  the interval, at most 2 s) extends it, so runs that jitter by milliseconds (real ones) keep
  one segment; replay puts each run, and the changes it observed, on the beat.

Written in the evaluation's own transaction (Store.evaluate `also`), so history and incidents
never disagree after a crash, inside a savepoint: a history write that fails is a logged warning
and the run's incidents and notifications are kept (what-if misses that run's observations).
Pruned past `state.retention.history` (default 100 days): changes but each key's latest, run
segments, and keys whose latest change (older than that) says they are no longer observed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from fleet_alerting.config.secrets import redact
from fleet_alerting.core.history import (
    Change,
    History,
    RunSegment,
    Status,
    joined,
    on_beat,
    signal_from,
    signal_record,
    signature,
    status_of,
    stream_of,
)
from fleet_alerting.core.signals import Signal
from fleet_alerting.store import backend
from fleet_alerting.store.tables import changes_table, delete_at_most, keys_table, runs_table, ts

if TYPE_CHECKING:
    from fleet_alerting.store.database import Store

UNOBSERVED = Status.unobserved.value
_CHUNK = 500  # keys per statement (bound parameters: SQLite allows 32,766)
log = logging.getLogger("fleet_alerting.store")


def record(
    conn: sa.Connection,
    dialect: str,
    signals: Sequence[Signal],
    unseen_sources: Mapping[str, str] | None,
    now: datetime,
) -> int:
    """Remember one run inside the caller's transaction, in a savepoint of its own; returns how
    many changes it wrote (0, with a warning logged, when that failed and was rolled back)."""
    unseen = dict(unseen_sources or {})
    stream = stream_of(signals, unseen)
    if not stream:
        return 0  # a run that observed nothing changes nothing to replay
    try:
        with conn.begin_nested():
            _ran(conn, stream, unseen, now)
            return _changed(conn, dialect, stream, signals, now)
    except Exception as exc:  # anything: the evaluation it rides on must not be lost to it
        why = redact(f"{type(exc).__name__}: {exc}").splitlines()[0]
        log.warning("this run's observations were not kept for what-if (history): %s", why)
        return 0


def _changed(
    conn: sa.Connection, dialect: str, stream: str, signals: Sequence[Signal], now: datetime
) -> int:
    """Write the changes of this run's observations of `stream`; how many."""
    # plain SQL, no type processors: this is every run's read of its watch's keys
    read = "SELECT key, signature FROM history_keys WHERE stream = ?"
    if dialect == "postgresql":
        read = read.replace("?", "%s")
    known: dict[str, str] = dict(conn.exec_driver_sql(read, (stream,)).all())
    latest = {s.key: s for s in signals}
    changes: list[tuple[str, str, str, str, str | None]] = []
    marks: list[tuple[str, str, str]] = []
    at = ts(now)
    for key, signal in latest.items():
        mark = signature(signal)
        if known.get(key) == mark:
            continue
        changes.append((at, stream, key, status_of(signal).value, _record_json(signal)))
        marks.append((key, stream, mark))
    for key, mark in known.items():
        if key not in latest and mark != UNOBSERVED:
            changes.append((at, stream, key, UNOBSERVED, None))
            marks.append((key, stream, UNOBSERVED))
    if changes:
        backend.driver(_insert_change, CHANGE_COLUMNS, conn.dialect).execute(conn, changes)
        backend.driver(_upsert_key, KEY_COLUMNS, conn.dialect).execute(conn, marks)
    return len(changes)


# a storm's opening records thousands of changes: their rows go to the driver as they are
CHANGE_COLUMNS = ("at", "stream", "key", "status", "signal")
KEY_COLUMNS = ("key", "stream", "signature")


def _insert_change(_dialect: str) -> sa.Insert:
    return sa.insert(changes_table)


def _upsert_key(dialect: str) -> Any:
    upsert = backend.insert(keys_table, dialect)
    return upsert.on_conflict_do_update(
        index_elements=["key"],
        set_={"stream": upsert.excluded.stream, "signature": upsert.excluded.signature},
    )


def _record_json(signal: Signal) -> str:
    """The compact signal's JSON (`core.history.signal_record`): orjson, ~5x the standard
    module, or the standard module for what orjson refuses (a lone surrogate in a label). Of a
    deferred signal's texts it reads only the summary: a new incident's, kept by the store's
    write that rendered them (`Signal.with_texts`), is not rendered again."""
    record = signal_record(signal)
    try:
        return orjson.dumps(record).decode()
    except orjson.JSONEncodeError:
        return json.dumps(record, separators=(",", ":"))


def _ran(conn: sa.Connection, stream: str, unseen: dict[str, str], now: datetime) -> None:
    """Extend the stream's latest segment when this run keeps its beat, else start one."""
    row = runs_table.c
    encoded = json.dumps(unseen, sort_keys=True)
    latest = conn.execute(
        sa.select(row.id, row.first_at, row.every_us, row.runs, row.vanished)
        .where(row.stream == stream)
        .order_by(row.id.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.vanished == encoded:
        first = datetime.fromisoformat(latest.first_at)
        every = joined(first, timedelta(microseconds=latest.every_us), latest.runs, now)
        if every is not None:
            conn.execute(
                sa.update(runs_table)
                .where(row.id == latest.id)
                .values(last_at=ts(now), every_us=_micros(every), runs=latest.runs + 1)
            )
            return
    conn.execute(
        sa.insert(runs_table).values(
            stream=stream, first_at=ts(now), last_at=ts(now), every_us=0, runs=1, vanished=encoded
        )
    )


def _micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def load(conn: sa.Connection, start: datetime, end: datetime) -> History:
    """The period's runs and changes, with each key's last change before `start` (its state when
    the period begins) first."""
    c, r = changes_table.c, runs_table.c
    last_before = (
        sa.select(sa.func.max(c.id)).where(c.at < ts(start)).group_by(c.key).scalar_subquery()
    )
    rows = conn.execute(
        sa.select(c.at, c.stream, c.key, c.signal)
        .where(sa.or_(c.id.in_(last_before), sa.and_(c.at >= ts(start), c.at <= ts(end))))
        .order_by(c.id)
    ).all()
    changes = [
        Change(
            datetime.fromisoformat(at),
            stream,
            key,
            None if signal is None else signal_from(key, json.loads(signal)),
        )
        for at, stream, key, signal in rows
    ]
    segments = conn.execute(
        sa.select(r.stream, r.first_at, r.every_us, r.runs, r.vanished)
        .where(r.last_at >= ts(start), r.first_at <= ts(end))
        .order_by(r.id)
    ).all()
    runs = [
        RunSegment(
            stream,
            datetime.fromisoformat(first),
            timedelta(microseconds=every),
            count,
            json.loads(unseen),
        )
        for stream, first, every, count, unseen in segments
    ]
    return History(start, end, on_beat(changes, runs), runs)


def prune(store: Store, now: datetime, kept: timedelta, batch: int = 5000) -> dict[str, int]:
    """Delete changes and run segments older than `kept`, at most `batch` rows of each per call
    (as Store.prune: each run takes its share)."""
    cutoff = ts(now - kept)
    c = changes_table.c
    # a key's latest change says its state when any later period begins: it stays while the key
    # keeps that state, however long ago it came — unless that state is "no longer observed",
    # which a period replays as a key never seen: then the key goes too (a storm's series, a
    # device retired), or every key ever observed would stay
    latest = sa.select(sa.func.max(c.id)).group_by(c.key)
    gone = sa.and_(c.at < cutoff, c.status == UNOBSERVED, c.id.in_(latest))
    kinds = {
        "history changes": (changes_table, sa.and_(c.at < cutoff, c.id.not_in(latest))),
        "history runs": (runs_table, runs_table.c.last_at < cutoff),
    }
    deleted = {}
    with store.engine.begin() as conn:
        for kind, (table, old) in kinds.items():
            deleted[kind] = delete_at_most(conn, table, old, batch)
        keys = conn.execute(sa.select(c.key).where(gone).limit(batch)).scalars().all()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            conn.execute(sa.delete(changes_table).where(c.key.in_(chunk)))
            conn.execute(sa.delete(keys_table).where(keys_table.c.key.in_(chunk)))
        deleted["history keys no longer observed"] = len(keys)
    return deleted


def read(store: Store, start: datetime, end: datetime) -> History:
    """`load` in a read transaction of `store`."""
    with store.read() as conn:
        return load(conn, start, end)
