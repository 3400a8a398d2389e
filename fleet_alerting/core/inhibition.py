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
while the target still fails, the target is told once ("was inhibited by …"), and a page the
inhibition acknowledged is paged again (`actions.paged_again`); one that clears first was never
told, so its resolve is dropped too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from pydantic import Field

from fleet_alerting.core.actions import closing_words, paged_again
from fleet_alerting.core.escalation import as_before
from fleet_alerting.core.fleet import SOURCE as FLEET
from fleet_alerting.core.fleet import FleetOfflineRule, MatcherText, selector, signal_labels
from fleet_alerting.core.incidents import Incident, Kind, Notification, Overlay, State, glance
from fleet_alerting.core.model import Model
from fleet_alerting.core.policy import Evaluation, PolicyFor, notify_channels

INHIBITED_BY = "inhibited by"


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
    extra: list[Notification] = []
    first: list[Notification] = []  # a held page's resolve, before any page of it goes again
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
        elif not sent and untold and incident.is_open:
            released, told = _tell_once(released, was, policy_for, now)
            extra += told
        if prior is not None and not untold and incident.state != State.resolved:
            paging = [n.channel for n in sent if n.kind == Kind.paged]
            again = paged_again(released, prior, now, paging)  # a page `_closed` acknowledged
            first += [n for n in again if n.kind == Kind.resolved]
            extra += [n for n in again if n.kind != Kind.resolved]
        changed[key] = released
    kept = evaluation.notifications
    if dropped:
        kept = [n for n in kept if n.incident.key not in dropped]
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
    if prior.last_notified_at is None or not prior.is_open:
        return []
    return closing_words(incident, prior, policy_for(incident.severity).channels(), now)


def _tell_once(
    incident: Incident, cause: str, policy_for: PolicyFor, now: datetime
) -> tuple[Incident, list[Notification]]:
    """The cause is gone and this incident still fails: say so, once."""
    policy = policy_for(incident.severity)
    note = f"{incident.signal.summary} (was {INHIBITED_BY} {cause}, which has cleared)"
    snapshot = replace(incident, signal=replace(incident.signal, summary=note))
    told = notify_channels(snapshot, policy, Kind.opened, now)
    if told:
        incident = replace(incident, last_notified_at=now)
    return incident, told
