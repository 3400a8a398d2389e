"""Escalation steps: who is told and paged when, what an acknowledgement holds and for how long,
and reminders on a schedule that backs off. Pure: `now` is a parameter.

A policy's steps become `Stage`s, each with its delay from the start of the escalation (the
incident's onset, or the moment an acknowledgement timed out: the escalation then starts again
from the step it was on). Today's `notify` / `page` / `page_after` are the one- and two-step case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from fleet_alerting.core.channels import SLACK_CHANNELS, Destination, pager_of
from fleet_alerting.core.clock import CLOCK_SKEW
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Escalation, Incident, Page, State, evolve
from fleet_alerting.core.model import Duration, Model, positive_duration
from fleet_alerting.core.mrkdwn import MENTIONABLE

MAX_STEPS = 10
MAX_SCHEDULE = 20


def _mentionable(value: str) -> str:
    if not MENTIONABLE.fullmatch(value):
        raise ValueError("expected a Slack user group id (S…), a user id (U…, W…), here or channel")
    return value


class StepConfig(Model):
    """One escalation step: when (from the onset, or after the previous step) and to whom."""

    after: Duration | None = None  # from the onset
    after_previous: Duration | None = None  # from the previous step's time
    to: list[Destination] = Field(min_length=1, max_length=10)
    # who this step's Slack message mentions: a user group id (S…), a user id (U…, W…), here or
    # channel (in place of notify.slack.page_mention)
    mention: Annotated[str, AfterValidator(_mentionable)] | None = None

    @model_validator(mode="after")
    def _one_delay(self) -> Self:
        if (self.after is None) == (self.after_previous is None):
            raise ValueError("give one of after (from the onset) or after_previous")
        if self.mention and not any(c in SLACK_CHANNELS for c in self.to):
            raise ValueError("mention is said in Slack: add slack to `to`")
        return self


@dataclass(frozen=True)
class Stage:
    offset: timedelta  # from the start of the escalation
    told: tuple[str, ...]  # Slack channels
    pagers: tuple[str, ...]
    mention: str | None = None

    @property
    def destinations(self) -> tuple[str, ...]:
        return (*self.pagers, *self.told)


def stages_of(steps: Sequence[StepConfig]) -> tuple[Stage, ...]:
    """ValueError when a step would come before the one above it."""
    stages: list[Stage] = []
    offset = timedelta(0)
    for i, step in enumerate(steps):
        if step.after is not None:
            if step.after < offset:
                raise ValueError(f"step {i + 1} comes before step {i}: list steps in order")
            offset = step.after
        else:
            offset += step.after_previous or timedelta(0)
        told = tuple(c for c in step.to if pager_of(c) is None)
        pagers = tuple(c for c in step.to if pager_of(c) is not None)
        stages.append(Stage(offset, told, pagers, step.mention))
    return tuple(stages)


def legacy_stages(told: Sequence[str], page: Sequence[str], page_after: timedelta) -> tuple:
    """`notify` at once, `page` after `page_after`: the seed's one or two steps."""
    stages = [Stage(timedelta(0), tuple(told), ())] if told else []
    if page:
        stages.append(Stage(page_after, (), tuple(page)))
    return tuple(stages)


def _schedule(value: object) -> object:
    """One interval, or `30m, 1h, 2h, 4h, then 24h` (or a list): intervals, the last repeating."""
    if isinstance(value, str) and "," in value:
        value = [p.strip().removeprefix("then").strip() for p in value.split(",")]
    if not isinstance(value, list):
        return positive_duration(value)
    if not 1 <= len(value) <= MAX_SCHEDULE:
        raise ValueError(f"expected 1 to {MAX_SCHEDULE} intervals")
    return [positive_duration(v) for v in value]


# one interval, or a schedule of intervals whose last one repeats
Repeat = Annotated[timedelta | list[timedelta], BeforeValidator(_schedule)]


def reminder_interval(repeat: timedelta | Sequence[timedelta], reminders: int) -> timedelta:
    """The wait before reminder number `reminders + 1`: the schedule's, its last one repeating."""
    if isinstance(repeat, timedelta):
        return repeat
    return repeat[min(reminders, len(repeat) - 1)]


# --- where an incident is --------------------------------------------------------------------


def base_of(incident: Incident) -> datetime:
    return incident.escalation.base or incident.onset


def clock_back(incident: Incident, now: datetime) -> timedelta:
    """How far this machine's clock went back since it stamped the record: how far the latest
    of the instants the escalation, the reminders, an acknowledgement and a group's wait count
    from lies ahead of `now`, when further than clocks may differ (CLOCK_SKEW); else 0. (Not
    the onset: the source's word, never later than the clock read as the record began.)"""
    esc, acts = incident.escalation, incident.acts
    stamped = (esc.base, acts.acked_at, incident.last_notified_at)
    latest = max([incident.changed_at, *(t for t in stamped if t is not None)])
    return latest - now if latest - now > CLOCK_SKEW else timedelta(0)  # exact, never rounded


def rebased(incident: Incident, back: timedelta, steps_from_onset: bool = True) -> Incident:
    """The record after the clock went `back`: the escalation's steps, the reminders, an
    acknowledgement's timeout and a group's wait keep the time that had passed instead of
    waiting for the clock to catch up. The onset (in notification ids) and operators' end times
    (a silence, a snooze) stay as they are; `acts.changed_at` too (which of two writes is
    newer). `steps_from_onset`: its steps count from the onset unless `escalation.base` says
    otherwise (not a group's: it pages as its members' steps come due)."""
    esc, acts, notified_at = incident.escalation, incident.acts, incident.last_notified_at
    if acts.acked_at is not None:
        acts = evolve(acts, acked_at=acts.acked_at - back)
    if esc.base is not None or steps_from_onset:
        esc = evolve(esc, base=base_of(incident) - back)
    return evolve(
        incident,
        changed_at=incident.changed_at - back,
        last_notified_at=notified_at - back if notified_at is not None else None,
        acts=acts,
        escalation=esc,
    )


def went_back(
    before: Mapping[str, Incident], after: Iterable[Incident], now: datetime
) -> timedelta:
    """How far the clock went back, as the records `after` that the engine rebased tell it (a
    rebased record counts from `escalation.base`); 0: none was."""
    rebased = (i.key for i in after if i.escalation.base is not None and i.key in before)
    return max((clock_back(before[key], now) for key in rebased), default=timedelta(0))


def due(incident: Incident, stages: Sequence[Stage], now: datetime) -> list[int]:
    """Indexes of the steps not yet run whose time has come."""
    base = base_of(incident)
    return [
        i for i in range(incident.escalation.step, len(stages)) if base + stages[i].offset <= now
    ]


def resumed(incident: Incident, stages: Sequence[Stage]) -> Incident:
    """An open record stored before it had an escalation: on the step its state says it reached
    (paged: the first paging step; else the opening), so nothing it was told is told again."""
    esc = incident.escalation
    if esc.steps or esc.step or not stages:
        return incident
    paging = next((i for i, s in enumerate(stages) if s.pagers), None)
    if incident.paged_via and paging is not None:
        return evolve(incident, escalation=evolve(esc, step=paging + 1))
    return opened(incident, stages)


def as_before(prior: Incident | None) -> Escalation:
    """The escalation `prior` was at, or none begun."""
    return prior.escalation if prior is not None else Escalation()


def opened(incident: Incident, stages: Sequence[Stage]) -> Incident:
    """On opening: the steps that only tell Slack at once are the opening message itself."""
    step = 0
    while step < len(stages) and not stages[step].pagers and not stages[step].offset:
        step += 1
    return evolve(incident, escalation=evolve(incident.escalation, step=step))


def ran(
    incident: Incident, stages: Sequence[Stage], indexes: Sequence[int], now: datetime, why: str
) -> Incident:
    """The incident after running these steps: on the last of them, its pagers recorded."""
    esc = incident.escalation
    pagers = unique(p for i in indexes for p in stages[i].pagers)
    step = indexes[-1] + 1
    mention = next((stages[i].mention for i in reversed(indexes) if stages[i].mention), None)
    pages = esc.pages + tuple(Page(p, now, step) for p in pagers)
    escalation = evolve(esc, step=step, pages=pages, mention=mention, why=why)
    incident = evolve(incident, escalation=escalation)
    if not pagers:
        return incident
    return evolve(
        incident,
        paged_at=incident.paged_at or now,
        paged_via=unique([*incident.paged_via, *pagers]),
    )


def restarted(incident: Incident, stages: Sequence[Stage], now: datetime, why: str) -> Incident:
    """After an acknowledgement timed out (`why`): the escalation starts again from the step it
    was on (that step is due now, its later steps follow at their delays from now) — from the
    last step there is, if the policy was reloaded with fewer; from the latest step before it
    that pages, if it only told Slack (the on-call who acknowledged is paged again, as a group
    pages again the pagers of its latest paging step)."""
    esc = incident.escalation
    index = min(max(esc.step, 1), len(stages)) - 1
    if index < 0:
        return incident
    index = next((i for i in range(index, -1, -1) if stages[i].pagers), index)
    base = now - stages[index].offset
    escalation = evolve(esc, step=index, base=base, rounds=esc.rounds + 1, why=why)
    return evolve(incident, escalation=escalation)


def reruns(incident: Incident, indexes: Sequence[int]) -> bool:
    """Whether one of these steps paged before in this episode (its escalation restarted)."""
    ran_before = {p.step for p in incident.escalation.pages}
    return any(i + 1 in ran_before for i in indexes)


def ack_timed_out(incident: Incident, timeout: timedelta | None, now: datetime) -> bool:
    acked_at = incident.acts.acked_at
    return timeout is not None and acked_at is not None and now >= acked_at + timeout


def lift_timed_out_ack(
    incident: Incident, timeout: timedelta | None, now: datetime
) -> tuple[Incident, str]:
    """Once an acknowledgement is `timeout` old: the incident with it lifted (a new one is
    possible) on a new round of its escalation, and why it escalates again; else as it is, ""."""
    if timeout is None or not ack_timed_out(incident, timeout, now):
        return incident, ""
    why = ack_timeout_reason(incident, timeout)
    incident = ack_lifted(incident, now)
    esc = incident.escalation
    return evolve(incident, escalation=evolve(esc, rounds=esc.rounds + 1, why=why)), why


def ack_lifted(incident: Incident, now: datetime) -> Incident:
    """The incident with its acknowledgement lifted: a new one is possible."""
    acts = evolve(incident.acts, acked_by=None, acked_at=None, changed_at=now)
    return evolve(incident, acts=acts)


def ack_timeout_reason(incident: Incident, timeout: timedelta) -> str:
    acts = incident.acts
    when = f" at {acts.acked_at:%H:%M} UTC" if acts.acked_at else ""
    return (
        f"acknowledged by {acts.acked_by}{when}, still failing "
        f"{format_duration(timeout, exact=True)} later: escalating again"
    )


def scheduled(
    incident: Incident,
    stages: Sequence[Stage],
    ack_hold: timedelta | None,
    ack_restarts: bool,
    repeat: timedelta | Sequence[timedelta] | None = None,
) -> Incident:
    """The incident with its next step (when, to whom), what an acknowledgement does to it and
    its reminders' intervals, as the policy has them now."""
    esc = incident.escalation
    upcoming = stages[esc.step] if esc.step < len(stages) else None
    escalation = evolve(
        esc,
        steps=len(stages),
        next_at=base_of(incident) + upcoming.offset if upcoming else None,
        next_to=upcoming.destinations if upcoming else (),
        ack_hold=ack_hold,
        ack_restarts=ack_restarts,
        repeat=(repeat,) if isinstance(repeat, timedelta) else tuple(repeat or ()),
    )
    return incident if escalation == esc else evolve(incident, escalation=escalation)


def first_page(esc: Escalation) -> bool:
    """The episode's first page, the seed's only one (its notification ids are kept)."""
    return esc.rounds == 0 and all(p.step == esc.step for p in esc.pages)


# --- what operators read ---------------------------------------------------------------------


def current_pages(incident: Incident) -> tuple[str, ...]:
    """Who the step the incident is on paged, the last time it ran."""
    esc = incident.escalation
    here = [p for p in esc.pages if p.step == esc.step]
    last = max((p.at for p in here), default=None)
    return tuple(p.channel for p in here if p.at == last)


def lines(incident: Incident) -> list[str]:
    """Which step the incident is on, who was paged when, what happens next and when."""
    esc = incident.escalation
    if esc.steps == 0:  # a group incident: it pages as its members' steps come due
        return _again(incident)
    if incident.state in (State.pending, State.resolved) and esc.step == 0:
        return []
    out = [f"Escalation step {esc.step} of {esc.steps}" + (f": {esc.why}" if esc.why else "")]
    if esc.pages:
        out.append(_paged_line(esc, by_group=incident.group is not None))
    if incident.state != State.resolved:
        out.append("Next: " + _next(incident))
    return out


def _again(incident: Incident) -> list[str]:
    """A group told again because an acknowledgement timed out: why, and who was paged when."""
    esc = incident.escalation
    if not esc.why or incident.state == State.resolved:
        return []
    return [esc.why[:1].upper() + esc.why[1:], *([_paged_line(esc)] if esc.pages else [])]


def _paged_line(esc: Escalation, by_group: bool = False) -> str:
    """Who was paged when; a group's member is not paged itself: its group pages for it."""
    pages = ", ".join(f"{p.channel} {p.at:%H:%M:%S} UTC" for p in esc.pages)
    return f"Pages due: {pages} (its group pages for it)" if by_group else f"Paged: {pages}"


def _next(incident: Incident) -> str:
    esc, acts = incident.escalation, incident.acts
    if acts.silenced_by:
        until = f" until {acts.silenced_until:%H:%M:%S} UTC" if acts.silenced_until else ""
        return f"held by the silence{until}"
    upcoming = f"step {esc.step + 1} ({' + '.join(esc.next_to)})"
    if acts.acked_at is not None:
        if esc.ack_hold is None:
            return "held by the acknowledgement"
        ends = acts.acked_at + esc.ack_hold
        if esc.ack_restarts:
            return f"if still failing at {ends:%H:%M:%S} UTC, step {_restarts_at(esc)} again"
        if esc.next_at is not None:
            at = max(ends, esc.next_at)
            return f"{upcoming} at {at:%H:%M:%S} UTC (held by the acknowledgement)"
    if esc.next_at is None:
        return "no further step" + _reminders(incident)
    return f"{upcoming} at {esc.next_at:%H:%M:%S} UTC"


def _reminders(incident: Incident) -> str:
    """The reminders that follow the last step: their interval, or a backing-off schedule's
    next one."""
    repeat, notified = incident.escalation.repeat, incident.last_notified_at
    if not repeat:
        return ""
    if len(repeat) == 1:
        return f"; reminders every {format_duration(repeat[0], exact=True)}"
    if notified is None:
        return ""
    at = notified + reminder_interval(repeat, incident.reminders)
    return f"; next reminder at {at:%H:%M:%S} UTC"


def _restarts_at(esc: Escalation) -> int:
    """The step `restarted` starts again from: the one the incident is on, or the latest that
    paged before it (its pages remember their steps)."""
    paged = [p.step for p in esc.pages if p.step <= esc.step]
    return max(paged, default=max(esc.step, 1))


def unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
