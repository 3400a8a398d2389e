"""The passes around `evaluate` that keep a storm to a few messages: fleet-level aggregates
before it (core.fleet), inhibition and grouping after it (core.inhibition, core.grouping), and a
per-run bound on messages last. Pure like the engine: data and `now` in, an Evaluation out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fleet_alerting.core.fleet import FleetConfig, aggregate, as_configured
from fleet_alerting.core.grouping import GroupingConfig, bound, group
from fleet_alerting.core.incidents import Incident, unseen
from fleet_alerting.core.inhibition import InhibitRule, default_inhibit_rules, inhibit
from fleet_alerting.core.muting import Muting, mute, muted_signals
from fleet_alerting.core.policy import Evaluation, PolicyFor, evaluate, recover_unseen
from fleet_alerting.core.signals import Signal


@dataclass(frozen=True)
class StormRules:
    fleet: FleetConfig = field(default_factory=FleetConfig)
    inhibit_rules: list[InhibitRule] | None = None  # None: the shipped rules

    grouping: GroupingConfig = field(default_factory=GroupingConfig)

    def inhibitions(self) -> list[InhibitRule]:
        if self.inhibit_rules is None:
            return default_inhibit_rules(self.fleet.offline)
        return self.inhibit_rules


def decide(
    signals: Iterable[Signal],
    incidents: Mapping[str, Incident],
    policy_for: PolicyFor,
    rules: StormRules,
    now: datetime,
    unseen_sources: Mapping[str, str] | None = None,
    muting: Muting | None = None,
) -> Evaluation:
    """`evaluate` with the fleet aggregates of these signals, inhibition, silences and
    maintenance windows (`muting`), and grouping.

    `incidents` are all unresolved incidents (every source: a cause may be another watch's);
    only those of the sources in this run (and the unseen sources) are changed.
    `unseen_sources` as in tasks.pipeline: a source's open incidents these signals no longer
    mention count as recovered (they do not count as devices of the fleet)."""
    signals = list(signals)
    muting = muting or Muting()
    fleet = aggregate(signals, rules.fleet.offline, muted_signals(muting, incidents, now))
    signals += as_configured(fleet, incidents, rules.fleet.offline)
    for source, reason in (unseen_sources or {}).items():
        signals += recover_unseen(signals, unseen(incidents, signals), source, reason)
    own = {s.source for s in signals} | set(unseen_sources or {})
    evaluation = evaluate(signals, incidents, policy_for, now, rules.grouping.enabled)
    evaluation = inhibit(evaluation, incidents, rules.inhibitions(), policy_for, own, now)
    evaluation = mute(evaluation, incidents, muting, policy_for, own, now)
    evaluation = group(evaluation, incidents, rules.grouping, policy_for, own, now)
    return bound(evaluation, rules.grouping.max_messages_per_run, now)
