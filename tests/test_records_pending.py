"""A storm's opening run: pending failures observed again the same are taken from their brief
(`Records.pending_as_observed`), never read and parsed — and the engine decides exactly what it
decides with every record read in full. Also `evolve`, the engine's `dataclasses.replace`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleet_alerting.config.schema import PrometheusConfig
from fleet_alerting.core import incidents
from fleet_alerting.core.incidents import Acts, Escalation, Incident, Page, Records, State
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation, PolicyConfig, default_policies, evaluate
from fleet_alerting.core.signals import TEXTS, Severity, Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.sources.blackbox.client import ProbeResult, ProbeTarget, to_signal
from fleet_alerting.sources.prometheus import judge
from fleet_alerting.sources.prometheus.judge import (
    Series,
    WatchOutcome,
    active_watches,
    evaluate_watches,
)
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
LINKS = LinksConfig(grafana_url="https://grafana.test/", prometheus_url="http://p:9090")
WATCH = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")


def series(host: str, value: float = 0.0) -> Signal:
    labels = {"__name__": "role_agent_last_run_success", "host": host, "job": "node"}
    outcome = WatchOutcome(WATCH, [Series(labels, value)], None)
    return evaluate_watches([outcome], LINKS).signals[0]


def probe(name: str, status: int = 500, severity: Severity = Severity.warning) -> Signal:
    target = ProbeTarget(name, f"https://{name}.test/healthz", severity)
    return to_signal(ProbeResult(target, status < 400, status, 12.0, f"HTTP {status}"))


def odd_probe(name: str) -> Signal:
    """What a probe says of a target blackbox_exporter could not probe (an odd answer)."""
    target = ProbeTarget(name, f"https://{name}.test/healthz", Severity.warning)
    return to_signal(ProbeResult(target, False, None, None, "no answer", observed=False))


Edit = Callable[[Incident], Incident]


def acked(incident: Incident) -> Incident:
    return replace(incident, acts=Acts(acked_by="ann", acked_at=T0, changed_at=T0))


def inhibited(incident: Incident) -> Incident:
    return replace(incident, inhibited_by="prometheus/Other:host=x")


def grouped(incident: Incident) -> Incident:
    return replace(incident, group="group/prometheus/RoleAgentFailure:severity=critical")


def told(incident: Incident) -> Incident:
    return replace(incident, last_notified_at=T0)


# (case, the first observation, the edit of its stored record, the second, open_after,
#  whether the second run reads no record)
CASES: list[tuple[str, Signal, Edit | None, Signal, int, bool]] = [
    ("watch series opens", series("pi-1"), None, series("pi-1"), 2, True),
    ("watch series stays pending", series("pi-1"), None, series("pi-1"), 3, True),
    ("probe opens", probe("api"), None, probe("api"), 2, True),
    ("odd answer stays as it was", odd_probe("api"), None, odd_probe("api"), 2, True),
    ("another value: full read", series("pi-1"), None, series("pi-1", -1.0), 2, False),
    ("another status: full read", probe("api", 500), None, probe("api", 503), 2, False),
    (
        "another severity: full read",
        probe("api"),
        None,
        probe("api", severity=Severity.info),
        2,
        False,
    ),
    ("recovers: full read", probe("api"), None, probe("api", 200), 2, False),
    ("acknowledged: full read", series("pi-1"), acked, series("pi-1"), 2, False),
    ("inhibited: full read", series("pi-1"), inhibited, series("pi-1"), 2, False),
    ("grouped: full read", series("pi-1"), grouped, series("pi-1"), 2, False),
    ("told: full read", series("pi-1"), told, series("pi-1"), 2, False),
]


def two_runs(
    tmp_path: Path, first: Signal, edit: Edit | None, again: Signal, policy: PolicyConfig
) -> tuple[Store, Evaluation, int]:
    """Store `first` (pending), edit its record as stored, then evaluate `again` through the
    store, checked equal to the evaluation from every record read in full; returns the store,
    the evaluation and how many records it read."""
    store = Store(tmp_path / "state.sqlite")
    store.evaluate(lambda records: evaluate([first], records, lambda _s: policy, T0), T0)
    if edit is not None:
        stored = store.incident(first.key)
        assert stored is not None
        store.record(Evaluation([edit(stored)], []), T0)
    read: list[int] = []

    def through_records(records: Mapping[str, Incident]) -> Evaluation:
        assert isinstance(records, Records)
        # the slow path, on the same store state: every record read in full
        full = dict(store.unresolved())
        expected = evaluate([again], full, lambda _s: policy, T0 + timedelta(minutes=1))
        got = evaluate([again], records, lambda _s: policy, T0 + timedelta(minutes=1))
        read.append(records.loaded)
        assert got == expected
        return got

    evaluation, _ = store.evaluate(through_records, T0 + timedelta(minutes=1))
    return store, evaluation, read[0]


@pytest.mark.parametrize(
    ("first", "edit", "again", "open_after", "unread"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_second_observation_is_decided_as_with_every_record_read(
    tmp_path: Path,
    first: Signal,
    edit: Edit | None,
    again: Signal,
    open_after: int,
    unread: bool,
) -> None:
    policy = PolicyConfig(open_after=open_after, page=["pagerduty"], mirror=True)
    store, evaluation, loaded = two_runs(tmp_path, first, edit, again, policy)
    assert loaded == (0 if unread else 1)
    stored = store.incident(again.key)
    assert stored is not None and evaluation.incidents
    assert stored == evaluation.incidents[0]  # what was written reads back as decided
    store.close()


def test_a_storm_opening_reads_no_record_and_decides_as_with_every_record_read(
    tmp_path: Path,
) -> None:
    """50 series and a probe pending: the storm passes (fleet aggregates, inhibition, grouping,
    the per-run bound) decide the same from briefs as from the records."""
    policies = default_policies()
    rules = StormRules()
    hosts = [f"pi-{n:03d}" for n in range(50)]

    def signals() -> list[Signal]:
        labels = [{"host": h, "job": "node"} for h in hosts]
        outcome = WatchOutcome(WATCH, [Series(x, 0.0) for x in labels], None)
        return [*evaluate_watches([outcome], LINKS).signals, probe("api")]

    store = Store(tmp_path / "state.sqlite")
    store.evaluate(lambda r: decide(signals(), r, policies.__getitem__, rules, T0), T0)
    later = T0 + timedelta(minutes=1)
    read: list[int] = []

    def through_records(records: Mapping[str, Incident]) -> Evaluation:
        assert isinstance(records, Records)
        expected = decide(signals(), dict(store.unresolved()), policies.__getitem__, rules, later)
        got = decide(signals(), records, policies.__getitem__, rules, later)
        read.append(records.loaded)
        assert got == expected
        return got

    evaluation, queued = store.evaluate(through_records, later)
    assert read == [0]
    assert len(evaluation.incidents) == len(hosts) + 2  # the members, the probe, the group
    assert queued == 3  # the group (Slack + mirror), the probe (Slack)
    store.close()


# (severity, first seen at minute, failing since (None: its first observation), hosts or
# probes): the opening runs meet several shapes (severity, onset, failures) among members
# alike but for their key
SHAPES: list[tuple[str, int, datetime | None, list[str]]] = [
    ("critical", 0, None, ["pi-a1", "pi-a2", "pi-a3", "pi-a4"]),
    ("critical", 0, T0 - timedelta(hours=1), ["pi-c1", "pi-c2"]),  # its page is due as it opens
    ("critical", 1, None, ["pi-b1", "pi-b2", "pi-b3"]),
    ("critical", 1, T0 - timedelta(hours=1), ["pi-d1", "pi-d2"]),  # as pi-c*, a run later
    ("warning", 0, None, ["api", "db", "queue"]),
    ("warning", 1, None, ["cache", "dns"]),
    ("critical probe", 0, None, ["edge", "vpn"]),  # the probes' source, another severity
]


def since(signal: Signal, onset: datetime | None) -> Signal:
    """`signal` as a source that knows when the failure began says it."""
    if onset is None:
        return signal
    texts = {name: getattr(signal, name) for name in TEXTS}
    return Signal.deferred(
        signal.key,
        signal.source,
        signal.firing,
        signal.severity,
        signal.target,
        signal.labels,
        signal.fingerprint,
        lambda: texts,
        signal.runbook_url,
        since=onset,
    )


def observe(kind: str, name: str) -> Signal:
    if kind == "critical":
        return series(name)
    return probe(name, severity=Severity.critical if kind == "critical probe" else Severity.warning)


def test_members_alike_but_for_the_key_are_decided_as_with_every_record_read(
    tmp_path: Path,
) -> None:
    """Pending records known from their briefs are decided once per shape and the rest made
    like it (`policy._Alike`): each of them — ids, escalation, counts, what grouping and the
    passes make of it — equal to the engine's decision with every record read, run after run."""
    policies = {
        Severity.critical: PolicyConfig(open_after=3, page=["pagerduty"], mirror=True),
        Severity.warning: PolicyConfig(open_after=2),
    }

    def signals(minute: int) -> list[Signal]:
        out: list[Signal] = []
        for severity, first, onset, names in SHAPES:
            if minute >= first:
                out += [since(observe(severity, n), onset) for n in names]
        return out

    store = Store(tmp_path / "state.sqlite")
    read: list[int] = []
    for minute in range(4):
        now = T0 + timedelta(minutes=minute)

        def through_records(
            records: Mapping[str, Incident], minute: int = minute, now: datetime = now
        ) -> Evaluation:
            assert isinstance(records, Records)
            full = dict(store.unresolved())
            expected = decide(signals(minute), full, policies.__getitem__, StormRules(), now)
            got = decide(signals(minute), records, policies.__getitem__, StormRules(), now)
            read.append(records.loaded)
            assert got == expected
            assert [n.id for n in got.notifications] == [n.id for n in expected.notifications]
            return got

        store.evaluate(through_records, now)
    assert read[1] == 3  # of run 2's pending records, only the warning probes inhibited
    states = sorted(str(i.state) for i in store.incidents())
    # 18 members, the fleet aggregate and two groups open; the members failing for an hour and
    # their group are paged
    assert states == ["firing"] * 16 + ["paged"] * 5, " ".join(states)
    store.close()


def test_a_storm_opening_renders_only_the_texts_its_message_lists(
    state_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 series pending, then opening in one group: each member's stored texts are those of
    its fingerprint, kept as written when it began — rendered again only for the members the
    group's message lists (and the two compared for a remediation they share). Every record
    reads back as decided, texts included (SQLite and PostgreSQL)."""
    rendered: list[str] = []
    render = judge._texts

    def counted(*args: Any) -> dict[str, Any]:
        rendered.append(args[1]["host"])
        return render(*args)

    monkeypatch.setattr(judge, "_texts", counted)
    policies = default_policies()
    rules = StormRules()
    hosts = [f"pi-{n:03d}" for n in range(50)]

    def signals() -> list[Signal]:
        outcome = WatchOutcome(WATCH, [Series({"host": h, "job": "node"}, 0.0) for h in hosts])
        return evaluate_watches([outcome], LINKS).signals

    store = Store(state_db)
    store.evaluate(lambda r: decide(signals(), r, policies.__getitem__, rules, T0), T0)
    rendered.clear()
    later = T0 + timedelta(minutes=1)
    evaluation, queued = store.evaluate(
        lambda r: decide(signals(), r, policies.__getitem__, rules, later), later
    )
    assert queued == 2  # the group: Slack and its mirror
    assert len(rendered) <= rules.grouping.max_listed + 2, rendered
    assert len(evaluation.incidents) == len(hosts) + 1
    for incident in evaluation.incidents:
        assert store.incident(incident.key) == incident
    store.close()


PAGED = Escalation(step=1, steps=2, pages=(Page("pagerduty", T0, 1),))
RECORD = Incident("k", "s", Severity.critical, State.firing, T0, T0, probe("api"), escalation=PAGED)


@pytest.mark.parametrize(
    ("record", "changes"),
    [
        (RECORD, {}),
        (RECORD, {"state": State.paged, "paged_via": ("pagerduty",), "reminders": 3}),
        (RECORD, {"acts": Acts(acked_by="ann"), "signal": probe("db"), "group": None}),
        (RECORD.escalation, {"step": 2, "next_at": T0, "next_to": ("oncall",)}),
        (RECORD.acts, {"silenced_by": "bob", "silenced_until": T0}),
    ],
)
def test_evolve_is_dataclasses_replace(record: object, changes: dict[str, object]) -> None:
    new = incidents.evolve(record, **changes)
    assert new == replace(record, **changes)  # type: ignore[type-var]
    assert type(new) is type(record) and new is not record
    assert vars(new) == vars(replace(record, **changes))  # type: ignore[type-var]


def test_evolve_refuses_a_field_the_record_does_not_have() -> None:
    with pytest.raises(TypeError, match="no field 'stae'"):
        incidents.evolve(RECORD, stae=State.paged)


def test_rekeyed_and_grouped_in_are_dataclasses_replace() -> None:
    """The storm path's copies of a record: every other field as it was, nothing shared that a
    later copy could change."""
    signal = probe("db")
    record = replace(RECORD, reminders=2, acts=Acts(acked_by="ann"), paged_via=("pagerduty",))
    for new, expected in [
        (incidents.rekeyed(record, "other", signal), replace(record, key="other", signal=signal)),
        (incidents.grouped_in(record, "group/s:x"), replace(record, group="group/s:x")),
    ]:
        assert new == expected and vars(new) == vars(expected)
        assert type(new) is Incident and vars(new) is not vars(record)
    assert record.key == "k" and record.group is None  # the original is left as it was


def _brief(incident: Incident) -> incidents.Brief:
    return incidents.Brief.of(incident)


@pytest.mark.parametrize("read_first", [False, True])
def test_overlay_pairs_each_key_with_what_was_read_and_what_changed(read_first: bool) -> None:
    """What the storm passes ask of every incident in one loop (`Overlay.pairs`, `glances`): a
    key of the briefs with its glance (the full record once read) and its change; a key only
    changed with None before it; every key once, in the order of iteration."""
    a, b, c = RECORD, replace(RECORD, key="b", inhibited_by="x"), replace(RECORD, key="c")
    before_records = {r.key: r for r in (a, b, c)}
    records = Records(
        {k: _brief(r) for k, r in before_records.items()},
        lambda keys: {k: before_records[k] for k in keys},
    )
    if read_first:
        records.preload(["b"])
    changed = {"c": replace(c, state=State.paged), "new": replace(RECORD, key="new")}
    for before in (records, before_records):
        after = incidents.Overlay(before, changed)
        glance_b = b if read_first or before is before_records else _brief(b)
        expected = [
            ("k", a if before is before_records else _brief(a), None),
            ("b", glance_b, None),
            ("c", c if before is before_records else _brief(c), changed["c"]),
            ("new", None, changed["new"]),
        ]
        assert list(after.pairs()) == expected
        assert list(after.glances()) == [(k, made or was) for k, was, made in expected]
        assert [k for k, _ in after.glances()] == list(after)


def test_a_metric_name_is_part_of_a_series_fingerprint() -> None:
    """A summary may show `{{ $labels.__name__ }}`: texts kept for a fingerprint must not be
    another metric's."""
    first, second = (
        evaluate_watches([WatchOutcome(WATCH, [Series(labels, 0.0)])], LINKS).signals[0]
        for labels in ({"__name__": n, "host": "h1", "job": "node"} for n in ("m_a", "m_b"))
    )
    assert first.key == second.key and first.fingerprint != second.fingerprint


def test_a_nul_in_a_label_is_stored_and_read_on_both_backends(state_db: str) -> None:
    """PostgreSQL cannot read `\\u0000` in JSON: a NUL from outside is stored as U+FFFD, so the
    opening that keeps the stored texts and the board's read of severities both work."""
    from fleet_alerting.store.board import open_incidents

    labels = {"__name__": "role_agent_last_run_success", "host": "h1", "job": "no\x00de"}

    def run(records: Records, now: datetime) -> Evaluation:
        signals = evaluate_watches([WatchOutcome(WATCH, [Series(labels, 0.0)])], LINKS).signals
        return decide(signals, records, default_policies().__getitem__, StormRules(), now)

    with Store(state_db) as store:
        for minutes in range(3):
            now = T0 + timedelta(minutes=minutes)
            store.evaluate(lambda r, now=now: run(r, now), now)
        (incident,) = store.incidents()
        assert incident.state == State.firing and incident.signal.labels["job"] == "no\ufffdde"
        shown, counts = open_incidents(store, 10)
        assert [i.key for i in shown] == [incident.key] and counts["critical"] == 1
