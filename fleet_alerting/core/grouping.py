"""Grouping: incidents of one watch that open together are told as one message, like
Alertmanager's group_by / group_wait / group_interval.

Members are the incidents of one source with the same `group_by` label values. When at least
`min_size` of them open within `group_wait` (0: in the same run), one group incident opens
("12 failing: …, and 2 more"), stored like any incident (key `group/<source>:…`), so it has one
Slack thread and one PagerDuty incident (its key is the dedup key). The members keep their own
records and history, marked with `group`; their own messages are dropped. Later changes of the
group (members added or cleared) go out as one update per `group_interval`; the group pages when
a member's page falls due, and resolves when its last member does. Fewer members are told one by
one, as without grouping.

Operators act on the group as on one incident, and it answers as one would: an acknowledgement
that times out (`ack_timeout`) while a member still fails and no silence holds the group pages the
pagers of the step the group is on again (its later steps follow at their delays from there), a
silence that runs out is said once, and a silence or window muting every member mutes the group
(said once as it begins and as the last silence holding the group ends). It reminds on its own
clock, `repeat` after its last message, as one incident does (its members' reminders are dropped).

`bound` caps the messages of one run per channel: the rest become one storm summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache
from itertools import islice
from typing import Any, NamedTuple, TypeVar

from pydantic import Field

from fleet_alerting.core.actions import (
    PAGED_AGAIN,
    closing_words,
    expire,
    expiry_due,
    holds_page,
    notification,
    paged_again,
    reopened,
    silenced_at,
)
from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.escalation import (
    Stage,
    ack_timed_out,
    clock_back,
    current_pages,
    lift_timed_out_ack,
    rebased,
    unique,
)
from fleet_alerting.core.fleet import signal_labels
from fleet_alerting.core.incidents import (
    GROUP_PREFIX,
    Brief,
    Incident,
    Kind,
    Notification,
    Overlay,
    Page,
    State,
    glance,
    grouped_in,
)
from fleet_alerting.core.inhibition import INHIBITED_BY, INHIBITION_ENDED
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.model import Duration, Model
from fleet_alerting.core.policy import (
    AlikeMembers,
    Evaluation,
    PolicyFor,
    notify_channels,
    parts_of,
    reminder_due,
    unfolded,
)
from fleet_alerting.core.signals import Severity, Signal

PREFIX = GROUP_PREFIX
STORM = "storm"
# a group's silence that ended this long before a run is lifted without a word: the record was
# stored by code that never lifted a group's silence (or the watch was down that long)
OLD_NEWS = timedelta(hours=1)


class GroupingConfig(Model):
    enabled: bool = True
    group_by: list[str] = ["severity"]  # within one source (one watch)
    # a source's own group_by: Zigbee checks per kind, Zigbee devices per coordinator
    by_source: dict[str, list[str]] = {
        "zigbee": ["severity", "check"],
        "zigbee-device": ["severity", "coordinator"],
        "alertmanager": ["severity", "alertname"],
    }
    # told one by one: Alertmanager groups its own alerts, and each escalation has its thread
    ungrouped: list[str] = ["alertmanager"]
    # ...unless at least this many of one group open in one run: a storm is one group message
    # and one page, not one each
    ungrouped_storm: int = Field(20, ge=2)
    group_wait: Duration = timedelta(0)  # 0: members opening in the same run
    group_interval: Duration = timedelta(minutes=5)  # at most one update per group this often
    min_size: int = Field(2, ge=1)  # fewer members opening together are told one by one
    max_listed: int = Field(10, ge=1)  # then "and N more"
    max_messages_per_run: int = Field(50, ge=2)  # per channel, then one storm summary


def group_key(incident: Incident, config: GroupingConfig) -> str:
    labels = signal_labels(incident.source, incident.severity, incident.signal.labels)
    group_by = config.by_source.get(incident.source, config.group_by)
    return incident_key(PREFIX + incident.source, {k: labels.get(k, "") for k in group_by})


def is_group(incident: Incident | Brief) -> bool:
    return incident.source.startswith(PREFIX)


@dataclass
class _Batch:
    """What happened to one group's members in this run."""

    opened: dict[str, Incident] = field(default_factory=dict)  # by key, in order
    paged: bool = False
    pagers: set[str] = field(default_factory=set)  # where members' pages would have gone
    muted: Incident | None = None  # a member a silence or window began to mute
    unmuted: list[str] = field(default_factory=list)  # mutes that ended on members (as told)
    # a member's line as its message worded it ("… (was muted by …, which has ended)") → as its
    # record has it: the group's record keeps the latter, so a later message (its resolve) does
    # not say again what was news only once
    worded: dict[str, str] = field(default_factory=dict)
    uninhibited: list[str] = field(default_factory=list)  # causes that cleared on told members


def group(
    evaluation: Evaluation,
    before: Mapping[str, Incident],
    config: GroupingConfig,
    policy_for: PolicyFor,
    own_sources: set[str],
    now: datetime,
) -> Evaluation:
    if not config.enabled:
        return evaluation
    changed = {i.key: i for i in evaluation.incidents}
    after = Overlay(before, changed)
    groups = {
        key: after[key]
        # a group's key is its source's (`group_key`): the members' records are not looked at
        for key, seen in ((key, glance(after, key)) for key in after if key.startswith(PREFIX))
        if is_group(seen)
        and seen.state != State.resolved
        and seen.source[len(PREFIX) :] in own_sources
    }
    batches: dict[str, _Batch] = {}
    # messages, and members alike whose messages are made only if they go out (`unfolded`)
    passed: list[Notification | AlikeMembers] = []
    routed: dict[str, list[Notification | AlikeMembers]] = {}  # group key -> members' taken over
    # ... of them, those that are not a member's opening (each of those is a member's)
    others: dict[str, list[Notification]] = {}
    keys: dict[str, str] = {}  # member key -> group key
    key_of = _group_keys(config)

    parts = parts_of(evaluation.notifications)  # members alike as one: their messages unmade
    storms = _storms(parts, changed, config, key_of, keys)
    ungrouped = set(config.ungrouped)

    def route(member: Incident) -> str | None:
        """The group key of `member`'s messages (None: they pass on as they are)."""
        source, key, joined = member.source, member.key, member.group
        if source.startswith(PREFIX) or source == STORM:
            return None
        gk = joined or keys.get(key) or key_of(member)
        if joined is None and source in ungrouped and gk not in storms:
            return None
        keys[key] = gk
        return gk

    routed_key: str | None = None  # a changed record's messages come one after another
    opened = Kind.opened
    for n in parts:
        if type(n) is AlikeMembers:
            _route_alike(n, changed, route, batches, passed, routed, others)
            routed_key = None
            continue
        if n.incident.key != routed_key:
            record = changed.get(n.incident.key)
            member = record or n.incident
            gk = route(member)
            routed_key = None if record is None else n.incident.key
            if gk is not None and gk not in batches:
                batches[gk], routed[gk], others[gk] = _Batch(), [], []
            batch, taken = (None, passed) if gk is None else (batches[gk], routed[gk])
        taken.append(n)
        if batch is None:
            continue
        if n.kind != opened:
            others[gk].append(n)
        elif member.key not in batch.opened:
            # the record, with the message's wording (e.g. "was inhibited by …")
            same = n.incident.signal is member.signal
            batch.opened[member.key] = member if same else replace(member, signal=n.incident.signal)
            if not same and n.incident.signal.summary != member.signal.summary:
                batch.worded[n.incident.signal.summary] = member.signal.summary
    out: list[Notification | AlikeMembers] = []
    for gk in [*batches, *(k for k in groups if k not in batches)]:  # messages keep order
        batch = batches.get(gk, _Batch())
        current = groups.get(gk)
        if current is None:
            joining = [m for m in batch.opened.values() if m.group is None]
            if len(joining) < config.min_size and config.group_wait <= timedelta(0):
                out += routed.get(gk, [])  # too few: told one by one
                continue
            if not joining:
                out += routed.get(gk, [])  # a member of a closed group: alone again
                continue
            current = _new_group(gk, joining, now)
        others_of = others.get(gk, [])
        mine: set[str] = set()
        if others_of:  # (a storm's opening sends its members' openings alone)
            mine = set(current.members) | {
                m.key for m in batch.opened.values() if m.group in (None, gk)
            }
        for n in others_of:  # a member's opening is its batch's, so one of `mine`
            if n.incident.key not in mine:
                out.append(n)  # not a member: told on its own, and its page is not the group's
            elif n.kind == Kind.silence_expired or n.marked(PAGED_AGAIN):
                batch.unmuted += _mute_ended(before, n.incident.key)
            elif n.marked(INHIBITION_ENDED):
                cause = glance(before, n.incident.key).inhibited_by
                batch.uninhibited += [cause] if cause else []
            elif n.kind == Kind.paged:
                batch.paged = True
                if pager_of(n.channel) is not None:
                    batch.pagers.add(n.channel)
            elif n.kind == Kind.muted and n.incident.acts.mute_id is not None:
                batch.muted = n.incident
        members = dict.fromkeys(current.members)
        joined = []  # (unresolved: looked at as they are marked, not looked up again)
        for m in batch.opened.values():
            if m.key not in members:
                members[m.key] = None
                marked = changed[m.key] = grouped_in(changed.get(m.key, m), gk)
                if marked.state != State.resolved:
                    joined.append(m.key)
        # the ones joining by key: their messages came in the order the store listed incidents
        members = dict.fromkeys([*after.unresolved(current.members), *sorted(joined)])
        view = Overlay(after, batch.opened)
        g, sent = _advance(
            replace(current, members=tuple(members)), view, batch, config, policy_for, now
        )
        g = _as_recorded(g, batch.worded)
        if batch.uninhibited:
            channels = policy_for(g.severity).channels()
            g, sent = _uninhibited(g, sent, unique(batch.uninhibited), view, channels, now)
        if g.state == State.resolved and current.state == State.pending:
            # the wait ended with too few members: tell them one by one after all
            for key in members:
                m = replace(changed.get(key, after[key]), group=None)
                changed[key] = m
                if m.acts.mute_id is not None or silenced_at(m, now):
                    continue  # muted: told when its mute ends (core.muting)
                policy = policy_for(m.severity)
                if m.is_open:
                    sent += notify_channels(m, policy, Kind.opened, now)
                if m.state == State.paged:  # its page came due during the wait
                    sent += notify_channels(m, policy, Kind.paged, now, m.paged_via)
                    sent += notify_channels(m, policy, Kind.paged, now)
        if g != groups.get(gk):
            changed[gk] = g
        out += sent
    return Evaluation(list(changed.values()), unfolded([*passed, *out]))


def _route_alike(
    alike: AlikeMembers,
    changed: Mapping[str, Incident],
    route: Callable[[Incident], str | None],
    batches: dict[str, _Batch],
    passed: list[Notification | AlikeMembers],
    routed: dict[str, list[Notification | AlikeMembers]],
    others: dict[str, list[Notification]],
) -> None:
    """`group`'s walk over the messages, for members decided alike (policy.AlikeMembers) — each
    member routed and its opening marked in its group's batch, its messages taken as a run of
    the members routed alike one after another, made only if they pass on. Of its other
    messages, a page marks the batch paged as `group` marks it; any other is made for `group`
    to read."""
    model, members = alike
    opens = any(n.kind == Kind.opened for n, _tail in model.sent)
    besides = any(n.kind != Kind.opened for n, _tail in model.sent)
    pages, other = _besides_opening(model.sent) if opens else (set(), True)
    taken: list[Notification | AlikeMembers] | None = None
    start = 0
    for at, made in enumerate(members):
        member = changed.get(made.key) or made
        gk = route(member)
        if gk is not None and gk not in batches:
            batches[gk], routed[gk], others[gk] = _Batch(), [], []
        goes = passed if gk is None else routed[gk]
        if goes is not taken:
            if taken is not None:
                taken.append(AlikeMembers(model, members[start:at]))
            taken, start = goes, at
        if gk is None:
            continue
        batch = batches[gk]
        if opens and member.key not in batch.opened:
            # the record, with the message's wording (its messages carry `made`'s signal)
            same = made.signal is member.signal
            batch.opened[member.key] = member if same else replace(member, signal=made.signal)
            if not same and made.signal.summary != member.signal.summary:
                batch.worded[made.signal.summary] = member.signal.summary
        # a member that opens is one of its group's: its pages are the group's (as `group` reads)
        if not besides:
            continue
        if other:
            others[gk] += [n for n in model.told(made) if n.kind != Kind.opened]
        elif pages is not None:
            batch.paged = True
            batch.pagers |= pages
    if taken is not None:
        taken.append(AlikeMembers(model, members[start:]))


def _besides_opening(sent: Sequence[tuple[Notification, str]]) -> tuple[set[str] | None, bool]:
    """What a member's messages besides its opening (each with its id after the key) tell its
    group, if `group` needs none of them made: the pagers they page (None: they page nothing),
    and whether some must be made after all (a kind or an id `group` reads one by one)."""
    pages: set[str] | None = None
    for n, tail in sent:
        if n.kind == Kind.opened:
            continue
        plain = tail.startswith("|") and PAGED_AGAIN not in tail and INHIBITION_ENDED not in tail
        if not plain or n.kind not in (Kind.paged, Kind.escalated, Kind.reminder):
            return None, True
        if n.kind == Kind.paged:
            pages = pages or set()
            pages |= {n.channel} if pager_of(n.channel) is not None else set()
    return pages, False


def _group_keys(config: GroupingConfig) -> Callable[[Incident], str]:
    """`group_key`, memoized on what it reads: a storm's members fall into a handful of groups."""
    known: dict[tuple[str, ...], str] = {}  # source, severity and the values read
    by_source, by_default = config.by_source, config.group_by

    def key_of(incident: Incident) -> str:
        get, source = incident.signal.labels.get, incident.source
        group_by = by_source.get(source, by_default)
        if len(group_by) == 1:  # the usual: one label (a storm's members ask this each)
            read = (source, incident.severity, get(group_by[0], ""))
        else:
            read = (source, incident.severity, *[get(k, "") for k in group_by])
        gk = known.get(read)
        if gk is None:
            gk = known[read] = group_key(incident, config)
        return gk

    return key_of


def _storms(
    told: Iterable[Notification | AlikeMembers],
    changed: Mapping[str, Incident],
    config: GroupingConfig,
    key_of: Callable[[Incident], str],
    keys: dict[str, str],
) -> set[str]:
    """The groups of `ungrouped` sources of which at least `ungrouped_storm` members open in this
    run (their group keys are noted in `keys`)."""
    opening: dict[str, set[str]] = {}
    ungrouped = set(config.ungrouped)
    opened, counted = Kind.opened, None  # a member's messages come one after another
    for n in _openings(told, ungrouped):
        if n.kind != opened or n.incident.source not in ungrouped or n.incident.key == counted:
            continue  # a record's source is its key's for good: the record is not looked up
        member = changed.get(n.incident.key) or n.incident
        if member.group is None:
            counted = member.key
            gk = keys.get(member.key) or key_of(member)
            keys[member.key] = gk
            if gk in opening:
                opening[gk].add(member.key)
            else:
                opening[gk] = {member.key}
    return {gk for gk, members in opening.items() if len(members) >= config.ungrouped_storm}


def _openings(
    told: Iterable[Notification | AlikeMembers], ungrouped: set[str]
) -> Iterator[Notification | _Opening]:
    """The messages, each run of members alike (policy.AlikeMembers) as one opening per member
    of an `ungrouped` source (what `_storms` reads of them), none of any other."""
    for n in told:
        if type(n) is not AlikeMembers:
            yield n  # type: ignore[misc]
        elif n.model.incident.source in ungrouped and any(
            m.kind == Kind.opened for m, _tail in n.model.sent
        ):
            yield from (_Opening(member) for member in n.members)


class _Opening(NamedTuple):
    """A member's opening, as `_storms` reads a message (its kind and what it is about)."""

    incident: Incident
    kind: Kind = Kind.opened


def _new_group(gk: str, members: Sequence[Incident], now: datetime) -> Incident:
    first = members[0]
    return Incident(
        key=gk,
        source=PREFIX + first.source,
        severity=first.severity,
        state=State.pending,
        onset=min(m.onset for m in members),
        changed_at=now,
        signal=Signal(
            key=gk, source=PREFIX + first.source, firing=True, severity=first.severity, summary=""
        ),
    )


class _Members(Sequence[Incident]):
    """A group's members, read in full only when a message lists them (in steady state, never)."""

    def __init__(self, incidents: Mapping[str, Incident], keys: Sequence[str]):
        self._incidents = incidents
        self._keys = keys
        self._read: list[Incident] | None = None

    def _all(self) -> list[Incident]:
        if self._read is None:
            incidents = self._incidents
            if isinstance(incidents, Overlay):
                incidents.preload(self._keys)
                changed = incidents.changed  # (an Incident is never false)
                self._read = [changed.get(k) or incidents[k] for k in self._keys]
            else:
                self._read = [incidents[k] for k in self._keys]
        return self._read

    @property
    def keys(self) -> Sequence[str]:
        """The members' keys, in order (their records are not read for these)."""
        return self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __iter__(self) -> Iterator[Incident]:
        return iter(self._all())


def _advance(
    g: Incident,
    after: Mapping[str, Incident],
    batch: _Batch,
    config: GroupingConfig,
    policy_for: PolicyFor,
    now: datetime,
) -> tuple[Incident, list[Notification]]:
    policy = policy_for(g.severity)
    if back := clock_back(g, now):  # stamped before the clock went back: keeps what had passed
        g = rebased(g, back, steps_from_onset=False)
    if not g.members:
        if g.state == State.pending:
            return replace(g, state=State.resolved, resolved_at=now, changed_at=now), []
        cleared = f"all {len(g.members_told)} members cleared"
        g = replace(g, state=State.resolved, resolved_at=now, changed_at=now, resolution=cleared)
        sent = notify_channels(g, policy, Kind.resolved, now)
        sent += notify_channels(g, policy, Kind.resolved, now, g.paged_via)
        return g, sent
    members = _Members(after, g.members)  # read only for a message
    why = ""  # why an acknowledgement that timed out was lifted
    restart_at = now  # when the escalation starts again after an acknowledgement timed out
    slack_restart = False  # a group that paged nobody, its acknowledgement timed out

    @cache
    def failing() -> bool:  # as one incident: said and paged again only while it fails
        return any(_failing(after, key) for key in g.members)

    @cache
    def telling() -> bool:  # a member failing that no inhibition holds (one inhibited tells nobody)
        return any(
            _failing(after, key) and glance(after, key).inhibited_by is None for key in g.members
        )

    if g.state == State.pending:
        if now - g.changed_at < config.group_wait:  # changed_at: when the wait began
            return replace(g, signal=_summary(g, members, config, set())), []
        if len(members) < config.min_size:
            return replace(g, state=State.resolved, resolved_at=now, changed_at=now), []
        if _all_muted(after, g.members):
            return g, []  # it waits on: opened once a mute ends, as a muted incident is told
        g = replace(g, state=State.firing, opened_at=now, changed_at=now, members_told=g.members)
        # as one incident's: a step due as its members opened is the opening itself; one due since
        # (while a mute held them, or the group waited) is said with it
        since = min((m.opened_at or now for m in members), default=now)
        g = _slack_scheduled(g, policy.stages(), since)
        g = replace(g, signal=_summary(g, members, config, set(g.members)), last_notified_at=now)
        sent = notify_channels(g, policy, Kind.opened, now)
        paged = State.paged
        batch.paged |= any(m.state == paged for m in members)
        # pages the members sent while it waited: steps overdue as it opens, as one incident's
        batch.pagers |= {p for m in members for p in m.paged_via if pager_of(p) is not None}
    else:
        if g.escalation.next_at is None:  # none left, or stored before groups kept it
            g = _slack_scheduled(g, policy.stages(), now, rerun=True)
        # lifted before a mute's end pages again what the mute acknowledged, that page included
        if ack_timed_out(g, policy.ack_timeout, now) and telling():
            # as one incident's: from the first run that finds it timed out with a member failing
            # (one inhibited pages nobody: paged again once its inhibition ends)
            g, why = lift_timed_out_ack(g, policy.ack_timeout, now)
            slack_restart = g.state != State.paged
        elif failing() and (owed := _owed_restart(g, policy.stages())) is not None:
            why, restart_at = g.escalation.why, owed
        g, sent = _mute_turns(g, after, batch, policy.channels(), telling, now)
        # as one incident's steps telling Slack; under a mute still holding it, its restart is
        # held back with the messages it drops (held_back): its escalation goes on from there
        if slack_restart and g.acts.mute_id is None:
            g = _slack_restarted(g, policy.stages(), now)
    # an acknowledgement that timed out: the pagers of the step the group is on, paged again
    # (a group paged before its pages were recorded per step: those it paged)
    again = (current_pages(g) or g.paged_via) if why and g.state == State.paged else ()
    if again:  # as one incident's, from its latest step (whose steps run on under a mute)
        muted = g.acts.mute_id is not None
        ran = (p for key in g.members if muted and key in after for p in _ran_on(after[key], now))
        again = _latest_step(unique([*again, *ran]), policy.stages()) or again
        g = _restarted(g, again, policy.stages(), restart_at)
    pagers, later = _pagers_due(g, batch, policy, now)
    slack_due = g.escalation.next_at is not None and g.escalation.next_at <= now
    held = holds_page(g, policy.page_hold(), now) or g.acts.mute_id is not None
    held = held or (bool(pagers) and not failing())  # as one incident: no step while it passes
    if held:  # a timed-out acknowledgement's page is owed until the silence or mute ends
        why, again = "", ()
    if later != g.escalation.next_to:
        g = replace(g, escalation=replace(g.escalation, next_to=later))
    if pagers and held:  # owed: paged once the ack's hold or the silence ends
        g = replace(g, escalation=replace(g.escalation, next_to=unique([*pagers, *later])))
    elif pagers or again:
        paged_before, paging = g.paged_via, unique([*again, *pagers])
        g = _paged(g, paging, now, why, _mention_of(paging, policy.stages()))
        if slack_due:  # a step only telling Slack, due with the page: said by the page
            g = _slack_scheduled(g, policy.stages(), now)
        g = replace(g, signal=_summary(g, members, config, set(g.members_told)))
        resent = {n.channel for n in sent if n.kind == Kind.resolved}  # as the mute ended
        sent += reopened(g, paged_before, [p for p in again if p not in resent], now)
        sent += notify_channels(g, policy, Kind.paged, now, [p for p in paging if p not in resent])
        sent += notify_channels(g, policy, Kind.paged, now)
        return replace(g, last_notified_at=now, members_told=g.members), sent
    elif why:  # nobody to page: the thread hears that it escalates again
        sent += notify_channels(g, policy, Kind.escalated, now)
        g = replace(g, last_notified_at=now)
    muted = g.acts.mute_id is not None
    unheld = not muted and not holds_page(g, policy.page_hold(), now)
    if slack_due and unheld and failing() and (why or telling()):
        # as one incident's steps: held by an ack, silence, mute or inhibition (said as it
        # ends), none while every member passes; said with "escalating again"
        say = not why
        g, told = _slack_step(g, policy.stages(), policy.channels() if say else (), now)
        sent += told
    if sent:
        return g, sent
    due = g.last_notified_at is None or now - g.last_notified_at >= config.group_interval
    joined_or_left = due and set(g.members) != set(g.members_told)
    # on the group's own clock, as one incident's: `repeat` after its last message (a page again
    # included), not on its members'; their reminders are dropped
    reminder = g.acts.mute_id is None and reminder_due(g, policy, now) and telling()
    if not silenced_at(g, now) and (joined_or_left or reminder):
        told = set(g.members_told)
        # an update of who fails takes no slot of the reminder schedule (its id names the moment)
        g = replace(g, reminders=g.reminders + reminder, last_notified_at=now, changed_at=now)
        g = replace(g, signal=_summary(g, members, config, told), members_told=g.members)
        if reminder:
            return g, notify_channels(g, policy, Kind.reminder, now)
        return g, [notification(g, c, Kind.reminder, now) for c in policy.channels()]
    return g, []


def _mute_turns(
    g: Incident,
    incidents: Mapping[str, Incident],
    batch: _Batch,
    channels: Sequence[str],
    failing: Callable[[], bool],
    now: datetime,
) -> tuple[Incident, list[Notification]]:
    """The group's own silence running out, and a silence or window that mutes every member of a
    told group muting the group, as they would one incident: a mute is said once to its channels
    and pager as it begins (the page acknowledged); the end of the last silence holding the group
    is said once, on members still failing (a page a mute held resolved and paged again). A mute
    that ends while the group's own silence holds, or while every member passes, is kept until
    that silence ends (or is lifted) and a member fails."""
    ran_out = expiry_due(g, now)
    silenced_by, until = g.acts.silenced_by, g.acts.silenced_until
    # else lifted unsaid, unless the group kept it past its end while every member passed
    news = ran_out and until is not None and (now - until < OLD_NEWS or g.changed_at >= until)
    silenced, g = g, expire(g, (), now)[0]  # said below, with what else ended
    if g.acts.mute_id is None:
        if batch.muted is not None and _all_muted(incidents, g.members):
            return _muted(g, batch.muted, channels, now)
        if not news:
            return g, []
        if not failing():  # as one incident's: said once a member fails again, if one does
            kept = silenced if silenced.changed_at >= until else replace(silenced, changed_at=now)
            return kept, []  # its record written once after the end: not old news however late
        g = replace(g, last_notified_at=now)
        told = [notification(g, c, Kind.silence_expired, now) for c in channels]
        return g, paged_again(g, silenced, now) + told  # a page the silence acknowledged
    joined = next((m for m in batch.opened.values() if m.acts.mute_id is None), None)
    if silenced_at(g, now):  # the mute is kept: looked at again once the silence ends
        return (_lapsed(g, now) if batch.unmuted or joined else g), []
    ended = [f"silenced by {silenced_by}"] if news else []
    if batch.unmuted:
        ended += unique(batch.unmuted)
    elif joined is not None:
        muted_by = g.acts.muted_by or "muted"
        return _unmuted(
            g,
            f"no longer {muted_by}: it does not cover {joined.signal.summary}",
            channels,
            failing(),
            now,
        )
    elif not failing() or not _lapsed_at(g, now) or _all_muted(incidents, g.members):
        return g, []  # the mute holds, or it ended while every member passes: said once one fails
    elif _mutes_any(incidents, g.members, g.acts.mute_id):  # a member it does not cover joined
        lifted = f"no longer {g.acts.muted_by or 'muted'}: it does not cover every member"
        if ended:
            lifted = f"was {ended[0]}, which has ended; {lifted}"
        return _unmuted(g, lifted, channels, failing(), now)
    else:
        ended.append(g.acts.muted_by or "a mute")  # it ended while the group was silenced or passed
    which = "which have ended" if len(ended) > 1 else "which has ended"
    return _unmuted(g, f"was {' and '.join(ended)}, {which}", channels, failing(), now)


def _muted(
    g: Incident, member: Incident, channels: Sequence[str], now: datetime
) -> tuple[Incident, list[Notification]]:
    mute = member.acts
    acts = replace(
        g.acts, mute_id=mute.mute_id, muted_by=mute.muted_by, muted_until=mute.muted_until
    )
    muted = replace(g, acts=acts)
    return muted, closing_words(muted, g, channels, now)


def _unmuted(
    g: Incident, why: str, channels: Sequence[str], failing: bool, now: datetime
) -> tuple[Incident, list[Notification]]:
    """The group released from its mute (`why`: as told), said once while a member still fails."""
    released = replace(g, acts=replace(g.acts, mute_id=None, muted_by=None, muted_until=None))
    if not failing:
        return _lapsed(g, now), []  # kept (its page acknowledged): paged again once one fails
    note = f"{g.signal.summary} ({why})"
    snapshot = replace(released, signal=replace(released.signal, summary=note))
    told = [notification(snapshot, c, Kind.silence_expired, now) for c in channels]
    return replace(released, last_notified_at=now), paged_again(snapshot, g, now) + told


def _lapsed(g: Incident, now: datetime) -> Incident:
    """The group's mute marked as ended by `now` though kept (see `_lapsed_at`)."""
    until = g.acts.muted_until
    return (
        g
        if until is not None and until <= now
        else replace(g, acts=replace(g.acts, muted_until=now))
    )


def _lapsed_at(g: Incident, now: datetime) -> bool:
    """Whether the group's mute may have ended (only then are its members' records read)."""
    return g.acts.muted_until is None or g.acts.muted_until <= now


def _as_recorded(g: Incident, worded: Mapping[str, str]) -> Incident:
    """The group's record with its members' lines as their records have them (its messages keep
    the words they were told with)."""
    summary = g.signal.summary
    for said, recorded in worded.items():
        summary = summary.replace(said, recorded)
    return (
        g if summary == g.signal.summary else replace(g, signal=replace(g.signal, summary=summary))
    )


def _uninhibited(
    g: Incident,
    sent: list[Notification],
    causes: Sequence[str],
    incidents: Mapping[str, Incident],
    channels: Sequence[str],
    now: datetime,
) -> tuple[Incident, list[Notification]]:
    """Members told before an inhibition held them, released still failing: the group says so
    once ("was inhibited by …"), as one incident would — in its own Slack message of this run,
    else in a reminder (the next counts from it)."""
    quiet = g.acts.mute_id is not None or silenced_at(g, now)
    if not g.is_open or quiet or not any(_failing(incidents, key) for key in g.members):
        return g, sent
    note = f"(was {INHIBITED_BY} {', '.join(causes)}, which has cleared)"

    def noted(record: Incident) -> Incident:
        summary = f"{record.signal.summary} {note}"
        return replace(record, signal=replace(record.signal, summary=summary))

    if any(n.channel in SLACK_CHANNELS for n in sent):
        return g, [
            replace(n, incident=noted(n.incident)) if n.channel in SLACK_CHANNELS else n
            for n in sent
        ]
    said = [notification(noted(g), c, Kind.reminder, now) for c in channels]
    return (replace(g, last_notified_at=now) if said else g), sent + said


def _mute_ended(before: Mapping[str, Incident], key: str) -> list[str]:
    """The mute that ended on member `key` this run, as told (none: its own silence ended)."""
    prior = before.get(key)
    if prior is None or prior.acts.mute_id is None:
        return []
    return [prior.acts.muted_by or "a mute"]


def _failing(incidents: Mapping[str, Incident], key: str) -> bool:
    seen = glance(incidents, key)
    return (seen.successes if isinstance(seen, Brief) else seen.consecutive_successes) == 0


def _all_muted(incidents: Mapping[str, Incident], keys: Iterable[str]) -> bool:
    """Whether a silence or window mutes each of `keys` (a brief saying nobody acted on one
    answers without reading its record)."""
    return all(_mute_of(incidents, key) is not None for key in keys)


def _mutes_any(incidents: Mapping[str, Incident], keys: Iterable[str], mute_id: str | None) -> bool:
    """Whether the mute `mute_id` still mutes one of `keys` (read only as a group is released)."""
    return any(_mute_of(incidents, key) == mute_id for key in keys)


def _mute_of(incidents: Mapping[str, Incident], key: str) -> str | None:
    """What mutes member `key` (a brief saying nobody acted on it answers without its record)."""
    seen = glance(incidents, key)
    return None if isinstance(seen, Brief) and not seen.acted else incidents[key].acts.mute_id


def _pagers_due(
    g: Incident, batch: _Batch, policy: Any, now: datetime
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Whom the group pages now, none it paged already: its policy's first pagers when a member's
    page came due, any pager a member's later escalation step reaches, and those owed from while
    an operator's ack or silence held the group's page (`escalation.next_to`) — and whom later:
    once an acknowledgement timed out, a pager's step comes at its delay from the step paged
    again, as one incident's escalation starts again from there (`escalation.base`)."""
    first = policy.first_pagers() if batch.paged and g.state != State.paged else ()
    wanted = unique([*first, *g.escalation.next_to, *sorted(batch.pagers)])
    wanted = tuple(p for p in wanted if p not in g.paged_via)
    base = g.escalation.base
    if base is None:
        return wanted, ()
    offsets = _first_offsets(policy.stages())
    due = tuple(p for p in wanted if base + offsets.get(p, timedelta(0)) <= now)
    return due, tuple(p for p in wanted if p not in due)


def _ran_on(member: Incident, now: datetime) -> tuple[str, ...]:
    """Whom a member paged, and whom its step due by `now` pages (steps run on under a mute)."""
    esc = member.escalation
    due = esc.next_to if esc.next_at is not None and esc.next_at <= now else ()
    return (*member.paged_via, *due)


def _latest_step(pagers: Sequence[str], stages: Sequence[Stage]) -> tuple[str, ...]:
    """Those of `pagers` the latest step pages first."""
    offsets = _first_offsets(stages)
    paging = [p for p in pagers if p in offsets]
    latest = max((offsets[p] for p in paging), default=None)
    return tuple(p for p in paging if offsets[p] == latest)


def _restarted(
    g: Incident, again: Sequence[str], stages: Sequence[Stage], now: datetime
) -> Incident:
    """The group's escalation started again from the step of `again` (its later steps' pagers
    follow at their delays from it)."""
    offsets = _first_offsets(stages)
    base = now - min((offsets.get(p, timedelta(0)) for p in again), default=timedelta(0))
    return _slack_scheduled(replace(g, escalation=replace(g.escalation, base=base)), stages, now)


def _slack_scheduled(
    g: Incident, stages: Sequence[Stage], after: datetime, rerun: bool = False
) -> Incident:
    """The group with `escalation.next_at` its next later step that only tells Slack, the first
    due after `after` (`rerun`: at it too) on its own clock (from its onset, or where its
    escalation started again), as one incident's: its pages follow its members' steps, which
    tell it nothing of those."""
    base = g.escalation.base or g.onset
    due = (base + s.offset for s in stages if not s.pagers and s.offset > timedelta(0))
    next_at = min((at for at in due if at > after or (rerun and at == after)), default=None)
    if next_at == g.escalation.next_at:
        return g
    return replace(g, escalation=replace(g.escalation, next_at=next_at))


def _slack_restarted(g: Incident, stages: Sequence[Stage], now: datetime) -> Incident:
    """A group that paged nobody, its acknowledgement timed out: its escalation started again from
    the step it was on (said now), its later steps telling Slack at their delays from it."""
    esc, base = g.escalation, g.escalation.base or g.onset
    ran = [base + s.offset for s in stages if base + s.offset < (esc.next_at or now)]
    if not ran:
        return g
    restarted = replace(esc, base=now - (max(ran) - base))
    return _slack_scheduled(replace(g, escalation=restarted), stages, now, rerun=True)


def _slack_step(
    g: Incident, stages: Sequence[Stage], channels: Sequence[str], now: datetime
) -> tuple[Incident, list[Notification]]:
    """The group's steps that only tell Slack, due by `now`, run: said to `channels` (none: run
    unsaid) in one "escalated" message naming the latest, with its mention, as one incident's."""
    esc, base = g.escalation, g.escalation.base or g.onset
    since = esc.next_at or now
    due = [i for i, s in enumerate(stages) if not s.pagers and since <= base + s.offset <= now]
    g = _slack_scheduled(g, stages, now)
    if not due or not channels:
        return g, []
    mention = next((stages[i].mention for i in reversed(due) if stages[i].mention), None)
    g = replace(g, last_notified_at=now)
    step = replace(g, escalation=replace(esc, step=due[-1] + 1, mention=mention, why=""))
    return g, [notification(step, c, Kind.escalated, now) for c in channels]


def _owed_restart(g: Incident, stages: Sequence[Stage]) -> datetime | None:
    """When the group's escalation started again, if an acknowledgement timed out while a silence
    or mute held it and nothing was paged since: the step it is on is paged again once they end."""
    esc = g.escalation
    if not esc.why or esc.base is None:
        return None
    offsets = _first_offsets(stages)
    pagers = current_pages(g) or g.paged_via
    if not pagers:  # it paged nobody: its steps telling Slack started again as it timed out
        return None
    point = esc.base + min((offsets.get(p, timedelta(0)) for p in pagers), default=timedelta(0))
    return point if all(p.at < point for p in esc.pages) else None


def next_page(g: Incident, members: Iterable[Incident], policy: Any, now: datetime) -> str:
    """When the group pages next if nothing changes, as `_advance` decides it: held by its mute,
    silence or acknowledgement; else the first of a pager owed from its escalation started again
    (`escalation.base`) and a member's next step paging someone it has not paged — a member
    inhibited, silenced or whose own acknowledgement holds its page pages nobody."""
    acts, esc = g.acts, g.escalation
    if acts.mute_id is not None:
        return "held by the mute" + _until(acts.muted_until)
    if silenced_at(g, now):
        return "held by the silence" + _until(acts.silenced_until)
    offsets = _first_offsets(policy.stages())
    due: list[tuple[datetime, tuple[str, ...], str]] = []
    for p in esc.next_to:  # owed while a hold lasted, or coming at its delay from a restart
        if pager_of(p) is not None and p not in g.paged_via:
            at = esc.base + offsets.get(p, timedelta(0)) if esc.base else now
            due.append((max(at, now), (p,), "owed by the group"))
    for m in members:
        m_esc = m.escalation
        fresh = tuple(p for p in m_esc.next_to if pager_of(p) and p not in g.paged_via)
        if not fresh or m_esc.next_at is None or m.state == State.resolved:
            continue
        if m.inhibited_by is not None or m.acts.mute_id is not None or silenced_at(m, now):
            continue
        at = m_esc.next_at
        if m.acts.acked_at is not None:  # its own acknowledgement holds its page
            if m_esc.ack_hold is None:
                continue
            at = max(at, m.acts.acked_at + m_esc.ack_hold)
        if esc.base is not None:
            at = max(at, esc.base + min(offsets.get(p, timedelta(0)) for p in fresh))
        due.append((at, fresh, f"as {m.key} reaches step {m_esc.step + 1}"))
    if acts.acked_at is not None:
        hold = policy.page_hold()
        if hold is None:
            return "held by the group's acknowledgement for the episode"
        ends = acts.acked_at + hold
        again = (current_pages(g) or g.paged_via) if policy.ack_timeout is not None else ()
        if again:
            return f"if still failing at {ends:%H:%M:%S} UTC, {' + '.join(again)} again"
        due = [(max(at, ends), pagers, f"{why}, once the acknowledgement's hold ends")
               for at, pagers, why in due]  # fmt: skip
    if not due:
        return "none due: no member's next step pages anyone the group has not paged"
    at, pagers, why = min(due)
    return f"{' + '.join(pagers)} at {at:%H:%M:%S} UTC, {why}"


def _until(at: datetime | None) -> str:
    return f" until {at:%H:%M:%S} UTC" if at else ""


def _first_offsets(stages: Sequence[Stage]) -> dict[str, timedelta]:
    """Each pager's delay: that of the first step paging it."""
    offsets: dict[str, timedelta] = {}
    for stage in stages:
        for pager in stage.pagers:
            offsets.setdefault(pager, stage.offset)
    return offsets


def _mention_of(pagers: Sequence[str], stages: Sequence[Stage]) -> str | None:
    """The `mention` of the step that pages `pagers`: the latest of the steps first paging them,
    as one incident's message on that step carries it."""
    offsets = _first_offsets(stages)
    latest = max((offsets[p] for p in pagers if p in offsets), default=None)
    step = next((s for s in stages if s.pagers and s.offset == latest), None)
    return step.mention if step is not None else None


def _paged(
    g: Incident, pagers: Sequence[str], now: datetime, why: str, mention: str | None
) -> Incident:
    """The group paged on `pagers` (`why`: an acknowledgement timed out, else ""), each page
    recorded on an escalation step of its own: the first page keeps its notification ids, a later
    one (another pager, or the same again) gets ids of its own; its message carries `mention`."""
    esc = g.escalation
    earlier = esc.pages or tuple(Page(p, g.paged_at or now, 1) for p in g.paged_via)
    step = max((p.step for p in earlier), default=0) + 1
    pages = earlier + tuple(Page(p, now, step) for p in pagers)
    owed = tuple(p for p in esc.next_to if p not in pagers)
    return replace(
        g,
        state=State.paged,
        paged_at=g.paged_at or now,
        paged_via=unique([*g.paged_via, *pagers]),
        changed_at=now,
        escalation=replace(esc, step=step, pages=pages, next_to=owed, why=why, mention=mention),
    )


def _summary(g: Incident, members: _Members, config: GroupingConfig, told: set[str]) -> Signal:
    """The group's message: how many fail, what changed since the last message, who (capped)."""
    source = g.source[len(PREFIX) :]
    new = [at for at, key in enumerate(members.keys) if key not in told]  # by the keys alone
    cleared = len(told.difference(members.keys))
    changes = []
    if told and new:
        changes.append(f"+{len(new)} new")
    if cleared:
        changes.append(f"{cleared} cleared")
    # a member's texts are rendered when read (Signal.deferred): only those listed are read
    chosen = new if told and new else range(len(members))
    listed = [members[at].signal.summary for at in islice(chosen, config.max_listed)]
    more = len(chosen) - len(listed)
    body = "; ".join(listed) + (f"; and {more} more" if more > 0 else "")
    head = f"{len(members)} {source} incidents failing" + (
        f" ({', '.join(changes)})" if changes else ""
    )
    remediation: tuple[str, ...] = _shared((m.signal.remediation for m in members), ())
    runbook: str | None = _shared((m.signal.runbook_url for m in members), None)
    return Signal(
        key=g.key,
        source=g.source,
        firing=bool(members),
        severity=g.severity,
        summary=f"{head}: {body}" if body else head,
        target=f"{source} group {g.key.split(':', 1)[1]}".rstrip(),
        runbook_url=runbook,
        remediation=remediation,
        labels={"group": g.key, "source": source},
        evidence={"members": len(members)},
    )


_T = TypeVar("_T")
_NONE = object()


def _shared(values: Iterable[_T], otherwise: _T) -> _T:
    """The value all of `values` have, else `otherwise` — read no further than a second one (a
    member's texts are rendered when read, and a storm's members differ in the second)."""
    first: Any = _NONE
    for value in values:
        if first is _NONE:
            first = value
        elif value != first:
            return otherwise
    return otherwise if first is _NONE else first


def bound(evaluation: Evaluation, limit: int, now: datetime) -> Evaluation:
    """At most `limit` messages per channel in one run, critical first, then by message id: the
    rest become one storm summary per channel. Pager channels are left alone (one page per group
    already)."""
    per_channel: dict[str, list[Notification]] = {}
    for n in evaluation.notifications:
        per_channel.setdefault(n.channel, []).append(n)
    if all(len(v) <= limit or pager_of(c) for c, v in per_channel.items()):
        return evaluation
    keep: set[int] = set()
    summaries: list[Notification] = []
    for channel, sent in per_channel.items():
        if pager_of(channel) or len(sent) <= limit:
            keep |= {id(n) for n in sent}
            continue
        # which go out alone must not follow the order the store listed the incidents in
        sent = sorted(sent, key=lambda n: (list(Severity).index(n.incident.severity), n.id))
        keep |= {id(n) for n in sent[: limit - 1]}
        summaries.append(_storm(channel, sent[limit - 1 :], now))
    kept = [n for n in evaluation.notifications if id(n) in keep]
    return Evaluation(evaluation.incidents, kept + summaries)


def _storm(channel: str, held: Sequence[Notification], now: datetime) -> Notification:
    severity = min((n.incident.severity for n in held), key=list(Severity).index)
    sources = sorted({n.incident.source for n in held})
    listed = "; ".join(n.incident.signal.summary for n in held[:10])
    more = len(held) - 10
    summary = f"Storm: {len(held)} more messages this run ({', '.join(sources)}): {listed}"
    summary += f"; and {more} more" if more > 0 else ""
    key = incident_key(STORM, {"run": now.isoformat()})
    signal = Signal(key=key, source=STORM, firing=True, severity=severity, summary=summary)
    incident = Incident(
        key=key,
        source=STORM,
        severity=severity,
        state=State.firing,
        onset=now,
        changed_at=now,
        signal=signal,
    )
    return Notification(
        id=f"{key}|{channel}", channel=channel, kind=Kind.opened, at=now, incident=incident
    )
