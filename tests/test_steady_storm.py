"""A watch's storm decided over the store's records (briefs, a full record only when asked for)
is decided as over every record read whole: the steady runs' shortcuts — what is due worked out
once per brief shape, the storm passes looking at every incident in one pass, a group's members
found in one pass, the briefs read without a call per value — change no incident and no message.

Each seed is a storm of one Prometheus watch over a few runs: hosts failing, recovering and
vanishing, some acknowledged or silenced by operators, a matcher silence, an inhibiting cause,
reminders and pages falling due."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from fleet_alerting.config.schema import PrometheusConfig
from fleet_alerting.core import actions as core_actions
from fleet_alerting.core.incidents import Incident, Records, unseen
from fleet_alerting.core.inhibition import InhibitRule
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.muting import Muting, Silence
from fleet_alerting.core.policy import Evaluation, PolicyConfig
from fleet_alerting.core.signals import TEXTS, Severity
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.sources.prometheus.judge import (
    Series,
    WatchEvaluation,
    WatchOutcome,
    active_watches,
    evaluate_watches,
)
from fleet_alerting.store import actions as store_actions
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
WATCH = {w.name: w for w in active_watches(PrometheusConfig())}["RoleAgentFailure"]
LINKS = LinksConfig(
    grafana_url="https://grafana.test/", loki_datasource_uid="L1", prometheus_url="http://p:9090"
)
HOSTS = [f"pi-{i:02d}" for i in range(24)]


def readable(evaluation: Evaluation) -> tuple[dict[str, Incident], list[tuple[object, ...]]]:
    """Every changed record, and every message with the texts an operator reads."""
    told = [
        (n.id, n.channel, n.kind, n.incident, {t: getattr(n.incident.signal, t) for t in TEXTS})
        for n in evaluation.notifications
    ]
    return {i.key: i for i in evaluation.incidents}, told


def storm(seed: int, folder: Path) -> int:
    """Run the seed's storm; returns how many runs compared equal (fails on the first not)."""
    rnd = random.Random(seed)
    policies = {
        Severity.critical: PolicyConfig(
            page=["pagerduty"],
            page_after=timedelta(minutes=rnd.choice([0, 5, 20])),
            repeat=rnd.choice([None, timedelta(minutes=10), [timedelta(minutes=5)] * 2]),
            mirror=rnd.random() < 0.5,
            ack_timeout=rnd.choice([None, timedelta(minutes=15)]),
        ),
        Severity.warning: PolicyConfig(),
        Severity.info: PolicyConfig(notify=[]),
    }
    cause = InhibitRule(
        name="rack",
        source_matchers=['host="pi-00"'],
        target_matchers=['host=~"pi-0[1-5]"'],
    )
    rules = StormRules(inhibit_rules=[cause] if rnd.random() < 0.6 else [])
    decided = partial(decide, policy_for=policies.__getitem__, rules=rules)
    failing = set(rnd.sample(HOSTS, 18))
    store = Store(folder / f"state-{seed}.sqlite")
    compared = 0
    try:
        for minute in range(0, 70, 5):
            now = T0 + timedelta(minutes=minute)
            if rnd.random() < 0.3:  # a few hosts recover or fail, the storm mostly stays
                failing ^= set(rnd.sample(HOSTS, 2))
            present = [h for h in HOSTS if h in failing or rnd.random() < 0.9]
            firing = [Series({"host": h, "job": "node"}, 0.0) for h in HOSTS if h in failing]
            outcome = WatchOutcome(WATCH, firing, [Series({"host": h}, 1.0) for h in present])
            result = evaluate_watches([outcome], LINKS)
            act(store, rnd, policies, now)
            silence = Silence(
                id=f"s{minute}",
                matchers=(f'host="{rnd.choice(HOSTS)}"',),
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(minutes=rnd.choice([3, 12])),
                author="ana",
            )
            muting = Muting([silence] if rnd.random() < 0.4 else [])

            compare(store, result, decided, muting, now, f"seed {seed}, minute {minute}")
            compared += 1
    finally:
        store.close()
    return compared


def compare(
    store: Store,
    result: WatchEvaluation,
    decided: Callable[..., Evaluation],
    muting: Muting,
    now: datetime,
    what: str,
) -> None:
    """One run through the store, decided over its `Records` and over every record read whole:
    the same incidents and messages, or the test fails."""

    def run(incidents: Mapping[str, Incident]) -> Evaluation:
        signals = result.signals + result.unseen(unseen(incidents, result.signals))
        return decided(signals, incidents, now=now, muting=muting)

    def both(records: Mapping[str, Incident]) -> Evaluation:
        assert isinstance(records, Records)
        whole = store.unresolved()
        expected = run({key: whole[key] for key in list(iter(records))})
        assert readable(run(records)) == readable(expected), what
        return expected

    store.evaluate(both, now)


def act(
    store: Store, rnd: random.Random, policies: dict[Severity, PolicyConfig], now: datetime
) -> None:
    """Operators acknowledge or silence a few open incidents."""
    for key, incident in store.unresolved().items():
        if key.startswith("group/") or rnd.random() > 0.1:
            continue
        channels = policies[incident.severity].channels()
        if rnd.random() < 0.5:
            change = partial(core_actions.acknowledge, actor="bob", now=now, channels=channels)
        else:
            until = rnd.choice([None, now + timedelta(minutes=10)])
            change = partial(
                core_actions.silence, actor="bob", now=now, until=until, channels=channels
            )
        store_actions.apply(store, key, change, action="act", actor="bob", via="test", now=now)


@pytest.mark.parametrize("seed", range(8))
def test_a_storm_over_the_stored_briefs_is_decided_as_over_every_record(
    seed: int, tmp_path: Path
) -> None:
    assert storm(seed, tmp_path) == 14
