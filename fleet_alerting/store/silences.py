"""Silences by matchers in the store (core.muting.Silence): added, listed, expired by hand, and
what each has muted. Ended silences are kept for the audit and what-if, until
`state.retention.expired_silences` after they end (Store.prune)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from fleet_alerting.core.muting import Silence
from fleet_alerting.core.wording import no_such
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import silences_table
from fleet_alerting.store.tables import ts as _ts

LISTED_BY = "`silence query` lists them."


class NoSuchSilence(LookupError):
    pass


def new_id() -> str:
    return str(uuid.uuid4())


def add(store: Store, silence: Silence) -> Silence:
    with store.engine.begin() as conn:
        conn.execute(sa.insert(silences_table).values(**_row(silence)))
    return silence


def set_alertmanager_id(store: Store, silence_id: str, alertmanager_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(silences_table)
            .where(silences_table.c.id == silence_id)
            .values(alertmanager_id=alertmanager_id)
        )


def listing(store: Store, now: datetime, include_expired: bool = False) -> list[Silence]:
    """Silences in force or still to come (and, with `include_expired`, every one)."""
    query = sa.select(silences_table).order_by(silences_table.c.starts_at)
    if not include_expired:
        query = query.where(silences_table.c.ends_at > _ts(now))
    with store.read() as conn:
        return [_silence(row) for row in conn.execute(query).mappings()]


def active(store: Store, now: datetime) -> list[Silence]:
    return [s for s in listing(store, now) if s.active(now)]


def muted_counts(store: Store) -> dict[str, int]:
    """How many incidents each silence has muted (its id → count)."""
    query = sa.select(silences_table.c.id, silences_table.c.muted)
    with store.read() as conn:
        return {str(k): int(v or 0) for k, v in conn.execute(query).tuples()}


def find(store: Store, id_or_prefix: str) -> Silence:
    """A silence by its id or an unambiguous prefix of it (`silence query` shows 8 characters)."""
    like = id_or_prefix.replace("%", "").replace("_", "") + "%"
    query = sa.select(silences_table).where(silences_table.c.id.like(like)).limit(2)
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    if len(rows) != 1 or not id_or_prefix.strip():
        if rows:
            raise NoSuchSilence(f'"{id_or_prefix}" matches several silences. Type more of it.')
        raise NoSuchSilence(no_such("silence", id_or_prefix, hint=LISTED_BY))
    return _silence(rows[0])


def expire(store: Store, silence_id: str, actor: str, now: datetime) -> Silence:
    """End a silence now (one that already ended stays as it was)."""
    with store.engine.begin() as conn:
        row = (
            conn.execute(sa.select(silences_table).where(silences_table.c.id == silence_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NoSuchSilence(no_such("silence", silence_id, hint=LISTED_BY))
        silence = _silence(row)
        if silence.ends_at <= now:
            return silence
        ends = max(now, silence.starts_at)
        conn.execute(
            sa.update(silences_table)
            .where(silences_table.c.id == silence_id)
            .values(ends_at=_ts(ends), expired_by=actor)
        )
    return Silence(**{**silence.__dict__, "ends_at": ends, "expired_by": actor})


def record_muted(store: Store, newly_muted: Mapping[str, int], now: datetime) -> None:
    """Count incidents a silence began to mute (for `silence query` and the audit)."""
    if not newly_muted:
        return
    table = silences_table.c
    with store.engine.begin() as conn:
        for silence_id, count in newly_muted.items():
            conn.execute(
                sa.update(silences_table)
                .where(table.id == silence_id)
                .values(muted=table.muted + count, last_muted_at=_ts(now))
            )


def _row(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": json.dumps(list(silence.matchers)),
        "starts_at": _ts(silence.starts_at),
        "ends_at": _ts(silence.ends_at),
        "author": silence.author,
        "comment": silence.comment,
        "created_at": _ts(silence.created_at or silence.starts_at),
        "expired_by": silence.expired_by,
        "alertmanager_id": silence.alertmanager_id,
    }


def _silence(row: Mapping[str, Any]) -> Silence:
    parse = datetime.fromisoformat
    return Silence(
        id=row["id"],
        matchers=tuple(json.loads(row["matchers"])),
        starts_at=parse(row["starts_at"]),
        ends_at=parse(row["ends_at"]),
        author=row["author"],
        comment=row["comment"] or "",
        created_at=parse(row["created_at"]),
        expired_by=row["expired_by"],
        alertmanager_id=row["alertmanager_id"],
    )
