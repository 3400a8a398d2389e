"""What-if: replay recorded observations through a configuration, with a virtual clock.

Pure given the history (core.history, read from the store by the caller), the configurations and
the period. The engine is the flows' own: `core.storms.decide` (policy, inhibition, grouping,
fleet aggregates, and whatever the engine decides inside it) with the policies and storm rules
of a loaded Config, called as tasks.pipeline calls it — per watch, with that run's observations.

The clock does not step every minute: a watch is evaluated at its recorded runs where an
observation changed, at the run after any evaluation that changed something (anywhere: a cause
resolving in one watch tells its symptoms in another), while an incident is still counting
failures or successes, and at the first run at or after a timer of an open incident — any
duration of its policy or of the grouping after any time the incident records (onset, opened,
paged, last told, acknowledged...), and any `until` of its acts. A run that is none of these
would find nothing to do: the engine changes an incident only on a new observation, a count
or a time that passed.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from fleet_alerting.config import Config
from fleet_alerting.core.history import History, RunClock, RunSegment
from fleet_alerting.core.incidents import Incident, Notification, State
from fleet_alerting.core.policy import PolicyConfig, PolicyFor
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import decide

PAGERS = ("pagerduty", "oncall")
SLACK = ("slack", "slack_mirror")
ALERTMANAGER_STREAM = "alertmanager"
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Sent:
    """One notification the replay decided (what delivery would have sent)."""

    at: datetime
    key: str
    onset: datetime
    kind: str
    channel: str
    severity: str
    alert: str  # the alert or watch it is counted under
    summary: str

    @property
    def minute(self) -> tuple[str, str, str, str]:
        """What fidelity compares: incident, kind, destination, minute."""
        return (self.key, self.kind, self.channel, self.at.strftime("%Y-%m-%dT%H:%M"))


def alert_of(incident: Incident) -> str:
    """An Alertmanager incident counts under its alertname, any other under its watch."""
    return incident.signal.labels.get("alertname") or incident.source


def sent_of(notification: Notification) -> Sent:
    incident = notification.incident
    return Sent(
        notification.at,
        incident.key,
        incident.onset,
        str(notification.kind),
        notification.channel,
        incident.severity.value,
        alert_of(incident),
        incident.signal.summary,
    )


def policies_for(config: Config) -> Callable[[str], PolicyFor]:
    """The policy each watch's runs evaluate with: the configured one; for Alertmanager's runs
    with its own debouncing (alertmanager.open_after / resolve_after), as its flow does."""
    am = config.alertmanager

    def for_stream(stream: str) -> PolicyFor:
        if stream != ALERTMANAGER_STREAM or am is None:
            return config.policy
        update = {"open_after": am.open_after, "resolve_after": am.resolve_after}
        return lambda severity: config.policy(severity).model_copy(update=update)

    return for_stream


def durations(value: Any) -> set[timedelta]:
    """Every positive duration in a settings model (nested models, lists and maps too)."""
    found: set[timedelta] = set()
    if isinstance(value, timedelta):
        if value > timedelta(0):
            found.add(value)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found |= durations(getattr(value, name))
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            found |= durations(getattr(value, f.name))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found |= durations(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            found |= durations(item)
    return found


def _moments(value: Any) -> Iterator[datetime]:
    """The times an incident (or its acts) records."""
    for f in fields(value):
        item = getattr(value, f.name)
        if isinstance(item, datetime):
            yield item
        elif is_dataclass(item) and not isinstance(item, type | Signal):
            yield from _moments(item)


class _Timers:
    """The next moment after `now` at which time alone could change an open incident."""

    def __init__(self, config: Config, policy_for: Callable[[str], PolicyFor]):
        rules = config.storm_rules()
        self.shared = durations(rules.grouping)
        self._policy_for = policy_for
        self._per: dict[tuple[str, Severity], list[timedelta]] = {}

    def spans(self, stream: str, severity: Severity) -> list[timedelta]:
        found = self._per.get((stream, severity))
        if found is None:
            policy: PolicyConfig = self._policy_for(stream)(severity)
            found = self._per[(stream, severity)] = sorted(durations(policy) | self.shared)
        return found

    def next_after(self, incidents: Iterable[Incident], stream: str, now: datetime) -> datetime:
        best = datetime.max.replace(tzinfo=now.tzinfo)
        for incident in incidents:
            spans = self.spans(stream, incident.severity)
            for moment in _moments(incident):
                if moment > now:
                    best = min(best, moment)  # an `until` of its acts
                for span in spans:
                    due = moment + span
                    if due > now:
                        best = min(best, due)
                        break  # spans are sorted: the first due one is the earliest
        return best


@dataclass
class Replay:
    """What a configuration would have sent over the period, and how many evaluations it took."""

    name: str
    sent: list[Sent]
    evaluations: int
    runs: int  # how many recorded runs the period holds (what stepping every run would cost)


def replay(history: History, config: Config, name: str = "") -> Replay:
    """Every notification `config` would have caused over `history`, in time order."""
    policy_for = policies_for(config)
    rules = config.storm_rules()
    timers = _Timers(config, policy_for)
    streams = history.streams()
    clocks = {s: RunClock(r for r in history.runs if r.stream == s) for s in streams}
    changes = sorted(history.changes, key=lambda c: c.at)
    observed: dict[str, dict[str, Signal]] = {s: {} for s in streams}
    position = 0
    while position < len(changes) and changes[position].at < history.start:
        _observe(observed, changes[position])
        position += 1
    due: list[tuple[datetime, str]] = []
    scheduled: dict[str, datetime] = {}

    def schedule(stream: str, moment: datetime) -> None:
        found = clocks[stream].next_run(max(moment, history.start))
        if found is None or found[0] > history.end:
            return
        if stream in scheduled and scheduled[stream] <= found[0]:
            return
        scheduled[stream] = found[0]
        heapq.heappush(due, (found[0], stream))

    change_times = {s: [c.at for c in changes[position:] if c.stream == s] for s in streams}

    def next_change(stream: str, moment: datetime) -> datetime | None:
        times = change_times[stream]
        index = bisect_left(times, moment)
        return times[index] if index < len(times) else None

    for stream in streams:
        schedule(stream, history.start)
    unresolved: dict[str, Incident] = {}
    sent: dict[str, Sent] = {}
    evaluations = 0
    while due:
        now, stream = heapq.heappop(due)
        if scheduled.get(stream) != now:
            continue  # superseded by an earlier schedule
        del scheduled[stream]
        while position < len(changes) and changes[position].at <= now:
            _observe(observed, changes[position])
            position += 1
        _, segment = clocks[stream].next_run(now) or (now, _NO_RUNS)
        evaluation = decide(
            list(observed[stream].values()),
            unresolved,
            policy_for(stream),
            rules,
            now,
            segment.vanished,
        )
        evaluations += 1
        for notification in evaluation.notifications:
            sent.setdefault(notification.id, sent_of(notification))
        for incident in evaluation.incidents:
            if incident.state == State.resolved:
                unresolved.pop(incident.key, None)
            else:
                unresolved[incident.key] = incident
        after = now + _TICK
        if evaluation.incidents or evaluation.notifications:
            for other in streams:
                schedule(other, after)
        elif any(_counting(i) for i in unresolved.values()):
            schedule(stream, after)
        if unresolved:
            schedule(stream, timers.next_after(unresolved.values(), stream, now))
        upcoming = next_change(stream, after)
        if upcoming is not None:
            schedule(stream, upcoming)
    runs = sum(r.count for r in history.runs)
    return Replay(name, sorted(sent.values(), key=lambda s: s.at), evaluations, runs)


_NO_RUNS = RunSegment("", datetime.min, timedelta(0), 0)


def _observe(observed: dict[str, dict[str, Signal]], change: Any) -> None:
    known = observed.setdefault(change.stream, {})
    if change.signal is None:
        known.pop(change.key, None)
    else:
        known[change.key] = change.signal


def _counting(incident: Incident) -> bool:
    """Still counting towards opening or resolving: the next run decides."""
    return incident.state == State.pending or incident.consecutive_successes > 0


# --- comparing two replays ---------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """One failure episode of one incident key, as a replay told it."""

    key: str
    onset: datetime
    severity: str
    alert: str
    summary: str
    paged_at: datetime | None
    messages: int  # Slack messages (primary and mirror)

    @property
    def to_page(self) -> timedelta | None:
        return None if self.paged_at is None else self.paged_at - self.onset


def episodes(result: Replay) -> dict[tuple[str, datetime], Episode]:
    found: dict[tuple[str, datetime], Episode] = {}
    for s in result.sent:
        ident = (s.key, s.onset)
        known = found.get(ident) or Episode(s.key, s.onset, s.severity, s.alert, s.summary, None, 0)
        if s.channel in PAGERS and s.kind == "paged" and known.paged_at is None:
            known = _with(known, paged_at=s.at)
        if s.channel in SLACK:
            known = _with(known, messages=known.messages + 1)
        found[ident] = known
    return found


def _with(episode: Episode, **changes: Any) -> Episode:
    return replace(episode, **changes)


@dataclass(frozen=True)
class Shift:
    """An episode whose paging differs between the two configurations."""

    episode: Episode  # as the current configuration told it (the proposed one's if it is new)
    before: datetime | None  # paged at, current configuration
    after: datetime | None  # paged at, proposed configuration

    @property
    def delay(self) -> timedelta | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass
class Comparison:
    current: Replay
    proposed: Replay
    before: dict[tuple[str, datetime], Episode]
    after: dict[tuple[str, datetime], Episode]

    @classmethod
    def of(cls, current: Replay, proposed: Replay) -> Comparison:
        return cls(current, proposed, episodes(current), episodes(proposed))

    def lost(self) -> list[Shift]:
        """Paged under the current configuration, not under the proposed one."""
        return [
            Shift(e, e.paged_at, None)
            for ident, e in sorted(self.before.items(), key=_by_time)
            if e.paged_at is not None and self._paged_after(ident) is None
        ]

    def gained(self) -> list[Shift]:
        return [
            Shift(e, None, e.paged_at)
            for ident, e in sorted(self.after.items(), key=_by_time)
            if e.paged_at is not None and self._paged_before(ident) is None
        ]

    def delayed(self) -> list[Shift]:
        """Paged under both, later under the proposed one."""
        shifts = []
        for ident, e in sorted(self.before.items(), key=_by_time):
            after = self._paged_after(ident)
            if e.paged_at is not None and after is not None and after > e.paged_at:
                shifts.append(Shift(e, e.paged_at, after))
        return shifts

    def blocking(self, accepted: Iterable[str]) -> list[Shift]:
        """The CI gate: critical episodes that paged and would not, unless their key is
        accepted as intended."""
        allowed = set(accepted)
        return [
            s
            for s in self.lost()
            if s.episode.severity == Severity.critical.value and s.episode.key not in allowed
        ]

    def _paged_after(self, ident: tuple[str, datetime]) -> datetime | None:
        found = self.after.get(ident)
        return None if found is None else found.paged_at

    def _paged_before(self, ident: tuple[str, datetime]) -> datetime | None:
        found = self.before.get(ident)
        return None if found is None else found.paged_at


def _by_time(item: tuple[tuple[str, datetime], Episode]) -> tuple[datetime, str]:
    return item[0][1], item[0][0]
