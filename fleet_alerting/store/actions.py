"""Operator actions in the store: each one applied to its incident, its notifications queued in the
outbox and its audit record written — one transaction, so a concurrent evaluation never interleaves.

Every action is recorded, refused ones too (who, what, when, from where, and the outcome).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from fleet_alerting.core.actions import Change
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.muting import MuteChange
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import actions_table
from fleet_alerting.store.tables import ts as _ts

EVALUATION = "evaluation"  # `via` of the rows an evaluation writes (mutes beginning, ending)


@dataclass(frozen=True)
class ActionRecord:
    at: datetime
    incident_key: str
    action: str
    actor: str
    via: str
    outcome: str
    detail: dict[str, Any]
    onset: datetime | None = None  # of the incident acted on (None: there was none)
    episode: str | None = None  # Incident.episode (None: none, or recorded before it was kept)

    def of_another_episode(self, incident: Incident) -> bool:
        if self.episode is not None:
            return self.episode != incident.episode
        return self.onset is not None and self.onset != incident.onset

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.detail.items() if v not in (None, ""))
        when = self.at.strftime("%Y-%m-%d %H:%M:%S")
        said = f"{when}Z {self.action} by {self.actor} via {self.via}: {self.outcome} {extra}"
        return said.rstrip()


Decide = Callable[[Incident], Change]


def apply(
    store: Store,
    key: str,
    decide: Decide,
    *,
    action: str,
    actor: str,
    via: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> Change | None:
    """Load the incident, let `decide` (a core.actions function) change it, store the change and
    queue its notifications, and record the action. None: no such incident (recorded too)."""
    with store.transaction() as unit:
        incident = unit.incident(key)
        change = decide(incident) if incident is not None else None
        if change is not None and change.refused is None:
            unit.write_incidents([change.incident], now)
            if change.notifications:
                unit.queue(change.notifications, now)
        if change is None:
            outcome = "refused: no such incident"
        else:
            outcome = f"refused: {change.refused}" if change.refused else "done"
        unit.conn.execute(
            sa.insert(actions_table).values(
                at=_ts(now),
                incident_key=key,
                onset=_ts(incident.onset) if incident else None,
                episode=incident.episode if incident else None,
                action=action,
                actor=actor,
                via=via,
                outcome=outcome,
                detail=json.dumps(detail or {}, default=str),
            )
        )
    return change


def record(
    store: Store,
    key: str,
    *,
    action: str,
    actor: str,
    via: str,
    now: datetime,
    outcome: str = "done",
    detail: dict[str, Any] | None = None,
) -> None:
    """An audit record for something that changed no incident (e.g. a refused click)."""
    with store.transaction() as unit:
        unit.conn.execute(
            sa.insert(actions_table).values(
                at=_ts(now),
                incident_key=key,
                action=action,
                actor=actor,
                via=via,
                outcome=outcome,
                detail=json.dumps(detail or {}, default=str),
            )
        )


def record_mutes(conn: sa.Connection, changes: Sequence[MuteChange], now: datetime) -> None:
    """The mutes an evaluation began or ended (a window's, a silence's), in the trail of their
    incidents, in the evaluation's transaction (one statement: a window may mute a storm)."""
    if not changes:
        return
    rows = [
        {
            "at": _ts(now),
            "incident_key": c.incident.key,
            "onset": _ts(c.incident.onset),
            "episode": c.incident.episode,
            "action": c.action,
            "actor": c.by,
            "via": EVALUATION,
            "outcome": c.outcome,
            "detail": "{}",
        }
        for c in changes
    ]
    conn.execute(sa.insert(actions_table), rows)


def history(
    store: Store, key: str | None = None, since: datetime | None = None
) -> list[ActionRecord]:
    query = sa.select(actions_table).order_by(actions_table.c.id)
    if key is not None:
        query = query.where(actions_table.c.incident_key == key)
    if since is not None:
        query = query.where(actions_table.c.at >= _ts(since))
    with store.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        ActionRecord(
            at=datetime.fromisoformat(row["at"]),
            incident_key=row["incident_key"],
            action=row["action"],
            actor=row["actor"],
            via=row["via"],
            outcome=row["outcome"],
            detail=json.loads(row["detail"] or "{}"),
            onset=datetime.fromisoformat(row["onset"]) if row["onset"] else None,
            episode=row["episode"],
        )
        for row in rows
    ]


def by_hand(store: Store, start: datetime, end: datetime) -> Counter[str]:
    """What operators did to incidents between `start` and `end` (action → times done): acks,
    silences, snoozes — not the mutes an evaluation recorded."""
    done = (a for a in history(store, since=start) if a.outcome == "done" and a.at <= end)
    return Counter(a.action for a in done if a.via != EVALUATION)
