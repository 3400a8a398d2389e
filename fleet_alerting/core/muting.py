"""Silences by matchers and maintenance windows: what mutes an incident, and what it is told.

A **silence** mutes every incident whose labels its matchers select (Alertmanager's `=`, `!=`,
`=~`, `!~`, RE2, anchored; core.matchers) from its start until its end. A **maintenance window**
is a named list of Alertmanager time intervals (core.time_intervals); a mute rule applies windows
to the incidents its matchers select, as `mute_time_intervals` (muted inside them) or
`active_time_intervals` (muted outside them). The labels an incident shows are its signal's,
plus `source`, `severity` and `target` (`labels_of`).

Muted is not forgotten. A muted incident keeps being evaluated and recorded (the `mute` pass
runs after the engine, as inhibition does) and its acts name the mute; its messages and pages
are held back. When a mute begins on an incident already told, every destination that saw it
firing gets a closing word ("silenced by … until …"); when the mute ends and the failure goes on,
it is told once ("was silenced by …") and a page it acknowledged is paged again
(`actions.paged_again`) — while an operator's own silence holds the incident, the mute ends
with that silence; when it resolves while muted, every destination that saw
it firing is told it resolved, and one never told is not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from fleet_alerting.core.actions import (
    PAGED_AGAIN,
    closing_words,
    notification,
    paged_again,
    paged_again_told,
    repaged,
    silenced_at,
)
from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.fleet import MatcherText, selector, signal_labels
from fleet_alerting.core.incidents import (
    MUTE_SILENCE,
    MUTE_WINDOW,
    Acts,
    Brief,
    Incident,
    Kind,
    Notification,
    Overlay,
    State,
    glance,
)
from fleet_alerting.core.inhibition import held_back
from fleet_alerting.core.model import Model
from fleet_alerting.core.policy import Evaluation, PolicyConfig, PolicyFor, notify_channels
from fleet_alerting.core.signals import Signal
from fleet_alerting.core.time_intervals import (
    TimeInterval,
    TimeIntervalError,
    parse_time_interval,
    zone,
)

LOOK_AHEAD = timedelta(days=8)  # how far a window's end (or next start) is looked for


def labels_of(incident: Incident) -> dict[str, str]:
    """What matchers see of an incident: its signal's labels, `source`, `severity` (ours win)
    and `target` (the signal's, unless a label of that name says otherwise)."""
    return _with_target(
        signal_labels(incident.source, incident.severity, incident.signal.labels), incident.signal
    )


def _with_target(labels: dict[str, str], signal: Signal) -> dict[str, str]:
    if signal.target:
        labels.setdefault("target", signal.target)
    return labels


def muted_signals(
    muting: Muting, incidents: Mapping[str, Incident], now: datetime
) -> Callable[[Signal], bool]:
    """Whether a signal's incident is muted at `now` — by a silence or window, or by an
    operator's own silence of that incident (`incidents`: the unresolved ones) — asked before
    the engine, by the fleet aggregates."""
    may_mute = functools.cache(muting.may_mute)

    def muted(signal: Signal) -> bool:
        if signal.key in incidents:
            seen = glance(incidents, signal.key)
            if _may_hold_silence(seen) and silenced_at(incidents[signal.key], now):
                return True
        if not may_mute(signal.source):
            return False
        labels = signal_labels(signal.source, signal.severity, signal.labels)
        return muting.mute_for(_with_target(labels, signal), now) is not None

    return muted


def _may_hold_silence(seen: Brief | Incident) -> bool:
    return seen.acted if type(seen) is Brief else seen.acts.silenced


# --- silences ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]  # Alertmanager matchers as written, validated before storing
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str = ""
    created_at: datetime | None = None
    expired_by: str | None = None  # ended by hand (ends_at is then when)
    alertmanager_id: str | None = None  # the same silence in Alertmanager, if one was made

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return selector(self.matchers)(labels)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def told(self) -> str:
        about = f": {self.comment}" if self.comment else ""
        return f"silenced by {self.author} (silence {self.short_id}{about})"


# --- maintenance windows (config) -------------------------------------------------------------


class MaintenanceWindow(Model):
    """A named list of Alertmanager time intervals: `times`, `weekdays`, `days_of_month`,
    `months`, `years`, `location`."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    time_intervals: list[dict[str, Any]] = Field(min_length=1, max_length=50)
    _parsed: tuple[TimeInterval, ...] = PrivateAttr(default=())

    @field_validator("time_intervals")
    @classmethod
    def _valid(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for n, interval in enumerate(value):
            try:
                parse_time_interval(interval)
            except TimeIntervalError as exc:
                raise ValueError(f"time_intervals[{n}]: {exc}") from None
        return value

    def model_post_init(self, _context: Any) -> None:
        self._parsed = tuple(parse_time_interval(i) for i in self.time_intervals)

    @property
    def intervals(self) -> tuple[TimeInterval, ...]:
        return self._parsed

    def contains(self, at: datetime) -> bool:
        return any(interval.contains(at) for interval in self._parsed)


class MuteRule(Model):
    """The windows that mute the incidents `matchers` select: inside any of
    `mute_time_intervals`, and outside all of `active_time_intervals` (when given)."""

    matchers: list[MatcherText] = Field(min_length=1, max_length=20)
    mute_time_intervals: list[str] = Field(default=[], max_length=20)
    active_time_intervals: list[str] = Field(default=[], max_length=20)

    @model_validator(mode="after")
    def _some_window(self) -> MuteRule:
        if not self.mute_time_intervals and not self.active_time_intervals:
            raise ValueError("name windows in mute_time_intervals or active_time_intervals")
        return self


class MaintenanceConfig(Model):
    windows: list[MaintenanceWindow] = Field(default=[], max_length=100)
    mute: list[MuteRule] = Field(default=[], max_length=100)

    def with_policies(self, policies: Mapping[str, PolicyConfig]) -> MaintenanceConfig:
        """These rules and, for each policy naming windows, one for its severity."""
        rules = [
            MuteRule(
                matchers=[f'severity="{severity}"'],
                mute_time_intervals=policy.mute_time_intervals,
                active_time_intervals=policy.active_time_intervals,
            )
            for severity, policy in policies.items()
            if policy.mute_time_intervals or policy.active_time_intervals
        ]
        return self if not rules else self.model_copy(update={"mute": [*self.mute, *rules]})

    def unknown_windows(self, names: Sequence[str]) -> list[str]:
        known = {w.name for w in self.windows}
        return [name for name in names if name not in known]

    @model_validator(mode="after")
    def _known_windows(self) -> MaintenanceConfig:
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError("window names must be unique")
        for n, rule in enumerate(self.mute):
            for name in (*rule.mute_time_intervals, *rule.active_time_intervals):
                if name not in names:
                    raise ValueError(f"mute[{n}]: no window named {name!r} in windows")
        return self


# --- what mutes what --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mute:
    id: str  # "silence:<id>" | "window:<name>"
    by: str  # as told: "silenced by ana (silence 3f2a9c1e: re-imaging)", "muted by window …"
    until: datetime | None  # None: not known within LOOK_AHEAD


class Muting:
    """The silences and windows in force, asked once per incident label set."""

    def __init__(
        self, silences: Sequence[Silence] = (), maintenance: MaintenanceConfig | None = None
    ):
        self.silences = list(silences)
        self.maintenance = maintenance or MaintenanceConfig()
        self._windows = {w.name: w for w in self.maintenance.windows}
        self._ends: dict[tuple[int, datetime], datetime | None] = {}

    @property
    def empty(self) -> bool:
        return not self.silences and not self.maintenance.mute

    def may_mute(self, source: str) -> bool:
        matchers = [s.matchers for s in self.silences]
        matchers += [tuple(r.matchers) for r in self.maintenance.mute]
        return any(selector(m).admits(source) for m in matchers)

    def mute_for(self, labels: Mapping[str, str], now: datetime) -> Mute | None:
        """The first silence in force selecting `labels`, else the first muting window."""
        for s in self.silences:
            if s.active(now) and s.matches(labels):
                return Mute(f"{MUTE_SILENCE}:{s.id}", s.told(), s.ends_at)
        for rule in self.maintenance.mute:
            if selector(tuple(rule.matchers))(labels) and self._muted_by(rule, now):
                return Mute(f"{MUTE_WINDOW}:{self._name(rule, now)}", self._told(rule, now), None)
        return None

    def until(self, mute: Mute, now: datetime) -> datetime | None:
        """When a window's mute lifts (a silence's is its end)."""
        if not mute.id.startswith(MUTE_WINDOW):
            return mute.until
        for n, rule in enumerate(self.maintenance.mute):
            if self._muted_by(rule, now) and mute.id == f"{MUTE_WINDOW}:{self._name(rule, now)}":
                key = (n, now.replace(second=0, microsecond=0))
                if key not in self._ends:
                    self._ends[key] = first_minute(lambda t, r=rule: not self._muted_by(r, t), now)
                return self._ends[key]
        return None

    def windows_now(self, now: datetime) -> list[tuple[MuteRule, bool]]:
        """Every mute rule and whether it mutes at `now`."""
        return [(rule, self._muted_by(rule, now)) for rule in self.maintenance.mute]

    def schedules(self, now: datetime) -> list[Schedule]:
        """Every mute rule's times as of `now`: when a mute in force lifts, and when it next
        begins and ends (each within LOOK_AHEAD of the moment before it)."""
        found = []
        for rule in self.maintenance.mute:

            def mutes(t: datetime, r: MuteRule = rule) -> bool:
                return self._muted_by(r, t)

            def lifted(t: datetime, r: MuteRule = rule) -> bool:
                return not self._muted_by(r, t)

            muting = mutes(now)
            lifts = first_minute(lifted, now) if muting else None
            start = first_minute(mutes, lifts or now) if lifts or not muting else None
            end = first_minute(lifted, start) if start else None
            found.append(
                Schedule(
                    _rule_name(rule), tuple(rule.matchers), self._zones(rule), muting, lifts,
                    start, end,
                )
            )  # fmt: skip
        return found

    def _zones(self, rule: MuteRule) -> tuple[str, ...]:
        """The time zones of the rule's windows besides UTC (`Local`: the host's, not named)."""
        names = [*rule.mute_time_intervals, *rule.active_time_intervals]
        zones = {i.location for name in names for i in self._windows[name].intervals}
        return tuple(sorted(z for z in zones if z and z not in ("UTC", "Local")))

    def _muted_by(self, rule: MuteRule, at: datetime) -> bool:
        if any(self._windows[name].contains(at) for name in rule.mute_time_intervals):
            return True
        active = rule.active_time_intervals
        return bool(active) and not any(self._windows[name].contains(at) for name in active)

    def _name(self, rule: MuteRule, at: datetime) -> str:
        inside = [n for n in rule.mute_time_intervals if self._windows[n].contains(at)]
        return inside[0] if inside else "outside " + "/".join(rule.active_time_intervals)

    def _told(self, rule: MuteRule, at: datetime) -> str:
        return f"muted by window {self._name(rule, at)}"


def _rule_name(rule: MuteRule) -> str:
    """`yard-night`, `outside weekdays`: the windows it mutes inside, or outside."""
    names = ["/".join(rule.mute_time_intervals)] if rule.mute_time_intervals else []
    if rule.active_time_intervals:
        names.append(f"outside {'/'.join(rule.active_time_intervals)}")
    return " or ".join(names)


@dataclass(frozen=True)
class Schedule:
    """When one mute rule mutes, as seen at some moment: whether it mutes then and when that
    lifts, and when it next begins and ends (None: not within LOOK_AHEAD)."""

    name: str  # its windows: "yard-night", "outside weekdays"
    matchers: tuple[str, ...]
    zones: tuple[str, ...]  # its windows' own time zones besides UTC
    muting: bool
    lifts: datetime | None
    next_start: datetime | None
    next_end: datetime | None

    def describe(self) -> str:
        """`yard-night: next 2026-12-08 00:00–01:00 UTC (2026-12-08 01:00–02:00 Europe/Zagreb),
        matches role="player",site="yard"`."""
        return f"{self.name}: {self.when()}, matches {','.join(self.matchers)}"

    def when(self) -> str:
        """`muting now until …; next …`, `next …`, or that none starts within LOOK_AHEAD."""
        ahead = f"{LOOK_AHEAD.days} days"
        said = []
        if self.muting:
            lifts = f"until {self._at(self.lifts)}" if self.lifts else f"for over {ahead}"
            said.append(f"muting now {lifts}")
        if self.next_start is not None:
            said.append(f"next {self._span(self.next_start, self.next_end)}")
        elif not self.muting:
            said.append(f"no start within {ahead}")
        return "; ".join(said)

    def _at(self, moment: datetime) -> str:
        return " ".join(
            [f"{moment:%Y-%m-%d %H:%M} UTC"]
            + [f"({moment.astimezone(zone(z)):%Y-%m-%d %H:%M} {z})" for z in self.zones]
        )

    def _span(self, start: datetime, end: datetime | None) -> str:
        def span(tz: str) -> str:
            begins = start.astimezone(zone(tz))
            if end is None:
                return f"{begins:%Y-%m-%d %H:%M} {tz}, no end within {LOOK_AHEAD.days} days"
            ends = end.astimezone(zone(tz))
            if ends.date() == begins.date():
                return f"{begins:%Y-%m-%d %H:%M}–{ends:%H:%M} {tz}"
            return f"{begins:%Y-%m-%d %H:%M} – {ends:%Y-%m-%d %H:%M} {tz}"

        return span("UTC") + "".join(f" ({span(z)})" for z in self.zones)


def first_minute(
    condition: Callable[[datetime], bool], start: datetime, limit: timedelta = LOOK_AHEAD
) -> datetime | None:
    """The first whole minute after `start` at which `condition` holds (time intervals are
    minute-grained), or None within `limit`."""
    at = start.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = start + limit
    while at <= end:
        if condition(at):
            return at
        at += timedelta(minutes=1)
    return None


# --- the pass after the engine ----------------------------------------------------------------


def mute(
    evaluation: Evaluation,
    before: Mapping[str, Incident],
    muting: Muting,
    policy_for: PolicyFor,
    own_sources: set[str],
    now: datetime,
) -> Evaluation:
    """Apply silences and windows to an evaluation, as core.inhibition applies its rules: only
    incidents of `own_sources` change; `before` holds the unresolved incidents read."""
    changed = {i.key: i for i in evaluation.incidents}
    after = Overlay(before, changed)
    sent_about = evaluation.sent_about()
    may_mute = functools.cache(muting.may_mute)  # asked per incident, of a handful of sources
    candidates = [
        key for key, was, made in after.pairs() if _candidate(was, made, may_mute, own_sources)
    ]
    after.preload(candidates)
    drop: set[str] = set()
    dropped_ids: set[str] = set()
    extra: list[Notification] = []
    released: dict[str, Incident] = {}
    folded: dict[str, Incident] = {}  # the engine's Slack "paged" message tells the mute's end
    for key in candidates:
        incident = after[key]
        found = (
            muting.mute_for(labels_of(incident), now)
            if incident.state != State.resolved and may_mute(incident.source)
            else None
        )
        if found is None and _never_acted_on(before, key, incident):
            continue  # no mute to begin or end: its record is not built to say so
        prior = _same_episode(before.get(key), incident)
        was = prior.acts.mute_id if prior is not None else incident.acts.mute_id
        sent = sent_about(key)
        if found is not None:
            drop.add(key)
            updated, told = _begin(incident, prior, found, muting, sent, was, policy_for, now)
            extra += told
            if updated != incident:
                changed[key] = updated
        elif was is not None:
            updated, keep, told, fold = _end(incident, prior, sent, policy_for, now)
            if fold is not None:
                folded[key] = fold
            if not keep:
                drop.add(key)
            elif any(n.kind == Kind.silence_expired or n.marked(PAGED_AGAIN) for n in told):
                # the words that it ended (paging again, or not) are this run's reminder: one
                # message, not two
                dropped_ids |= {n.id for n in sent if n.kind == Kind.reminder}
                if any(n.kind == Kind.reminder for n in sent) and prior is not None:
                    updated = replace(updated, reminders=prior.reminders)
            extra += told
            changed[key] = released[key] = updated
    kept = evaluation.notifications
    if drop or released:
        kept = [
            _told_released(n, released, folded)
            for n in kept
            if n.incident.key not in drop and n.id not in dropped_ids
        ]
    # an incident first told as its mute ends opens its thread before the page the engine sent,
    # a page the mute held acknowledged is resolved before any page of it goes again, and its
    # pages again go before the Slack "paged" message that waits for them
    first = [n for n in extra if _goes_first(n)]
    rest = [n for n in extra if not _goes_first(n)]
    return Evaluation(list(changed.values()), first + kept + rest)


def _goes_first(n: Notification) -> bool:
    return n.kind in (Kind.opened, Kind.resolved) or (
        n.kind == Kind.paged and pager_of(n.channel) is not None
    )


def _told_released(
    n: Notification, released: Mapping[str, Incident], folded: Mapping[str, Incident]
) -> Notification:
    """What the engine sent as a mute ended: about the record without the mute — its Slack
    "paged" message, of a step due as the mute ended, about the record with the mute's pages
    again too (it names them, waits for them and says the mute ended: one message)."""
    key = n.incident.key
    if key in folded and n.kind == Kind.paged and n.channel in SLACK_CHANNELS:
        return replace(n, incident=folded[key])
    if key in released:
        return replace(n, incident=replace(n.incident, acts=released[key].acts))
    return n


@dataclass(frozen=True)
class MuteChange:
    """A mute that began or ended on an incident in one evaluation, for the audit trail."""

    incident: Incident
    action: str  # "muted" | "unmuted"
    by: str  # "window east-maint", "silence 3f2a9c1e"
    outcome: str


def mute_changes(before: Mapping[str, Incident], evaluation: Evaluation) -> list[MuteChange]:
    """The mutes that began or ended in `evaluation` (`before`: the unresolved incidents read),
    saying what an ending did: who was paged again, or that it resolved."""
    paged: dict[str, list[str]] = {}
    for n in evaluation.notifications:
        if n.kind == Kind.paged and pager_of(n.channel) is not None:
            paged.setdefault(n.incident.key, []).append(n.channel)
    changes = []
    for incident in evaluation.incidents:
        now_id, key = incident.acts.mute_id, incident.key
        known = key in before
        if now_id is None and not (known and _may_hold_mute(glance(before, key))):
            continue
        prior = _same_episode(before[key], incident) if known else None
        was_id = prior.acts.mute_id if prior is not None else None
        if was_id == now_id:
            continue
        if was_id is not None:
            outcome = "still failing" + _paged(paged.get(key, []), prior)
            outcome = "resolved" if incident.state == State.resolved else outcome
            changes.append(MuteChange(incident, "unmuted", _named(was_id), outcome))
        if now_id is not None:
            until = incident.acts.muted_until
            outcome = f"until {until:%Y-%m-%d %H:%M:%S}Z" if until else "done"
            changes.append(MuteChange(incident, "muted", _named(now_id), outcome))
    return changes


def _paged(pagers: Sequence[str], prior: Incident | None) -> str:
    """Whom a mute's end paged: "again" only for a pager this episode had paged before (a step
    that came due under the mute pages its pager for the first time)."""
    before = set(prior.paged_via) if prior is not None else set()
    first = [p for p in pagers if p not in before]
    again = [p for p in pagers if p in before]
    said = [", ".join(first)] if first else []
    said += [f"{', '.join(again)} again"] if again else []
    return f": paged {', and '.join(said)}" if said else ""


def _named(mute_id: str) -> str:
    kind, _, name = mute_id.partition(":")
    return f"window {name}" if kind == MUTE_WINDOW else f"{kind} {name[:8]}"


def _candidate(
    was: Brief | Incident | None,
    changed: Incident | None,
    may_mute: Callable[[str], bool],
    own_sources: set[str],
) -> bool:
    """Whether a mute may begin or end on an incident (`was`: its glance as read, None if new;
    `changed`: its record as the engine changed it, None if left as read): one may select its
    source, or its record (as the engine left it, or as read) may hold one. Any other is left as
    it is, its messages as sent."""
    seen: Brief | Incident = was if changed is None else changed
    if seen.source not in own_sources:
        return False
    return (
        may_mute(seen.source)
        or _may_hold_mute(seen)
        or (changed is not None and was is not None and _may_hold_mute(was))
    )


def _may_hold_mute(seen: Brief | Incident) -> bool:
    # the exact type: asked of every incident of a storm twice (Brief has no subclass)
    return seen.acted if type(seen) is Brief else seen.acts.mute_id is not None


def _never_acted_on(before: Mapping[str, Incident], key: str, incident: Incident) -> bool:
    """Whether the brief of `key`'s record (not read in full) says this episode has no acts —
    so no mute (`was` below is None) — without building the record."""
    if key not in before:
        return False
    seen = glance(before, key)
    return (
        isinstance(seen, Brief)
        and not seen.acted
        and seen.onset == incident.onset
        and seen.state != State.resolved
    )


def _same_episode(prior: Incident | None, incident: Incident) -> Incident | None:
    if prior is None or prior.onset != incident.onset or prior.state == State.resolved:
        return None
    return prior


def _with_mute(acts: Acts, found: Mute | None, until: datetime | None) -> Acts:
    if found is None:
        return replace(acts, mute_id=None, muted_by=None, muted_until=None)
    return replace(acts, mute_id=found.id, muted_by=found.by, muted_until=until)


def _begin(
    incident: Incident,
    prior: Incident | None,
    found: Mute,
    muting: Muting,
    dropped: Sequence[Notification],
    was: str | None,
    policy_for: PolicyFor,
    now: datetime,
) -> tuple[Incident, list[Notification]]:
    """Muted: the record as if the dropped messages had not been due; a mute that begins on an
    incident already told is told to every destination that saw it firing."""
    until = muting.until(found, now) if was != found.id else incident.acts.muted_until
    updated = replace(incident, acts=_with_mute(incident.acts, found, until))
    updated = held_back(updated, prior, dropped)
    if was == found.id or prior is None or prior.last_notified_at is None or not prior.is_open:
        return updated, []
    return updated, closing_words(updated, prior, policy_for(incident.severity).channels(), now)


def _end(
    incident: Incident,
    prior: Incident | None,
    sent: Sequence[Notification],
    policy_for: PolicyFor,
    now: datetime,
) -> tuple[Incident, bool, list[Notification], Incident | None]:
    """The mute is over, or the incident resolved under it: (record, keep what the engine sent,
    what to tell besides, the record its Slack "paged" message tells instead — a step due as
    the mute ended pages beside the mute's pages again: one message says both)."""
    was_by = incident.acts.muted_by or (prior.acts.muted_by if prior else None) or "a mute"
    released = replace(incident, acts=_with_mute(incident.acts, None, None))
    told_before = prior is not None and prior.last_notified_at is not None
    if incident.state == State.resolved:
        return released, told_before, [], None  # closed wherever it was told firing, nowhere else
    if not incident.is_open or any(n.kind == Kind.opened for n in sent):
        return released, True, [], None
    if silenced_at(incident, now):
        return incident, False, [], None  # an operator's silence holds: the mute ends with it
    fold: Incident | None = None
    note = f"{incident.signal.summary} (was {was_by}, which has ended)"
    snapshot = replace(released, signal=replace(released.signal, summary=note))
    policy = policy_for(incident.severity)
    # a mute can end more than once in an episode: the moment is in the id
    if told_before and prior is not None:
        # the operator's silence, ending too, said it (paging again what it held)
        said = any(n.kind == Kind.silence_expired or n.marked(PAGED_AGAIN) for n in sent)
        channels = [] if said else policy.channels()
        paging = [n.channel for n in sent if n.kind == Kind.paged]
        resolving = {n.channel for n in sent if n.kind == Kind.resolved}  # an ack timed out
        again = paged_again(snapshot, prior, now, paging)
        pagers = [n.channel for n in again if n.kind == Kind.paged]
        told = [notification(snapshot, c, Kind.silence_expired, now) for c in channels]
        if pagers:  # recorded as pages: `Paged:` lists them, --show gives their times
            released = repaged(released, pagers, now)
            snapshot = replace(released, signal=snapshot.signal)
            again = paged_again(snapshot, prior, now, paging)
        # Slack says whom it paged again once they took the page, as a "paged" message — the
        # engine's own "paged" message, if a step is due now, names them and waits for them
        stepping = any(n.kind == Kind.paged and n.channel in SLACK_CHANNELS for n in sent)
        if pagers and stepping:
            fold, told = snapshot, []
        elif pagers:
            told = [paged_again_told(snapshot, c, now) for c in channels]
        told = [n for n in again if n.kind != Kind.resolved or n.channel not in resolving] + told
    else:
        told = notify_channels(snapshot, policy, Kind.opened, now)
    if told or fold is not None:
        released = replace(released, last_notified_at=now)
    return released, True, told, fold
