"""Inhibition: while a cause is failing, its symptoms are recorded but tell nobody.

Alertmanager's inhibit_rules over incidents: a target incident matching `target_matchers` is
inhibited while an unresolved source incident matches `source_matchers` and has the same values
of the `equal` labels (a missing label counts as empty, as in Alertmanager). Matchers use the one
grammar of core.matchers; the labels an incident shows them are its signal's labels plus
`source` and `severity` (core.fleet.signal_labels).

A source counts from its first failing observation (pending): a cause that opens in the same run
as its symptoms, or one run later, still silences them. An inhibited incident is stored with
`inhibited_by` (the source's key) and its messages are dropped; its paging is held back, so the
engine pages it normally if it still fails after the source is gone. When the source resolves
while the target still fails, the target is told once ("was inhibited by …", `_told_once`), and
a page the inhibition acknowledged is paged again (`actions.paged_again`) — under an operator's
silence, the silence's end says it instead; one that clears first was never told, so its resolve
is dropped too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import Field

from fleet_alerting.core.actions import (
    closing_words,
    notification,
    paged_again,
    repaged,
    silenced_at,
)
from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.escalation import as_before
from fleet_alerting.core.fleet import SOURCE as FLEET
from fleet_alerting.core.fleet import FleetOfflineRule, MatcherText, selector, signal_labels
from fleet_alerting.core.incidents import Incident, Kind, Notification, Overlay, State, glance
from fleet_alerting.core.model import Model
from fleet_alerting.core.policy import Evaluation, PolicyFor, notify_channels

INHIBITED_BY = "inhibited by"
# ends the id of the Slack message saying an inhibition ended on an incident told before (a
# group says it for its members: core.grouping)
INHIBITION_ENDED = ":inhibition-ended"


class InhibitRule(Model):
    name: str = ""
    source_matchers: list[MatcherText] = Field(min_length=1)
    target_matchers: list[MatcherText] = Field(min_length=1)
    equal: list[str] = []


DEVICE_NOISE = (
    'source=~"blackbox|fleet-events|zigbee-device'
    '|prometheus/(UpstreamDeviceFailuresSpike|CircuitBreakerOpen|RoleAgentStale)"'
)


FLEET_API_SCRAPE_WATCH = "FleetApiScrapeDown"  # the example configs' watch of the API's scrape


def default_inhibit_rules(fleet: Sequence[FleetOfflineRule] = ()) -> list[InhibitRule]:
    """The shipped rules: API down silences device and fleet-events noise; each fleet-offline
    aggregate silences the devices it counts (within its `group_by` group) and, fleet-wide, the
    other per-device watches; a broker down silences its coordinators' other checks; a
    coordinator offline silences its devices' availability; an open circuit breaker silences the
    upstream-failure spike of the same device; our probe of an endpoint silences Alertmanager's
    alert of the same severity for the same `instance` (one outage, one page)."""
    rules = [
        InhibitRule(
            name="api-down",
            source_matchers=['source="blackbox"', 'severity="critical"'],
            target_matchers=[DEVICE_NOISE, 'severity!="critical"'],
        )
    ]
    for aggregate in fleet:
        rules.append(
            InhibitRule(
                name=f"fleet-offline-{aggregate.name}",
                source_matchers=[f'source="{FLEET}"', f'rule="{aggregate.name}"'],
                target_matchers=list(aggregate.devices),
                equal=list(aggregate.group_by),
            )
        )
        if not aggregate.group_by:
            rules.append(
                InhibitRule(
                    name=f"fleet-offline-{aggregate.name}-devices",
                    source_matchers=[f'source="{FLEET}"', f'rule="{aggregate.name}"'],
                    target_matchers=[DEVICE_NOISE, 'severity!="critical"'],
                )
            )
    rules += [
        InhibitRule(
            name="broker-down",
            source_matchers=['source="zigbee"', 'check="broker"'],
            target_matchers=['source=~"zigbee|zigbee-device"', 'check!="broker"'],
            equal=["broker"],
        ),
        InhibitRule(
            name="coordinator-offline",
            source_matchers=['source="zigbee"', 'check="offline"'],
            target_matchers=['source="zigbee-device"'],
            equal=["coordinator"],
        ),
        InhibitRule(
            name="breaker-open",
            source_matchers=['source="prometheus/CircuitBreakerOpen"'],
            target_matchers=['source="prometheus/UpstreamDeviceFailuresSpike"'],
            equal=["deviceId"],
        ),
        InhibitRule(
            name="api-down-covers-its-scrape",
            source_matchers=['source="blackbox"', 'service="fleet-api"', 'severity="critical"'],
            target_matchers=[f'source="prometheus/{FLEET_API_SCRAPE_WATCH}"'],
        ),
        InhibitRule(
            name="probe-covers-alert",
            source_matchers=['source="blackbox"', 'instance!=""'],
            target_matchers=['source="alertmanager"', 'instance!=""'],
            equal=["instance", "severity"],
        ),
    ]
    return rules


def labels_of(incident: Incident) -> dict[str, str]:
    return signal_labels(incident.source, incident.severity, incident.signal.labels)


class _Index:
    """Per rule: the unresolved sources by their `equal` label values, longest failing first."""

    def __init__(self, rules: Sequence[InhibitRule], incidents: Overlay):
        self.rules = [
            (selector(tuple(r.source_matchers)), selector(tuple(r.target_matchers)), r.equal)
            for r in rules
        ]
        self.sources: list[dict[tuple[str, ...], list[str]]] = [{} for _ in rules]
        as_source: dict[str, list[int]] = {}  # incident source -> rules it may be a cause in
        causes: list[tuple[str, list[int]]] = []
        # the incidents a cause held as read, with their sources (in the order of iteration)
        self.held: list[tuple[str, str]] = []
        for key, was, made in incidents.pairs():  # the full record only of a possible cause
            seen = was if made is None else made
            if was is not None and was.inhibited_by is not None:
                self.held.append((key, seen.source))
            if seen.state == State.resolved:
                continue
            which = as_source.get(seen.source)
            if which is None:
                which = as_source[seen.source] = [
                    n for n, (cause, _t, _e) in enumerate(self.rules) if cause.admits(seen.source)
                ]
            if which:
                causes.append((key, which))
        incidents.preload([key for key, _ in causes])
        for key, which in causes:
            labels = labels_of(incidents[key])
            for n in which:
                cause, _target, equal = self.rules[n]
                if cause(labels):
                    values = tuple(labels.get(name, "") for name in equal)
                    self.sources[n].setdefault(values, []).append(key)
        # the cause named is the longest failing, whatever order the store listed them in
        for keys in (keys for by_values in self.sources for keys in by_values.values()):
            keys.sort(key=lambda key: (incidents[key].onset, key))
        self._as_target: dict[str, list[int]] = {}

    def _targeting(self, source: str) -> list[int]:
        """The rules with a cause present that may silence an incident of this source."""
        which = self._as_target.get(source)
        if which is None:
            which = self._as_target[source] = [
                n
                for n, (_c, target, _e) in enumerate(self.rules)
                if self.sources[n] and target.admits(source)
            ]
        return which

    def may_inhibit(self, source: str) -> bool:
        return bool(self._targeting(source))

    @property
    def has_causes(self) -> bool:
        """Whether any rule has a cause present (else nothing is inhibited in this run)."""
        return any(self.sources)

    def inhibitor(self, incident: Incident) -> str | None:
        which = self._targeting(incident.source)
        if not which:
            return None
        labels = labels_of(incident)
        for n in which:
            _cause, target, equal = self.rules[n]
            if not target(labels):
                continue
            for key in self.sources[n].get(tuple(labels.get(name, "") for name in equal), []):
                if key != incident.key:  # nothing inhibits itself
                    return key
        return None


def inhibit(
    evaluation: Evaluation,
    before: Mapping[str, Incident],
    rules: Sequence[InhibitRule],
    policy_for: PolicyFor,
    own_sources: set[str],
    now: datetime,
) -> Evaluation:
    """Apply `rules` to an evaluation. `before` holds the unresolved incidents the evaluation
    started from (every source: a cause may be another watch's); only incidents of `own_sources`
    (the watch being run) are changed, so each record keeps a single writer."""
    if not rules:
        return evaluation
    changed = {i.key: i for i in evaluation.incidents}
    after = Overlay(before, changed)
    index = _Index(rules, after)
    sent_about = evaluation.sent_about()
    dropped: set[str] = set()  # keys whose messages the engine sent do not go out
    dropped_ids: set[str] = set()  # and single messages that do not
    reworded: dict[str, Notification] = {}  # messages the engine sent, saying the inhibition ended
    extra: list[Notification] = []
    first: list[Notification] = []  # a held page's resolve and page again, before any message
    # nothing can inhibit the others and nothing held them: as they were, their messages as sent
    candidates = [key for key, source in index.held if source in own_sources]
    if index.has_causes:  # (else only the held may change: each is released)
        candidates = [
            key
            for key, was, made in after.pairs()
            if (source := (was if made is None else made).source) in own_sources
            and (index.may_inhibit(source) or (was is not None and was.inhibited_by is not None))
        ]
    after.preload(candidates)
    for key in candidates:
        incident = after[key]
        seen = glance(before, key) if key in before else None
        was = seen.inhibited_by if seen is not None and seen.onset == incident.onset else None
        cause = index.inhibitor(incident) if incident.state != State.resolved else None
        if cause is None and was is None:
            continue  # its messages go out as sent
        sent = sent_about(key)
        prior = before.get(key)
        if cause is not None:
            dropped.add(key)  # nothing it sends goes out (one that resolves is released below)
            if sent or was != cause or incident.inhibited_by != cause:
                changed[key] = held_back(replace(incident, inhibited_by=cause), prior, sent)
            if was is None and prior is not None and prior.onset == incident.onset:
                extra += _closed(changed.get(key, incident), prior, policy_for, now)
            continue
        # released: the cause is gone (or this incident just resolved)
        released = replace(incident, inhibited_by=None)
        untold = prior is None or prior.last_notified_at is None
        if incident.state == State.resolved:
            if untold:
                dropped.add(key)
        elif incident.is_open and not silenced_at(incident, now):  # (else the silence's end
            # says it and pages again what it held, as a mute's end under a silence does)
            told_before = None if untold else prior
            released, said = _told_once(released, told_before, was, sent, policy_for, now)
            # a held page's resolve, then its page again, before the Slack message naming it
            first += [n for n in said.extra if pager_of(n.channel) is not None]
            extra += [n for n in said.extra if pager_of(n.channel) is None]
            reworded |= said.reworded
            dropped_ids |= said.dropped
        changed[key] = released
    kept = evaluation.notifications
    if dropped or reworded or dropped_ids:
        kept = [
            reworded.get(n.id, n)
            for n in kept
            if n.incident.key not in dropped and n.id not in dropped_ids
        ]
    return Evaluation(list(changed.values()), first + kept + extra)


def held_back(
    incident: Incident, prior: Incident | None, dropped: Sequence[Notification]
) -> Incident:
    """The record as if the dropped messages had not been due: not told, not paged (the engine
    pages it after the release if it still fails past page_after). Muting holds back alike."""
    if not dropped:
        return incident
    same = prior if prior is not None and prior.onset == incident.onset else None
    state = incident.state
    if state == State.paged and (same is None or same.state != State.paged):
        state = State.firing
    return replace(
        incident,
        state=state,
        paged_at=same.paged_at if same else None,
        paged_via=same.paged_via if same else (),
        last_notified_at=same.last_notified_at if same else None,
        reminders=same.reminders if same else 0,
        escalation=as_before(same),
    )


def _closed(
    incident: Incident, prior: Incident, policy_for: PolicyFor, now: datetime
) -> list[Notification]:
    """Inhibited after it was told: the destinations that saw it firing hear why it went quiet."""
    if prior.last_notified_at is None or not prior.is_open or silenced_at(prior, now):
        return []  # (an operator's silence said its closing word already)
    return closing_words(incident, prior, policy_for(incident.severity).channels(), now)


@dataclass(frozen=True)
class _Said:
    """How an inhibition's end is told: messages besides the engine's, the engine's reworded
    (by id), the engine's dropped (ids)."""

    extra: list[Notification] = field(default_factory=list)
    reworded: dict[str, Notification] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)


def _told_once(
    incident: Incident,
    told: Incident | None,
    cause: str,
    sent: Sequence[Notification],
    policy_for: PolicyFor,
    now: datetime,
) -> tuple[Incident, _Said]:
    """The cause is gone and this incident still fails: say so, once ("was inhibited by …").
    Never told (`told` None): its first message — the engine's now (a page due), else an opening
    — says so. Told before (`told`: the record as it was): a page the inhibition acknowledged is
    paged again (`paged_again`) and Slack hears it as a "paged" message naming the pages; else
    the engine's Slack message now (a step, a reminder) says so, else a reminder does (this
    run's reminder: the next counts from it)."""
    policy = policy_for(incident.severity)
    note = f"(was {INHIBITED_BY} {cause}, which has cleared)"

    def noted(record: Incident) -> Incident:
        return replace(
            record, signal=replace(record.signal, summary=f"{record.signal.summary} {note}")
        )

    slack = [n for n in sent if n.channel in SLACK_CHANNELS]
    if told is None and not slack:
        opened = notify_channels(noted(incident), policy, Kind.opened, now)
        return (replace(incident, last_notified_at=now) if opened else incident), _Said(opened)
    if told is None:
        return incident, _Said(
            reworded={n.id: replace(n, incident=noted(n.incident)) for n in slack}
        )
    paging = [n.channel for n in sent if n.kind == Kind.paged]
    again = paged_again(incident, told, now, paging)  # a page `_closed` acknowledged
    pagers = [n.channel for n in again if n.kind == Kind.paged]
    if pagers:  # recorded as pages: its Slack message names them and waits for them
        incident = repaged(incident, pagers, now)
        again = paged_again(incident, told, now, paging)
    stepping = [n for n in slack if n.kind == Kind.paged]
    if stepping and pagers:  # the step's "paged" message names the pages again too
        return incident, _Said(
            again, {n.id: replace(n, incident=noted(incident)) for n in stepping}
        )
    if slack and not pagers:
        return incident, _Said(again, {n.id: replace(n, incident=noted(n.incident)) for n in slack})
    # the words that it ended are this run's Slack message (a reminder due beside them goes)
    kind = Kind.paged if pagers else Kind.reminder
    said = [_ended(noted(incident), c, kind, now) for c in policy.channels()]
    incident = replace(incident, last_notified_at=now) if said else incident
    return incident, _Said(again + said, dropped={n.id for n in slack})


def _ended(incident: Incident, channel: str, kind: Kind, now: datetime) -> Notification:
    n = notification(incident, channel, kind, now)
    return replace(n, id=n.id + INHIBITION_ENDED)
