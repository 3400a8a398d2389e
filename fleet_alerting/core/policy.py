"""The engine: signals + current incidents + policies + now → changed incidents + notifications.

Pure: no I/O, no clock, no Prefect. Everything a source, a store or a notifier needs to know about
*whether* to tell someone is decided here.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, Self

from pydantic import Field, field_validator, model_validator

from fleet_alerting.core import actions, escalation
from fleet_alerting.core.channels import SLACK_CHANNELS, Channel, Destination, pager_of
from fleet_alerting.core.clock import CLOCK_SKEW
from fleet_alerting.core.escalation import (
    Repeat,
    Stage,
    StepConfig,
)
from fleet_alerting.core.incidents import (
    OPEN_STATES,
    Brief,
    Incident,
    Kind,
    Notification,
    Records,
    State,
    evolve,
    rekeyed,
    retold,
)
from fleet_alerting.core.model import Duration, Model, PositiveDuration
from fleet_alerting.core.signals import Severity, Signal, fingerprint_of


class PolicyConfig(Model):
    """What happens to an incident of one severity."""

    open_after: int = Field(2, ge=1, description="consecutive failures that open an incident")
    resolve_after: int = Field(2, ge=1, description="consecutive successes that resolve it")
    notify: list[Literal["slack"]] = ["slack"]
    page: list[Destination] = []
    page_after: Duration = timedelta(minutes=5)
    # escalation steps; when given, they replace notify / page / page_after
    steps: list[StepConfig] | None = Field(None, min_length=1, max_length=escalation.MAX_STEPS)
    # 0 would remind on every run; a list is a schedule whose last interval repeats
    repeat: Repeat | None = None
    mirror: bool = False
    # an acknowledge before the page holds it this long (None: for the rest of the episode)
    ack_holds_page: Duration | None = None
    # maintenance windows (the config's `maintenance.windows`) muting this severity: inside
    # any of `mute_time_intervals`, outside all of `active_time_intervals` (core.muting)
    mute_time_intervals: list[str] = Field(default=[], max_length=20)
    active_time_intervals: list[str] = Field(default=[], max_length=20)
    # an acknowledgement holds further steps and reminders this long; then, still failing, the
    # escalation starts again from the step it was on (None: held for the rest of the episode)
    ack_timeout: PositiveDuration | None = None

    @field_validator("page")
    @classmethod
    def _pagers_only(cls, value: list[str]) -> list[str]:
        for channel in value:
            if pager_of(channel) is None:
                raise ValueError(f"{channel!r} is not a pager: page names pagerduty or oncall")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        legacy = {"notify", "page", "page_after"} & self.model_fields_set
        if self.steps is not None and legacy:
            raise ValueError(
                f"steps replace {', '.join(sorted(legacy))}: give steps or those, not both"
            )
        if self.ack_timeout is not None and self.ack_holds_page is not None:
            raise ValueError("ack_timeout replaces ack_holds_page: give one of them")
        self.stages()  # steps out of order
        return self

    def stages(self) -> tuple[Stage, ...]:
        """The escalation steps: `steps`, or `notify` at once and `page` after `page_after`."""
        return self._stages

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        for computed in ("_stages", "_timing"):  # from the fields the update may change
            copy.__dict__.pop(computed, None)
        return copy

    def timing(self) -> tuple[tuple[timedelta, ...], int | None]:
        """Each step's delay (in order), and which step pages first (None: none pages)."""
        return self._timing

    @functools.cached_property
    def _timing(self) -> tuple[tuple[timedelta, ...], int | None]:
        stages = self.stages()
        first_paging = next((i for i, s in enumerate(stages) if s.pagers), None)
        return tuple(s.offset for s in stages), first_paging

    @functools.cached_property
    def _stages(self) -> tuple[Stage, ...]:  # asked for every signal of a run
        if self.steps is not None:
            return tuple(
                replace(stage, told=tuple(self._mirrored(stage.told)))
                for stage in escalation.stages_of(self.steps)
            )
        return escalation.legacy_stages(self.channels(), self.page, self.page_after)

    def channels(self) -> list[str]:
        """Who is told of an incident of this severity (at once, of reminders, of the resolve):
        the Slack channels of its steps, plus the mirror of Slack."""
        told = self.notify if self.steps is None else _slack_of(self.steps)
        return self._mirrored(tuple(told))

    def pagers(self) -> list[str]:
        """Every pager some step pages."""
        return list(dict.fromkeys(p for stage in self.stages() for p in stage.pagers))

    def first_pagers(self) -> tuple[str, ...]:
        """Who the first paging step pages (a group incident first pages these)."""
        return next((stage.pagers for stage in self.stages() if stage.pagers), ())

    def _mirrored(self, told: tuple[str, ...]) -> list[str]:
        mirror = [Channel.slack_mirror] if self.mirror and Channel.slack in told else []
        return list(dict.fromkeys([*told, *mirror]))

    def page_hold(self) -> timedelta | None:
        return self.ack_timeout if self.ack_timeout is not None else self.ack_holds_page


def _slack_of(steps: list[StepConfig]) -> list[str]:
    return list(dict.fromkeys(c for step in steps for c in step.to if c in SLACK_CHANNELS))


def default_policies() -> dict[Severity, PolicyConfig]:
    return {
        Severity.critical: PolicyConfig(
            page=[Channel.pagerduty], repeat=timedelta(minutes=30), mirror=True
        ),
        Severity.warning: PolicyConfig(),
        Severity.info: PolicyConfig(notify=[]),
    }


PolicyFor = Callable[[Severity], PolicyConfig]


@dataclass(frozen=True)
class Evaluation:
    incidents: list[Incident]  # new or changed, to be stored (an unchanged failure is not listed)
    # to be queued in the same transaction (between `evaluate` and grouping: `Told`, its
    # members' alike messages made when read)
    notifications: list[Notification] | Told

    def sent_about(self) -> Callable[[str], list[Notification]]:
        """The messages about an incident key, sorted by key on the first ask: the storm passes
        ask only of the incidents they may change, and a storm's opening run is tens of
        thousands of messages that they leave as sent."""
        by_key: dict[str, list[Notification]] = {}
        sorted_out = False

        def sent(key: str) -> list[Notification]:
            nonlocal sorted_out
            if not sorted_out:
                for n in self.notifications:
                    by_key.setdefault(n.incident.key, []).append(n)
                sorted_out = True
            return by_key.get(key, [])

        return sent


def evaluate(
    signals: Iterable[Signal],
    incidents: Mapping[str, Incident],
    policy_for: PolicyFor,
    now: datetime,
    groups_remind: bool = False,
) -> Evaluation:
    """`groups_remind`: grouping is on, so a member of an open group is reminded of by its group
    (on the group's clock), not on its own — and the messages of members decided alike are left
    to grouping to make (`Told`): a storm's are folded into its group's few, never made."""
    changed: list[Incident] = []
    policy_for = _per_severity(policy_for)
    member_policy = _per_severity(lambda sev: policy_for(sev).model_copy(update={"repeat": None}))

    def grouped(record: Brief | Incident | None) -> bool:  # a member of an open group
        return (
            groups_remind
            and record is not None
            and record.group is not None
            and (record.group in incidents)
        )

    def policy_of(record: Brief | Incident | None) -> PolicyFor:
        return member_policy if grouped(record) else policy_for

    latest = _last_per_key(signals)
    alike: _Alike | None = None
    if isinstance(incidents, Records):  # what stays as it is is never read in full
        steady, steady_member = _steadiness(policy_for, now), _steadiness(member_policy, now)

        def unchanged(signal: Signal) -> bool:
            brief = incidents.brief(signal.key)
            if brief is None or brief.state not in _OPEN:  # new, pending: never steady
                return False
            return (steady_member if grouped(brief) else steady)(brief, signal)

        latest = [s for s in latest if not unchanged(s)]
        alike = _Alike(incidents, policy_for, now)
        briefs: list[Brief | None] = incidents.observe(latest)
    else:
        briefs = [None] * len(latest)
    parts: list[Notification | AlikeMembers] = []  # the messages, members alike as one
    made, told = changed.append, parts.extend
    for signal, brief in zip(latest, briefs, strict=True):
        if alike is not None and (found := alike.decided_for(signal, brief)) is not None:
            incident, sent = found
            made(incident)
            if type(sent) is list:  # the shape's first: decided on its own
                told(sent)
            elif not groups_remind:
                told(sent.told(incident))
            elif sent.sent:  # left for grouping, which folds a storm's members into its group
                last = parts[-1] if parts else None
                if type(last) is AlikeMembers and last.model is sent:
                    last.members.append(incident)
                else:
                    parts.append(AlikeMembers(sent, [incident]))
            continue
        current = incidents.get(signal.key)
        if signal.firing:
            updated, sent = _on_failure(current, signal, policy_of(current)(signal.severity), now)
        elif current is not None and current.state != State.resolved:
            updated, sent = _on_success(current, signal, policy_for(current.severity), now)
        else:
            continue
        if updated is current:
            continue
        changed.append(updated)
        parts.extend(sent)
    if any(type(part) is AlikeMembers for part in parts):
        return Evaluation(changed, Told(parts))
    return Evaluation(changed, parts)  # type: ignore[arg-type]  # (messages only)


class _Alike:
    """`_on_failure` of failures whose record the engine knows without reading one — pending
    records known from their briefs (`Records.observed`), and keys with no unresolved record
    (a new incident) — decided once per shape and the others of that shape made like it. The
    shape is all the engine reads of such a record besides its key and signal: severity,
    source, onset, counts (none for a new one). A storm's opening run is tens of thousands of
    these, alike but for the key and the labels."""

    def __init__(self, records: Records, policy_for: PolicyFor, now: datetime):
        self.records = records
        self.policy_for = policy_for
        self.now = now
        self.decided: dict[tuple[Any, ...], _Model] = {}
        self.known = records.known()
        # a storm's alerts share their onset: `onset_of` once per instant the source gives
        self.onsets: dict[tuple[datetime, int] | None, datetime] = {}

    def decided_for(
        self, signal: Signal, brief: Brief | None
    ) -> tuple[Incident, list[Notification] | _Model] | None:
        """What `_on_failure` makes of `signal`'s record, if it is known without reading it
        (`brief`: its brief if its record is known from it, `Records.observe`): the record, and
        its messages — those of the shape's decision (`_Model.told`) but for the shape's first."""
        if brief is not None:
            shape = (signal.severity, brief.source, brief.onset, brief.failures, brief.successes)
        elif signal.firing and signal.key not in self.known:
            # (since, its fold): one zone's repeated hour is == and hashes alike, an hour apart
            since = signal.since
            at = (since, since.fold) if since is not None else None
            onset = self.onsets.get(at)
            if onset is None:
                onset = self.onsets[at] = onset_of(signal, self.now)
            shape = (signal.severity, signal.source, onset, None, None)
        else:
            return None
        model = self.decided.get(shape)
        if model is None:
            # a pending record is never left as it is (`_unchanged` asks for an open one)
            current = None if brief is None else self.records[signal.key]
            policy = self.policy_for(signal.severity)
            found = _on_failure(current, signal, policy, self.now)
            self.decided[shape] = _Model.of(*found)
            return found
        return rekeyed(model.incident, signal.key, signal), model


def onset_of(signal: Signal, now: datetime) -> datetime:
    """When a new incident's failure began: the source's word for it, but never later than now —
    an onset ahead (a source's clock running fast) would hold back every escalation step
    counted from it, the page too."""
    since = signal.since or now
    if (since.tzinfo is None) == (now.tzinfo is None):
        since = min(since, now)
    return _in_utc(since)


def _in_utc(moment: datetime) -> datetime:
    """An onset as the store's brief of it keeps it: one instant written with two offsets
    (Alertmanagers in two time zones) is one onset — one shape, one notification id."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC)


class _Model(NamedTuple):
    """One key's decision, to be made like it for another key of the same shape."""

    incident: Incident
    sent: list[tuple[Notification, str]]  # each with its id after the key (the id's head)
    about_it: bool  # every message's snapshot is `incident` itself

    @classmethod
    def of(cls, incident: Incident, sent: list[Notification]) -> _Model:
        head = len(incident.key)
        about_it = all(n.incident is incident for n in sent)
        return cls(incident, [(n, n.id[head:]) for n in sent], about_it)

    def told(self, incident: Incident) -> list[Notification]:
        """This decision's messages for `incident`, the record made like it (`rekeyed`)."""
        key = incident.key
        if self.about_it:
            return [retold(n, key + tail, incident) for n, tail in self.sent]
        made = {id(self.incident): incident}
        copies = []
        for n, tail in self.sent:
            snapshot = made.get(id(n.incident))
            if snapshot is None:
                snapshot = evolve(n.incident, key=key, signal=incident.signal)
                made[id(n.incident)] = snapshot
            copies.append(retold(n, key + tail, snapshot))
        return copies


class AlikeMembers(NamedTuple):
    """Records decided alike (`_Alike`), one after another: their messages are the `model`'s for
    each of them, made only when read (`Told`) — grouping takes them as one and makes none of a
    storm's, whose members it folds into the group's messages."""

    model: _Model
    members: list[Incident]

    def told(self) -> list[Notification]:
        return [n for member in self.members for n in self.model.told(member)]


class Told(Sequence[Notification]):
    """An evaluation's messages, in order, as `evaluate` leaves them when grouping is on: runs of
    members alike (`AlikeMembers`) whose messages are made, all at once, only when something
    reads them as messages; the grouping pass reads `parts` and makes only those it passes on.
    Added to a list (a pass's messages before or after), it stays so."""

    def __init__(self, parts: list[Notification | AlikeMembers]):
        self.parts = parts
        self._made: list[Notification] | None = None

    def _all(self) -> list[Notification]:
        if self._made is None:
            self._made = unfolded(self.parts)
        return self._made

    def __iter__(self) -> Iterator[Notification]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __bool__(self) -> bool:
        return bool(self.parts)  # (a run holds at least one member, its model a message)

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __add__(self, other: Iterable[Notification]) -> Told:
        return Told([*self.parts, *parts_of(other)])

    def __radd__(self, other: Iterable[Notification]) -> Told:
        return Told([*parts_of(other), *self.parts])


def parts_of(told: Iterable[Notification]) -> list[Notification | AlikeMembers]:
    """The messages as `Told.parts` holds them (a list of messages is its own)."""
    if isinstance(told, Told):
        return told.parts
    return told if isinstance(told, list) else list(told)  # type: ignore[return-value]


def unfolded(parts: Iterable[Notification | AlikeMembers]) -> list[Notification]:
    """Every message of `parts`, made."""
    made: list[Notification] = []
    for part in parts:
        if type(part) is AlikeMembers:
            made += part.told()
        else:
            made.append(part)  # type: ignore[arg-type]
    return made


def recover_unseen(
    signals: Iterable[Signal], incidents: Iterable[Incident], source: str, why: str
) -> list[Signal]:
    """Ok-signals for this source's unresolved incidents that the latest observation no longer
    mentions (a host gone from a query result), so they resolve by hysteresis like any recovery."""
    seen = {s.key for s in signals}
    return [
        replace(i.signal, firing=False, summary=why)
        for i in incidents
        if i.source == source and i.state != State.resolved and i.key not in seen
    ]


def _per_severity(policy_for: PolicyFor) -> PolicyFor:
    """`policy_for`, asked once per severity (Config.policy builds the defaults on each call,
    and a fleet-wide failure asks for every one of thousands of signals)."""
    known: dict[Severity, PolicyConfig] = {}

    def policy(severity: Severity) -> PolicyConfig:
        found = known.get(severity)
        if found is None:
            found = known[severity] = policy_for(severity)
        return found

    return policy


def _last_per_key(signals: Iterable[Signal]) -> list[Signal]:
    return list({s.key: s for s in signals}.values())


_OPEN = {state.value for state in OPEN_STATES}


def _steadiness(policy_for: PolicyFor, now: datetime) -> Callable[[Brief | None, Signal], bool]:
    """`_unchanged` on the stored brief alone, erring towards "look closer": an open failure
    observed again the same, with nothing due (operators' acts are left to the full check).
    Whether something is due is worked out once per severity, state, onset and time told: a
    storm's briefs share a handful of them."""
    quiet: dict[tuple[Severity, str, datetime, datetime | None], bool] = {}
    stamped_ahead = now + CLOCK_SKEW  # a brief stamped later than this: the clock went back

    def steady(brief: Brief | None, signal: Signal) -> bool:
        if brief is None or not signal.firing or brief.state not in _OPEN or brief.acted:
            return False
        policy = policy_for(signal.severity)
        if (
            brief.successes != 0
            or brief.failures < policy.open_after
            or brief.fingerprint != fingerprint_of(signal)
        ):
            return False
        moment = (signal.severity, brief.state, brief.onset, brief.notified_at)
        found = quiet.get(moment)
        if found is None:
            found = quiet[moment] = _nothing_due(brief, policy, now, stamped_ahead)
        return found

    return steady


def _nothing_due(brief: Brief, policy: PolicyConfig, now: datetime, ahead: datetime) -> bool:
    """No step and no reminder due, by what the brief says of its state, onset and time told;
    a brief stamped after `ahead` (now + CLOCK_SKEW: the clock went back) is left to the full
    check, which rebases the record."""
    if (brief.notified_at or brief.onset) > ahead:  # (told after the onset, if told)
        return False
    return not _step_may_be_due(brief, policy, now) and not (
        policy.repeat is not None
        and brief.notified_at is not None
        and now - brief.notified_at >= _shortest(policy.repeat)
    )


def _step_may_be_due(brief: Brief, policy: PolicyConfig, now: datetime) -> bool:
    """Whether the latest step whose time has come may not have run. Without acts an escalation
    counts from the onset: the first paging step ran iff the incident is paged, a step that
    tells Slack ran iff Slack was told since its time, the first step ran when it opened."""
    offsets, first_paging = policy.timing()
    latest = bisect.bisect_right(offsets, now - brief.onset) - 1
    if latest < 0 or (latest == 0 and first_paging != 0):
        return False
    if latest == first_paging:
        return brief.state != State.paged
    return brief.notified_at is None or brief.notified_at < brief.onset + offsets[latest]


def _shortest(repeat: timedelta | list[timedelta]) -> timedelta:
    return repeat if isinstance(repeat, timedelta) else min(repeat)


def _on_failure(
    current: Incident | None, signal: Signal, policy: PolicyConfig, now: datetime
) -> tuple[Incident, list[Notification]]:
    unresolved = current is not None and current.state != State.resolved
    if unresolved and (back := escalation.clock_back(current, now)):
        current = escalation.rebased(current, back)  # stored, so the next run counts from it
    if current is not None and _unchanged(current, signal, policy, now):
        return current, []  # the same failure observed again: nothing to store, nobody to tell
    # a deferred signal stays so: its texts are rendered when read (told, listed), and the store
    # writes them only when it does not hold them already (store.incidents.write)
    if current is None or current.state == State.resolved:
        incident = Incident(
            key=signal.key,
            source=signal.source,
            severity=signal.severity,
            state=State.pending,
            onset=onset_of(signal, now),
            changed_at=now,
            signal=signal,
            consecutive_failures=1,
        )
    else:
        incident = evolve(
            current,
            severity=signal.severity,
            changed_at=now,
            signal=signal,
            # counted only up to what opening needs, so a steady failure leaves the record alone
            consecutive_failures=min(current.consecutive_failures + 1, policy.open_after),
            consecutive_successes=0,
            recovered_at=None,
        )
    sent: list[Notification] = []
    opening = incident.state == State.pending and incident.consecutive_failures >= policy.open_after
    if opening:
        incident = evolve(incident, state=State.firing, opened_at=now)
    if not incident.is_open:
        return incident, sent
    if opening:
        stages = policy.stages()
        incident = _scheduled(escalation.opened(incident, stages), policy)
        incident, sent = _tell(incident, policy, Kind.opened, now, sent)
    silenced = incident
    incident, expired = actions.expire(incident, policy.channels(), now)
    incident, stepped = _escalate(incident, policy, now, opening)
    if silenced.acts.silenced and not incident.acts.silenced:  # ran out: a page it held goes again
        channels = [n.channel for n in expired]
        incident, again = actions.silence_ended(silenced, incident, stepped, channels, now)
        if again:
            expired, stepped = [], again
    sent += expired + stepped
    if not stepped and reminder_due(incident, policy, now):
        incident = evolve(incident, reminders=incident.reminders + 1)
        incident, sent = _tell(incident, policy, Kind.reminder, now, sent)
    return incident, sent


def _escalate(
    incident: Incident, policy: PolicyConfig, now: datetime, opening: bool
) -> tuple[Incident, list[Notification]]:
    """Run the steps that are due (an acknowledgement that timed out first lifts itself and
    starts the escalation again from the step the incident was on)."""
    stages = policy.stages()
    incident = escalation.resumed(incident, stages)
    sent: list[Notification] = []
    why = ""
    if escalation.ack_timed_out(incident, policy.ack_timeout, now) and stages:
        why = escalation.ack_timeout_reason(incident, policy.ack_timeout or timedelta(0))
        incident = escalation.restarted(escalation.ack_lifted(incident, now), stages, now, why)
        opening = False
    indexes = escalation.due(incident, stages, now)
    if indexes and not actions.holds_page(incident, policy.page_hold(), now):
        # a silence can hold the restarted step past the run its acknowledgement timed out in
        if not why and escalation.reruns(incident, indexes):
            why = incident.escalation.why
        paged_before = incident.paged_via
        incident = escalation.ran(incident, stages, indexes, now, why)
        incident = _scheduled(incident, policy)
        pagers = escalation.current_pages(incident)
        if pagers:
            incident = evolve(incident, state=State.paged)
        if why:  # only an acknowledged page is silent in PagerDuty; an unacknowledged one rings
            sent += actions.reopened(incident, paged_before, pagers, now)
        sent += _notifications(incident, pagers, Kind.paged, now)
        # a Slack-only step at 0s is the opening message itself
        later = not opening and any(stages[i].offset > timedelta(0) for i in indexes)
        if pagers or why or later:
            kind = Kind.paged if pagers else Kind.escalated
            incident, sent = _tell(incident, policy, kind, now, sent)
    return _scheduled(incident, policy), sent


def _scheduled(incident: Incident, policy: PolicyConfig) -> Incident:
    stages, hold = policy.stages(), policy.page_hold()
    restarts = policy.ack_timeout is not None
    return escalation.scheduled(incident, stages, hold, restarts, policy.repeat)


def _unchanged(current: Incident, signal: Signal, policy: PolicyConfig, now: datetime) -> bool:
    return (
        current.is_open
        and current.consecutive_successes == 0
        and current.consecutive_failures >= policy.open_after
        and not _step_due(current, policy, now)
        and not reminder_due(current, policy, now)
        and not actions.expiry_due(current, now)
        and fingerprint_of(current.signal) == fingerprint_of(signal)  # the costliest test last
    )


def _step_due(incident: Incident, policy: PolicyConfig, now: datetime) -> bool:
    stages = policy.stages()
    incident = escalation.resumed(incident, stages)
    if escalation.ack_timed_out(incident, policy.ack_timeout, now) and stages:
        return True
    return bool(escalation.due(incident, stages, now)) and not actions.holds_page(
        incident, policy.page_hold(), now
    )


def reminder_due(incident: Incident, policy: PolicyConfig, now: datetime) -> bool:
    """Whether `repeat` (its interval for the next reminder) has passed since the incident last
    told anyone, and no ack, snooze or silence holds reminders."""
    if policy.repeat is None or incident.last_notified_at is None:
        return False
    interval = escalation.reminder_interval(policy.repeat, incident.reminders)
    return now - incident.last_notified_at >= interval and not actions.holds_reminder(incident, now)


def _on_success(
    current: Incident, signal: Signal, policy: PolicyConfig, now: datetime
) -> tuple[Incident, list[Notification]]:
    if current.state == State.pending:  # never opened: clear quietly (a flap)
        return evolve(
            current, state=State.resolved, resolved_at=now, changed_at=now, recovered_at=now
        ), []
    incident = evolve(
        current,
        changed_at=now,
        consecutive_failures=0,
        consecutive_successes=current.consecutive_successes + 1,
        # the failure ended at the first passing check, not at the resolve_after-th
        recovered_at=current.recovered_at if current.consecutive_successes else now,
    )
    if incident.consecutive_successes < policy.resolve_after:
        return incident, []
    incident = evolve(
        incident,
        state=State.resolved,
        resolved_at=now,
        resolution=signal.summary,
        recovery=signal.rendered(),
    )
    sent = _notifications(incident, current.paged_via, Kind.resolved, now)
    return _tell(incident, policy, Kind.resolved, now, sent)


def _tell(
    incident: Incident,
    policy: PolicyConfig,
    kind: Kind,
    now: datetime,
    sent: list[Notification],
) -> tuple[Incident, list[Notification]]:
    channels = policy.channels()
    muted = actions.silenced_at(incident, now) and not actions.closes(incident, kind)
    if not channels or muted:  # muted: recorded, told to nobody
        return incident, sent
    incident = evolve(incident, last_notified_at=now)
    return incident, sent + _notifications(incident, channels, kind, now)


def _notifications(
    incident: Incident, channels: Iterable[str], kind: Kind, now: datetime
) -> list[Notification]:
    """Their ids name the episode as well as the onset: a re-opened incident with the onset of an
    earlier one is told (and paged) again, while replaying one evaluation queues nothing twice."""
    seq: int | str = incident.reminders if kind == Kind.reminder else 0
    esc = incident.escalation
    if kind == Kind.escalated or (kind == Kind.paged and not escalation.first_page(esc)):
        seq = f"{esc.rounds}.{esc.step}"
    head = f"{incident.key}|{incident.onset.isoformat()}|{incident.episode}|{kind}|{seq}|"
    return [
        Notification(id=head + channel, channel=channel, kind=kind, at=now, incident=incident)
        for channel in channels
    ]


def notify_channels(
    incident: Incident,
    policy: PolicyConfig,
    kind: Kind,
    now: datetime,
    channels: Iterable[str] | None = None,
) -> list[Notification]:
    """Messages of `kind` about `incident` to `channels` (default: the policy's), for the passes
    around `evaluate` (inhibition, grouping) that decide to tell someone later or differently."""
    chosen = policy.channels() if channels is None else channels
    return _notifications(incident, chosen, kind, now)


def cause_changes(
    before: Mapping[str, Incident],
    evaluation: Evaluation,
    policy_for: PolicyFor,
    now: datetime,
    *,
    sources: Collection[str],
) -> Evaluation:
    """The evaluation, plus one message per open incident whose cause changed in this run: a
    source that names the cause of a failure in its signals' `cause` label (a Zigbee broker
    refusing the login, then unreachable; Prometheus unreachable, then answering 401) passes this
    as its watch's `announce`, with the `sources` whose label that is (a series' own label
    `cause` is not). The engine keeps the latest observation; this makes sure somebody hears that
    it changed, in the incident's thread (a reminder: no page is sent again)."""
    incidents, notifications = [], list(evaluation.notifications)
    for incident in evaluation.incidents:
        if incident.source not in sources:
            incidents.append(incident)
            continue
        old = before.get(incident.key)
        was = old.signal.labels.get("cause") if old is not None else None
        cause = incident.signal.labels.get("cause")
        channels = policy_for(incident.severity).channels()
        if (
            old is None
            or not (old.is_open and incident.is_open)
            or not was
            or not cause
            or was == cause
            or not channels
            or _held(incident, now)
        ):
            incidents.append(incident)
            continue
        incident = replace(incident, last_notified_at=now)
        incidents.append(incident)
        told = replace(
            incident,
            signal=replace(
                incident.signal,
                summary=f"cause changed from {was} to {cause}: {incident.signal.summary}",
            ),
        )
        ident = f"{incident.key}|{incident.onset.isoformat()}|cause|{now.isoformat()}"
        notifications += [
            Notification(f"{ident}|{ch}", ch, Kind.reminder, now, told) for ch in channels
        ]
    return Evaluation(incidents, notifications)


def _held(incident: Incident, now: datetime) -> bool:
    """Silenced, muted by a matcher silence or window, or inhibited: told nothing new."""
    acts = incident.acts
    return (
        actions.silenced_at(incident, now)
        or acts.mute_id is not None
        or bool(incident.inhibited_by)
    )
