"""Incidents in the store, read and written in the caller's transaction: a record (JSON) per key,
its brief and its Slack thread in columns, found by index, and its signal (JSON) in a row of its
own: a storm's opening rewrites every record and keeps most signals as they are. A signal whose
texts are rendered from a recipe (core.recipes: an Alertmanager alert's) is kept as that recipe,
and its texts rendered when read.

A run reads the open incidents' briefs (`records`): the engine compares a steady failure on its
brief and asks for a full record only for the incidents it changes. A Slack thread lives in two
columns of its incident, the truth for it. Resolved incidents past their retention are pruned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from json.decoder import scanstring
from operator import attrgetter, is_
from typing import Any, NamedTuple, cast

import orjson
import sqlalchemy as sa
from pydantic import TypeAdapter

from fleet_alerting.core import recipes
from fleet_alerting.core.incidents import Brief, Incident, Records, State, evolve, full_check
from fleet_alerting.core.signals import Signal, fingerprint_of
from fleet_alerting.store import backend
from fleet_alerting.store.tables import (
    BRIEF_COLUMNS,
    RESOLVED_ROW,
    incidents_table,
    texts_table,
    ts,
)

# a storm writes tens of thousands of rows with a handful of distinct times (now, its onsets)
_ts = lru_cache(maxsize=256)(ts)

_incident_json = TypeAdapter(Incident)
_signal_json = TypeAdapter(Signal)
_SIGNAL = {"signal"}

OPEN = [State.pending.value, State.firing.value, State.paged.value]


def _upsert_incident(dialect: str) -> Any:
    """Insert or replace incident rows (ROW_COLUMNS; `data` is the record without its signal)."""
    insert = backend.insert(incidents_table, dialect)
    return insert.on_conflict_do_update(
        index_elements=["key"], set_=_replaced(insert.excluded.__getitem__)
    )


def _update_incident(_dialect: str) -> Any:
    """Replace the rows of incidents stored (ROW_COLUMNS): cheaper than the upsert (SQLite)."""
    row = incidents_table.c
    return (
        sa.update(incidents_table)
        .where(row.key == sa.bindparam(_new("key")))
        .values(_replaced(lambda c: sa.bindparam(_new(c), type_=row[c].type)))
    )


def _new(column: str) -> str:
    """The parameter of a column's new value (a column's own name is SQLAlchemy's, in SET)."""
    return f"new_{column}"


def _replaced(new: Callable[[str], Any]) -> dict[str, Any]:
    """The columns of an incident's row replaced by the `new` values of ROW_COLUMNS but its key.
    A thread set (by the Slack notifier) since this incident was read is kept, for the same
    episode."""
    row = incidents_table.c
    keep_thread = sa.and_(new("thread_ts").is_(None), row.episode == new("episode"))
    return {
        **{c: new(c) for c in ROW_COLUMNS if c not in ("key", *_THREAD)},
        **{c: sa.case((keep_thread, row[c]), else_=new(c)) for c in _THREAD},
    }


_THREAD = ("thread_channel", "thread_ts")


def _upsert_texts(dialect: str) -> Any:
    """Insert or replace signals (TEXT_COLUMNS)."""
    insert = backend.insert(texts_table, dialect)
    return insert.on_conflict_do_update(
        index_elements=["key"], set_={"signal": insert.excluded.signal}
    )


INCIDENT_COLUMNS = (
    incidents_table.c.data,
    incidents_table.c.thread_channel,
    incidents_table.c.thread_ts,
    texts_table.c.signal,
)
WITH_TEXTS = incidents_table.outerjoin(texts_table, texts_table.c.key == incidents_table.c.key)


def select_incidents() -> sa.Select[Any]:
    """INCIDENT_COLUMNS of the incidents (each with its signal, if kept apart)."""
    return sa.select(*INCIDENT_COLUMNS).select_from(WITH_TEXTS)


# reads -------------------------------------------------------------------------------------------
def unresolved(conn: sa.Connection, source: str | None) -> dict[str, Incident]:
    query = select_incidents().where(incidents_table.c.state.in_(OPEN))
    if source is not None:
        query = query.where(incidents_table.c.source == source)
    loaded = (row_incident(row) for row in conn.execute(query))
    return {incident.key: incident for incident in loaded}


def open_keys(conn: sa.Connection, source: str) -> set[str]:
    """The keys of a source's open incidents (no record is parsed)."""
    row = incidents_table.c
    query = sa.select(row.key).where(row.state.in_(OPEN), row.source == source)
    return set(conn.execute(query).scalars())


# incidents written by one run share their time: then by key, whatever the rows' places
NEWEST_FIRST = (incidents_table.c.updated_at.desc(), incidents_table.c.key)


def listing(conn: sa.Connection, include_resolved: bool) -> list[Incident]:
    query = select_incidents().order_by(*NEWEST_FIRST)
    if not include_resolved:
        query = query.where(incidents_table.c.state.in_(OPEN))
    return [row_incident(row) for row in conn.execute(query)]


def states(conn: sa.Connection) -> dict[str, str]:
    """Every stored incident's key and state, newest first (no record is parsed)."""
    row = incidents_table.c
    query = sa.select(row.key, row.state).order_by(*NEWEST_FIRST)
    return dict(conn.execute(query).tuples().all())


def load(conn: sa.Connection, key: str) -> Incident | None:
    """The incident `key` as stored, read in the caller's transaction."""
    query = select_incidents().where(incidents_table.c.key == key)
    row = conn.execute(query).first()
    return None if row is None else row_incident(row)


# the engine's view of the open incidents: briefs, records on demand ------------------------------
def records(conn: sa.Connection, briefs_sql: str) -> Records:
    row = incidents_table.c
    # a storm's briefs repeat a few states, sources, times and groups: each held once (the
    # driver makes a new object of each value of each row)
    same = cast(Callable[[str, str], str], {}.setdefault)
    moment = _Moments().__getitem__
    # plain SQL, no type processors: a fleet-wide failure is thousands of briefs per run,
    # and converting them cost more than reading them (bench/README.md)
    rows = conn.exec_driver_sql(briefs_sql).all()
    briefs = {
        # Brief's own __new__ is a Python call that makes the same tuple
        key: _tuple_new(
            Brief,
            (
                same(state, state),
                same(source, source),
                fingerprint,
                failures or 0,
                successes or 0,
                moment(onset) or _EPOCH,
                moment(notified),
                acted is None or acted != 0,  # unknown (written before schema 2): full check
                inhibited_by,
                group and same(group, group),
            ),
        )
        for (
            key,
            state,
            source,
            fingerprint,
            failures,
            successes,
            onset,
            notified,
            acted,
            inhibited_by,
            group,
        ) in rows
    }

    keyed = sa.select(row.key, *INCIDENT_COLUMNS).select_from(WITH_TEXTS)

    def load(keys: Collection[str]) -> dict[str, Incident]:
        found: dict[str, Incident] = {}
        listed = list(keys)
        for start in range(0, len(listed), _CHUNK):
            chunk = listed[start : start + _CHUNK]
            query = keyed.where(row.key.in_(chunk))
            for key, *columns in conn.execute(query):
                found[key] = _under_its_row_key(key, row_incident(columns))
        return found

    return Records(briefs, load)


_EPOCH = datetime.fromtimestamp(0, UTC)
_tuple_new = tuple.__new__


class _Moments(dict[str | None, datetime | None]):
    """Stored times read once each (a storm's briefs share a few): None for none."""

    def __missing__(self, text: str | None) -> datetime | None:
        found = self[text] = datetime.fromisoformat(text) if text else None
        return found


def _under_its_row_key(key: str, incident: Incident) -> Incident:
    """A row keyed with a NUL (stored before keys were made as the store keeps them) holds a
    record whose key has U+FFFD: read under its row's key, its signal's too (a source says it is
    gone with that signal), so the engine closes it there."""
    if incident.key == key:
        return incident
    return replace(incident, key=key, signal=replace(incident.signal, key=key))


def briefs_sql(dialect: sa.Dialect) -> str:
    """The open incidents' briefs, as SQL for this dialect (no parameters: the states are
    constants). A record whose signal has no row of its own — written by a process of an older
    schema still running after the upgrade — shows no fingerprint: the engine reads it whole,
    and its write gives the signal its row."""
    row = incidents_table.c
    apart = sa.case((texts_table.c.key.is_(None), sa.null()), else_=row.fingerprint)
    brief = [apart if c == "fingerprint" else row[c] for c in BRIEF_COLUMNS]
    query = sa.select(row.key, row.state, row.source, *brief).select_from(WITH_TEXTS)
    query = query.where(row.state.in_(OPEN))
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


_CHUNK = 500  # keys per `IN (...)`: below every backend's limit of bound parameters


# writes ------------------------------------------------------------------------------------------
def write(
    conn: sa.Connection,
    incidents: Sequence[Incident],
    now: datetime,
    stored: Records | None = None,
) -> None:
    """Insert or replace `incidents`, in the caller's transaction. One executemany per
    `_WRITE_CHUNK` rows: a fleet-wide failure changes a thousand incidents per run, and building a
    statement per row cost ~0.5 ms each (bench/README.md); a storm's opening run changes tens of
    thousands, whose JSON is not held all at once. The rows go to the driver as they are
    (`backend.Driver`): SQLAlchemy's processing of each row's parameters cost about a fifth of
    the write. Members alike share their record's JSON (`_Rows`).

    A record is stored without its signal, which has a row of its own (texts_table). `stored`:
    the records as read in this transaction. An incident whose deferred signal has the
    fingerprint its row holds keeps the stored signal (the same texts: `Signal.deferred`), so a
    storm's opening run neither renders nor writes again the texts written when it began."""
    upsert = backend.driver(_upsert_incident, ROW_COLUMNS, conn.dialect)
    update = backend.driver(_update_incident, UPDATE_PARAMETERS, conn.dialect)
    texts = backend.driver(_upsert_texts, TEXT_COLUMNS, conn.dialect)
    brief_of = _no_brief if stored is None else stored.brief
    for start in range(0, len(incidents), _WRITE_CHUNK):
        rows = _Rows(now)
        signals: list[Row] = []
        for incident in incidents[start : start + _WRITE_CHUNK]:
            brief = brief_of(incident.key)
            if not _keeps_texts(incident.signal, brief):
                signals.append((incident.key, _texts_row(incident.signal, incident.key)))
            rows.add(incident, brief is not None)
        for statement, chunk in ((upsert, rows.rows), (update, rows.stored)):
            if chunk:
                statement.execute(conn, chunk)
        if signals:
            texts.execute(conn, signals)


_WRITE_CHUNK = 1000  # rows per executemany: a bounded share of the records' JSON in memory

ROW_COLUMNS = (
    "key",
    "source",
    "state",
    "updated_at",
    "data",
    "episode",
    "resolved_at",
    "thread_channel",
    "thread_ts",
    *BRIEF_COLUMNS,
)
UPDATE_PARAMETERS = tuple(map(_new, ROW_COLUMNS))
TEXT_COLUMNS = ("key", "signal")
Row = tuple[Any, ...]  # a row's values of ROW_COLUMNS or TEXT_COLUMNS


def _texts_row(signal: Signal, key: str) -> str:
    """What the texts row keeps of a signal: its recipe when its texts are rendered from one
    (schema 10: neither rendered nor written at the opening, `row_incident` renders them when
    read), else its texts — rendered into a copy (`with_texts`) that goes with the chunk: the
    incident's row reads the signal's fingerprint alone."""
    stored = recipes.stored_form(signal)
    if stored is not None:
        data = orjson.dumps(stored)
        # a NUL would be stored as U+FFFD and its links rendered otherwise than sent (%00):
        # such a signal's texts are stored rendered
        if b"\\u0000" not in data:
            return data.decode()
    return _texts_json(signal.with_texts(), key)


_RECIPE_FIRST = '{"recipe":'


def _texts_json(signal: Signal, key: str) -> str:
    """The signal's JSON for its texts row, without its key when that is the row's own (schema
    9: ~50 bytes of each row, whose pages a storm's opening writes; `record_json` puts it back).
    A signal keyed otherwise is stored whole."""
    data = _json(_signal_json.dump_json(signal))
    head = f"{_KEY_FIRST}{_quoted(key)},"
    return "{" + data[len(head) :] if data.startswith(head) else data


def _no_brief(_key: str) -> Brief | None:
    return None


def _keeps_texts(signal: Signal, brief: Brief | None) -> bool:
    """The stored row of the signal's texts holds these texts (`brief`: the stored one's)."""
    return (
        brief is not None
        and signal.texts_in_fingerprint
        and brief.fingerprint == signal.fingerprint
    )


def _row(incident: Incident, now: datetime) -> Row:
    return (
        incident.key,
        incident.source,
        incident.state.value,
        _ts(now),
        _json(_incident_json.dump_json(incident, exclude=_SIGNAL)),
        incident.episode,
        _ts(incident.resolved_at) if incident.resolved_at else None,
        incident.thread_channel,
        incident.thread_ts,
        *_brief(incident),
    )


# every field of a record but the two a storm's members do not share
_SHARED = [f.name for f in fields(Incident) if f.name not in ("key", "signal")]
_shared = attrgetter(*_SHARED)
_DATA, _FINGERPRINT = ROW_COLUMNS.index("data"), ROW_COLUMNS.index("fingerprint")
_key_json = TypeAdapter(str).dump_json
_KEY_FIRST = '{"key":'


class _Rows:
    """The rows of one chunk of incidents, each record's JSON made once per shape. The engine
    decides a storm's members alike, as the same objects: their records share every value but
    the key (the record's first field) and the signal (not in it), so a member's row is its
    shape's with its own key and fingerprint — the same row, byte for byte, as `_row` makes.
    A shape is the identity of those values, held here so that no identity is reused while the
    chunk is written."""

    def __init__(self, now: datetime):
        self.now = now
        self.rows: list[Row] = []  # of incidents that may be new
        self.stored: list[Row] = []  # of incidents whose rows were read in this transaction
        self.made = 0  # records serialized whole
        self._shapes: dict[tuple[int, ...], _Shape | None] = {}
        self._last: _Shape | None = None

    def add(self, incident: Incident, stored: bool = False) -> None:
        (self.stored if stored else self.rows).append(self._row(incident))

    def _row(self, incident: Incident) -> Row:
        values = _shared(incident)
        last = self._last
        if last is not None and all(map(is_, values, last.values)):
            alike: _Shape | None = last  # the previous incident's shape (a storm's run of members)
        else:
            shape = tuple(map(id, values))
            alike = self._shapes.get(shape, _NEW)
            if alike is _NEW:
                return self._first(incident, values, shape)
            self._last = alike
        if alike is None:  # its JSON does not begin with its key: made whole
            return self._whole(incident)
        key = incident.key
        data = "".join((_KEY_FIRST, _quoted(key), alike.rest))
        fingerprint = fingerprint_of(incident.signal)
        return (key, *alike.head, data, *alike.middle, fingerprint, *alike.tail)

    def _whole(self, incident: Incident) -> Row:
        self.made += 1
        return _row(incident, self.now)

    def _first(self, incident: Incident, values: tuple[Any, ...], shape: tuple[int, ...]) -> Row:
        row = self._whole(incident)
        key_first = _KEY_FIRST + _quoted(incident.key)
        data = row[_DATA]
        self._shapes[shape] = (
            _Shape(
                values,
                row[1:_DATA],
                data[len(key_first) :],
                row[_DATA + 1 : _FINGERPRINT],
                row[_FINGERPRINT + 1 :],
            )
            if data.startswith(key_first)
            else None
        )
        return row


def _quoted(key: str) -> str:
    """`key` as a JSON string, as the record's serializer spells it: only `"`, `\\` and control
    characters are escaped, so a key of printable ASCII without them is itself in quotes."""
    if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key:
        return f'"{key}"'
    return _json(_key_json(key))


_NEW: Any = object()  # a shape not seen yet


class _Shape(NamedTuple):
    values: tuple[Any, ...]  # held: their identities are the shape
    head: Row  # the row's values before `data`
    rest: str  # the record's JSON after its key
    middle: Row  # between `data` and the fingerprint
    tail: Row  # after the fingerprint


def _json(data: bytes) -> str:
    return without_nul(data).decode()


def _brief(incident: Incident) -> Row:
    """The values of BRIEF_COLUMNS (`Brief.of`)."""
    notified = incident.last_notified_at
    return (
        fingerprint_of(incident.signal),
        incident.consecutive_failures,
        incident.consecutive_successes,
        _ts(incident.onset),
        _ts(notified) if notified else None,
        full_check(incident),
        incident.inhibited_by,
        incident.group,
    )


def brief_row(incident: Incident) -> dict[str, Any]:
    return dict(zip(BRIEF_COLUMNS, _brief(incident), strict=True))


# `\u0000` not itself escaped (an even run of backslashes before it, or none)
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def without_nul(data: bytes) -> bytes:
    """A record's JSON with each NUL character (from a label or annotation) stored as U+FFFD:
    PostgreSQL cannot read `\\u0000` in JSON, and the board and the store read records there."""
    return _NUL.sub(rb"\1\\ufffd", data) if b"\\u0000" in data else data


def set_thread(
    conn: sa.Connection, key: str, onset: datetime, channel: str, ts: str, now: datetime
) -> bool:
    """Remember the Slack thread of the incident `key` that began at `onset`: two columns of
    its row, written in one statement so a concurrent evaluation is not overwritten. False if
    that incident is no longer the stored one."""
    row = incidents_table.c
    incident = load(conn, key)
    if incident is None or incident.onset != onset:
        return False
    conn.execute(
        sa.update(incidents_table)
        .where(row.key == key)
        .values(thread_channel=channel, thread_ts=ts, updated_at=_ts(now))
    )
    return True


def prune(conn: sa.Connection, now: datetime, kept: timedelta, batch: int) -> int:
    """Delete at most `batch` incidents resolved longer than `kept` ago (by index), with their
    signals."""
    row = incidents_table.c
    old = sa.and_(sa.text(RESOLVED_ROW), row.resolved_at < _ts(now - kept))
    keys = conn.execute(sa.select(row.key).where(old).limit(batch)).scalars().all()
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        conn.execute(sa.delete(texts_table).where(texts_table.c.key.in_(chunk)))
        conn.execute(sa.delete(incidents_table).where(row.key.in_(chunk)))
    return len(keys)


def split_texts(conn: sa.Connection) -> None:
    """Move the signals of the open incidents out of their records into texts_table (the
    records of resolved ones keep theirs: never kept by `write`, read alike)."""
    row = incidents_table.c
    query = sa.select(row.key).select_from(WITH_TEXTS)
    query = query.where(row.state.in_(OPEN), texts_table.c.key.is_(None))
    keys = conn.execute(query).scalars().all()
    statement = sa.update(incidents_table).where(row.key == sa.bindparam("k"))
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        found = [
            row_incident(r) for r in conn.execute(select_incidents().where(row.key.in_(chunk)))
        ]
        if not found:
            continue
        conn.execute(
            statement.values(data=sa.bindparam("d")),
            [{"k": i.key, "d": _json(_incident_json.dump_json(i, exclude=_SIGNAL))} for i in found],
        )
        conn.execute(
            sa.insert(texts_table),
            [{"key": i.key, "signal": _json(_signal_json.dump_json(i.signal))} for i in found],
        )


# rows ↔ incidents --------------------------------------------------------------------------------
def parse(data: str | bytes) -> Incident:
    """An incident from its stored record (JSON)."""
    return _incident_json.validate_json(data)


def record_json(data: str, signal: str | None) -> str:
    """An incident's JSON from its row's `data` and its signal (None: `data` holds it). A signal
    stored without its key (`_texts_json`) gets the record's, as the record spells it."""
    if signal is None:
        return data
    if not signal.startswith(_KEY_FIRST):
        _key, end = scanstring(data, len(_KEY_FIRST) + 1)  # the record begins with its key
        signal = f"{data[:end]},{signal[1:]}"
    return f'{data[:-1]},"signal":{signal}}}'


# a record's signal while its own is rebuilt from its recipe (`recipes.from_stored`)
_PLACEHOLDER = '{"source":"","firing":false,"severity":"info","summary":""}'


def _recipe_signal(incident: Incident, stored: str) -> Signal:
    """The signal of a recipe row; of a row that is not one (damaged), what its record vouches
    for: one row never stops a reader or the watch (a plain signal, written back rendered)."""
    try:
        return recipes.from_stored(incident.key, orjson.loads(stored))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return Signal(
            key=incident.key,
            source=incident.source,
            firing=True,
            severity=incident.severity,
            summary=f"{incident.key} (its stored texts unreadable here)",
            evidence={"texts": "not rendered: its stored recipe is damaged"},
        )


def row_incident(row: Sequence[Any]) -> Incident:
    """The incident of a row (INCIDENT_COLUMNS): its record with its signal (kept apart, or in
    the record if written before schema 6), the thread from its columns (the truth for it)."""
    data, channel, ts, signal = row
    if signal is not None and signal.startswith(_RECIPE_FIRST):
        incident = parse(record_json(data, _PLACEHOLDER))
        incident = evolve(incident, signal=_recipe_signal(incident, signal))
    else:
        incident = parse(record_json(data, signal))
    if (incident.thread_channel, incident.thread_ts) != (channel, ts):
        incident = replace(incident, thread_channel=channel, thread_ts=ts)
    return incident
