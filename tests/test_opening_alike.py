"""A storm's opening run of new incidents: failures with no unresolved record are decided once per
shape (`policy._Alike`) and the rest made like it — and every decision, message id, page and text
is what the engine decides for each of them on its own, run after run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fleet_alerting.config.schema import EscalationRule, PrometheusConfig
from fleet_alerting.core import policy
from fleet_alerting.core.incidents import Incident, Kind, Notification, Records, State, retold
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation, PolicyConfig
from fleet_alerting.core.signals import TEXTS, Severity, Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.sources.alertmanager.judge import GONE, to_signals
from fleet_alerting.sources.alertmanager.shapes import Alert
from fleet_alerting.sources.prometheus.judge import (
    Series,
    WatchOutcome,
    active_watches,
    evaluate_watches,
)
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
AM = "http://alertmanager.test:9093"
LINKS = LinksConfig(grafana_url="https://grafana.test/", loki_datasource_uid="LOKI1")
RULES = [
    EscalationRule(name="critical", matchers=['severity="critical"']),
    EscalationRule(name="warning", matchers=['severity="warning"'], severity=Severity.warning),
]
STORMS = StormRules()
WATCH = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
POLICIES = {
    Severity.critical: PolicyConfig(
        open_after=1, resolve_after=1, page=["pagerduty"], mirror=True, repeat=timedelta(hours=1)
    ),
    Severity.warning: PolicyConfig(open_after=2, resolve_after=1),  # pending first
}

# (alertname, severity, started minutes before T0, alerts, listed from minute, until minute):
# storms of one alertname (at least grouping.ungrouped_storm: one group) and a few alerts told
# one by one, with onsets whose page is due as they open or only later, some ending on the way
SHAPES: list[tuple[str, str, int, int, int, int]] = [
    ("HostDown", "critical", 10, 24, 0, 9),  # a storm, paged as it opens
    ("HostSlow", "critical", 1, 3, 0, 9),  # told one by one, paged four runs later
    ("NodeHot", "critical", 30, 21, 1, 3),  # a storm a run later, gone at minute 3
    ("NodeCold", "critical", 2, 2, 1, 9),
    ("DiskFull", "warning", 5, 22, 0, 9),  # pending first: opens in the next run
    ("DiskFull", "warning", 0, 2, 2, 9),
]


def alert(alertname: str, severity: str, started: int, n: int) -> Alert:
    host = f"{alertname.lower()}-{started}-{n:03}"
    return Alert(
        fingerprint=f"{alertname}{started:04}{n:04}",
        labels={"alertname": alertname, "instance": f"{host}:9100", "severity": severity},
        annotations={"summary": f"{host}: {alertname}", "runbook_url": "https://rb.test/x"},
        starts_at=T0 - timedelta(minutes=started),
        ends_at=T0 + timedelta(hours=1),
        state="active",
        receivers=("nobody",),
        generator_url="http://prometheus.test/graph?g0.expr=up",
    )


def observed(minute: int, now: datetime) -> list[Signal]:
    """What the Alertmanager and a Prometheus watch (no onset of its own) say at `minute`."""
    matched = [
        (
            rule,
            [
                alert(name, severity, started, n)
                for name, severity, started, count, first, until in SHAPES
                if severity == rule.severity and first <= minute < until
                for n in range(count)
            ],
        )
        for rule in RULES
    ]
    hosts = [f"pi-{n:02}" for n in range(3 if minute < 4 else 5)]
    series = [Series({"host": h, "job": "node"}, 0.0) for h in hosts]
    prometheus = evaluate_watches([WatchOutcome(WATCH, series)], LINKS).signals
    return to_signals(matched, AM, LINKS) + prometheus


def readable(evaluation: Evaluation) -> list[tuple[str, str, dict[str, Any]]]:
    """Each notification's id and channel, and the texts of the incident it tells of."""
    return [
        (n.id, n.channel, {name: getattr(n.incident.signal, name) for name in TEXTS})
        for n in evaluation.notifications
    ]


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the engine decides one by one (`policy._on_failure`)."""
    decided: list[str] = []
    on_failure: Callable[..., Any] = policy._on_failure

    def counted(current: Incident | None, signal: Signal, *args: Any) -> Any:
        decided.append(signal.key)
        return on_failure(current, signal, *args)

    monkeypatch.setattr(policy, "_on_failure", counted)
    return decided


def checked_run(store: Store, minute: int, decided: list[str]) -> int:
    """The run at `minute` through the store's records, its evaluation checked equal to the
    one with every record read; how many keys the engine decided one by one."""
    now = T0 + timedelta(minutes=minute)
    one_by_one = []

    def run(incidents: Mapping[str, Incident]) -> Evaluation:
        gone = {"alertmanager": GONE}
        return decide(observed(minute, now), incidents, POLICIES.__getitem__, STORMS, now, gone)

    def through_records(records: Mapping[str, Incident]) -> Evaluation:
        assert isinstance(records, Records)
        expected = run(dict(store.unresolved()))
        decided.clear()
        got = run(records)
        one_by_one.append(len(decided))
        assert got == expected
        assert readable(got) == readable(expected)
        return got

    store.evaluate(through_records, now)
    return one_by_one[0]


def test_new_incidents_alike_are_decided_once_per_shape_as_each_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = counting(monkeypatch)
    store = Store(tmp_path / "state.sqlite")
    one_by_one = [checked_run(store, minute, decided) for minute in range(7)]
    # the opening run: two critical onsets opening, one warning onset pending, one Prometheus
    # watch (every series' onset is now) — four decisions for 49 alerts and three series
    assert one_by_one[0] == 4, one_by_one
    everything = store.incidents(include_resolved=True)
    paged = sorted(i.key.split(":")[0] for i in everything if i.paged_via and not i.group)
    # the two storms' groups and the Prometheus group; the five alerts told one by one
    groups = ["group/alertmanager"] * 2 + ["group/prometheus/RoleAgentFailure"]
    assert paged == ["alertmanager"] * 5 + groups, paged
    store.close()


def test_a_new_incident_that_opens_at_once_is_told_with_its_own_key_and_texts(
    tmp_path: Path,
) -> None:
    """Two alerts of one shape: the second's record, ids and message are its own, not a copy of
    the first one's."""
    store = Store(tmp_path / "state.sqlite")
    first, second = alert("HostDown", "critical", 10, 1), alert("HostDown", "critical", 10, 2)
    signals = to_signals([(RULES[0], [first, second])], AM, LINKS)
    evaluation, queued = store.evaluate(
        lambda r: decide(signals, r, POLICIES.__getitem__, StormRules(), T0), T0
    )
    assert queued == 10  # each: opened in Slack + mirror, paged, and its page in Slack + mirror
    for signal in signals:
        mine = [n for n in evaluation.notifications if n.incident.key == signal.key]
        assert {n.id.split("|", 1)[0] for n in mine} == {signal.key}
        assert {n.incident.signal.summary for n in mine} == {signal.summary}
        stored = store.incident(signal.key)
        assert stored is not None and stored.signal == replace(signal).rendered()
    store.close()


def test_retold_is_dataclasses_replace() -> None:
    """`retold` copies every other field of a notification (a field added to Notification must be
    added to it: this lists them)."""
    signals = to_signals([(RULES[0], [alert("HostDown", "critical", 10, 1)])], AM, LINKS)
    record = Incident("k", "alertmanager", Severity.critical, State.paged, T0, T0, signals[0])
    told = Notification(
        "a|b", "slack", Kind.paged, T0, record, True, "pagerduty: HTTP 400", "pagerduty: HTTP 503",
        "Paged after all", quiet=True, sending_at=T0,
    )  # fmt: skip
    other = replace(record, key="other")
    assert retold(told, "other|b", other) == replace(told, id="other|b", incident=other)
    assert list(Notification.__dataclass_fields__) == [
        "id",
        "channel",
        "kind",
        "at",
        "incident",
        "one_off",
        "paging_failed",
        "paging_delayed",
        "paging_ended",
        "quiet",
        "sending_at",
    ]


def test_one_onset_written_with_two_offsets_is_decided_as_each_alone(tmp_path: Path) -> None:
    """Alertmanagers in two time zones send one instant as 02:50+00:00 and 03:50+01:00: the
    copies' onsets, ids and texts are what each alone gets, and a pending one read from its brief
    (kept in UTC) is told as when its whole record is read."""
    store = Store(tmp_path / "state.sqlite")
    plus_one = timezone(timedelta(hours=1))
    utc, local = alert("HostDown", "critical", 10, 1), alert("HostDown", "critical", 10, 2)
    local = replace(local, starts_at=local.starts_at.astimezone(plus_one))
    pending = alert("DiskFull", "warning", 5, 1)
    pending = replace(pending, starts_at=pending.starts_at.astimezone(plus_one))
    for minute in range(2):
        now = T0 + timedelta(minutes=minute)
        signals = to_signals([(RULES[0], [utc, local]), (RULES[1], [pending])], AM, LINKS)

        def run(incidents: Mapping[str, Incident]) -> Evaluation:
            return decide(signals, incidents, POLICIES.__getitem__, STORMS, now)  # noqa: B023

        def through_records(records: Mapping[str, Incident]) -> Evaluation:
            expected, got = run(dict(store.unresolved())), run(records)
            assert got == expected
            assert [n.id for n in got.notifications] == [n.id for n in expected.notifications]
            return got

        store.evaluate(through_records, now)
    told = store.incidents(include_resolved=True)
    assert {i.onset for i in told} == {T0 - timedelta(minutes=10), T0 - timedelta(minutes=5)}
    assert all(i.onset.utcoffset() == timedelta(0) for i in told)
    store.close()


def test_two_alerts_in_a_zones_repeated_hour_keep_their_own_onsets() -> None:
    """One ZoneInfo's repeated hour as DST ends: two times with the same wall time and another
    `fold` are == and hash alike, an hour apart; each new alert keeps its own onset."""
    from zoneinfo import ZoneInfo

    from fleet_alerting.core.incidents import Records
    from fleet_alerting.core.policy import default_policies, evaluate, onset_of

    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))  # EDT: 05:30Z
    second = first.replace(fold=1)  # EST: 06:30Z

    def new(key: str, since: datetime) -> Signal:
        return Signal(key, "alertmanager", True, Severity.warning, key, since=since)

    signals = [new("a", first), new("b", second)]
    policies = default_policies()
    made = evaluate(signals, Records({}, lambda _keys: {}), policies.__getitem__, now)
    got = {i.key: i.onset for i in made.incidents}
    assert got == {s.key: onset_of(s, now) for s in signals}
    assert got["b"] == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize("source", ["prometheus", "alertmanager"])
def test_a_storms_members_folded_into_their_group_make_no_messages_of_their_own(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storm's opening through the store: its members alike (a Prometheus watch's 30 pending
    series opening; 25 new Alertmanager alerts, paged as they open) are folded into their group's
    messages, so none of their own is made — main made each member's copies of its shape's
    messages (2 and 5 each) for grouping to drop — and the run decides what deciding each key
    alone from its whole record does."""
    made: list[str] = []
    copied = policy.retold  # how a member's messages are made like its shape's

    def counted(n: Notification, id: str, incident: Incident) -> Notification:
        made.append(id)
        return copied(n, id, incident)

    monkeypatch.setattr(policy, "retold", counted)
    store = Store(tmp_path / "state.sqlite")
    if source == "prometheus":
        series = [Series({"host": f"pi-{n:02}", "job": "node"}, 0.0) for n in range(30)]
        signals = evaluate_watches([WatchOutcome(WATCH, series)], LINKS).signals
        policies = {Severity.critical: POLICIES[Severity.warning]}  # pending first, then opens
        group = "group/prometheus/RoleAgentFailure:severity=critical"
    else:
        alerts = [alert("HostDown", "critical", 10, n) for n in range(25)]
        signals = to_signals([(RULES[0], alerts)], AM, LINKS)
        policies = POLICIES
        group = "group/alertmanager:alertname=HostDown,severity=critical"
    sent: list[Notification] = []
    for minute in range(2):
        now = T0 + timedelta(minutes=minute)

        def run(incidents: Mapping[str, Incident], now: datetime = now) -> Evaluation:
            return decide(signals, incidents, policies.__getitem__, STORMS, now)

        def through_records(records: Mapping[str, Incident]) -> Evaluation:
            alone = run(dict(store.unresolved()))
            made.clear()
            got = run(records)
            assert made == []
            assert got == alone
            assert readable(got) == readable(alone)
            return got

        sent += store.evaluate(through_records, now)[0].notifications
    assert {n.incident.key for n in sent} == {group}
    assert ("slack", Kind.opened) in {(n.channel, n.kind) for n in sent}
    store.close()
