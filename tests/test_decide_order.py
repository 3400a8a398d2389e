"""The storm passes decide the same whatever order the store lists the open incidents in
(SQLite and PostgreSQL list them differently): bench/opening_diff.py's seed 101, in small — a
watch's hosts held by two Alertmanager HostDown alerts per host (a warning storm and an older
critical one), some flapping, grouped — run minute by minute with the records fed in their
stored order, reversed and shuffled; the alerts resolve in a storm past the per-run bound
(seed 103: which resolves went out alone and which the storm summary folded followed the order)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from fleet_alerting.core.grouping import GroupingConfig
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.inhibition import InhibitRule
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.policy import Evaluation, PolicyConfig
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import StormRules, decide

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
HOSTS = 8
FLAPPING = {3, 6}
HELD = InhibitRule(
    source_matchers=['source="alertmanager"', 'alertname="HostDown"'],
    target_matchers=['source=~"prometheus/.*"'],
    equal=["host"],
)
POLICIES = {
    Severity.critical: PolicyConfig(
        open_after=2, resolve_after=1, page=["pagerduty"], repeat=timedelta(minutes=2)
    ),
    Severity.warning: PolicyConfig(open_after=1, resolve_after=1),
}


def host_down(storm: int, host: str, severity: Severity, started: datetime) -> Signal:
    labels = {"alertname": "HostDown", "host": host, "severity": severity.value}
    return Signal(
        key=incident_key("alertmanager", {"fingerprint": f"{storm}HostDown{host}"}),
        source="alertmanager",
        firing=True,
        severity=severity,
        summary=f"{host}: HostDown",
        since=started,
        labels=labels,
    )


def observed(minute: int) -> list[Signal]:
    """The watch fails on every host until minute 6 (a flapping host passes every third run);
    from minute 2 a warning HostDown storm (since now) and a critical one (since 30 minutes
    before) hold every host, the critical one ending at minute 5."""
    signals = []
    for h in range(HOSTS):
        host = f"h{h:03}"
        failing = minute < 6 and not (h in FLAPPING and (minute + h) % 3 == 2)
        signals.append(
            Signal(
                key=incident_key("prometheus/W0", {"host": host}),
                source="prometheus/W0",
                firing=failing,
                severity=Severity.critical,
                summary=f"Role agent on {host} failed its last run",
                labels={"host": host},
            )
        )
        if 2 <= minute < 8:
            signals.append(host_down(0, host, Severity.warning, T0))
        if 2 <= minute < 5:
            signals.append(host_down(3, host, Severity.critical, T0 - timedelta(minutes=30)))
    return signals


def run(records: Mapping[str, Incident], minute: int) -> Evaluation:
    now = T0 + timedelta(minutes=minute)
    # the alerts' incidents resolve once Alertmanager no longer lists them, more than the bound
    rules = StormRules(inhibit_rules=[HELD], grouping=GroupingConfig(max_messages_per_run=4))
    gone = {"alertmanager": "no longer listed"}
    return decide(observed(minute), records, POLICIES.__getitem__, rules, now, gone)


def orders(records: dict[str, Incident]) -> dict[str, dict[str, Incident]]:
    keys = list(records)
    ways = {"stored": keys, "reversed": keys[::-1]}
    for seed in (1, 2, 3):
        shuffled = keys[:]
        random.Random(seed).shuffle(shuffled)
        ways[f"shuffled {seed}"] = shuffled
    return {way: {k: records[k] for k in ordered} for way, ordered in ways.items()}


def outcome(evaluation: Evaluation) -> tuple[dict[str, Incident], list[tuple[str, ...]]]:
    """What is stored and who is told: records by key, messages as (id, channel, kind, key)."""
    told = [(n.id, n.channel, n.kind, n.incident.key) for n in evaluation.notifications]
    return {i.key: i for i in evaluation.incidents}, sorted(told)


def test_decisions_do_not_depend_on_the_order_incidents_are_listed() -> None:
    records: dict[str, Incident] = {}
    for minute in range(9):
        unresolved = {k: i for k, i in records.items() if i.state != State.resolved}
        results = {way: outcome(run(given, minute)) for way, given in orders(unresolved).items()}
        expected = results["stored"]
        for way, result in results.items():
            assert result == expected, f"minute {minute}: {way} order decides otherwise"
        for key, incident in expected[0].items():
            records[key] = incident


def test_the_longest_failing_cause_is_named() -> None:
    records: dict[str, Incident] = {}
    for minute in range(4):
        unresolved = {k: i for k, i in records.items() if i.state != State.resolved}
        # listed newest first, as a store might: the named cause must not follow the listing
        newest_first = dict(sorted(unresolved.items(), key=lambda kv: kv[1].onset, reverse=True))
        records.update({i.key: i for i in run(newest_first, minute).incidents})
    held = records["prometheus/W0:host=h000"]
    assert held.inhibited_by == "alertmanager:fingerprint=3HostDownh000", held.inhibited_by
    assert held.state == State.firing


def test_a_group_lists_its_members_alike_whatever_order_they_came_in() -> None:
    """Seed 107: a group's opening listed its members in the order their messages came (the
    store's listing order, or the order a source answered in)."""
    first = [s for s in observed(0) if s.source == "prometheus/W0"]
    said = []
    for signals in (first, first[::-1]):
        records: dict[str, Incident] = {}
        for minute in range(2):
            now = T0 + timedelta(minutes=minute)
            made = decide(signals, records, POLICIES.__getitem__, StormRules(), now)
            records.update({i.key: i for i in made.incidents})
        said.append(records["group/prometheus/W0:severity=critical"].signal.summary)
    assert said[0] == said[1]
    assert said[0].startswith("8 prometheus/W0 incidents failing: Role agent on h000 failed")
