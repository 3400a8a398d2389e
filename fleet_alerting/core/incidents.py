"""The durable record of one incident key, and the notifications its changes cause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AliasChoices, Field

from fleet_alerting.core.signals import Severity, Signal


class State(StrEnum):
    pending = "pending"  # failing, not yet past open_after
    firing = "firing"  # open, operators told
    paged = "paged"  # open and paged
    resolved = "resolved"  # cleared (quietly if it never opened)


OPEN_STATES = (State.firing, State.paged)


class Kind(StrEnum):
    opened = "opened"
    paged = "paged"
    reminder = "reminder"
    resolved = "resolved"


@dataclass(frozen=True)
class Incident:
    key: str
    source: str
    severity: Severity
    state: State
    onset: datetime  # when the failure began; persistence is measured from here
    # when this record last changed (not every observation: see policy); `last_seen` in old stores
    changed_at: Annotated[datetime, Field(validation_alias=AliasChoices("changed_at", "last_seen"))]
    signal: Signal  # the latest failing observation: summary, target, runbook, remediation...
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    opened_at: datetime | None = None
    paged_at: datetime | None = None
    paged_via: tuple[str, ...] = ()
    last_notified_at: datetime | None = None
    reminders: int = 0
    resolved_at: datetime | None = None
    resolution: str = ""  # why it cleared, e.g. "no longer reported"
    thread_channel: str | None = None  # Slack thread of this incident, when a bot token is set
    thread_ts: str | None = None
    # passes around the engine (core/inhibition.py, core/grouping.py)
    inhibited_by: str | None = None  # key of the unresolved cause silencing this incident
    group: str | None = None  # key of the group incident that tells for this member
    members: tuple[str, ...] = ()  # a group incident's unresolved members
    members_told: tuple[str, ...] = ()  # ... as of its last message

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def duration(self, now: datetime) -> timedelta:
        return (self.resolved_at or now) - self.onset


@dataclass(frozen=True)
class Notification:
    """One message to one channel. `id` is stable for the same event so a replay is recognised."""

    id: str
    channel: str  # slack | slack_mirror | pagerduty | oncall
    kind: Kind
    at: datetime
    incident: Incident  # snapshot at the time of the event
