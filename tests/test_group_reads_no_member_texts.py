"""A storm's group message is made without rendering its members' texts beyond the few it lists:
a member's remediation is known without rendering when its watch has none (`Signal.deferred`),
so comparing every member's (what they all share goes in the group's message) renders nothing —
and the message reads as when every member is rendered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation, default_policies
from fleet_alerting.core.signals import TEXTS, Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.sources.prometheus import judge
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
LINKS = LinksConfig(grafana_url="https://grafana.test/", prometheus_url="https://prom.test/")
SHIPPED = next(w for w in judge.active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
HOSTS = 30
LISTED = StormRules().grouping.max_listed


def signals_of(watch: WatchConfig) -> list[Signal]:
    series = [judge.Series({"host": f"pi-{n:02}", "job": "node"}, 0.0) for n in range(HOSTS)]
    return judge.evaluate_watches([judge.WatchOutcome(watch, series)], LINKS).signals


def opening(tmp_path: Path, watch: WatchConfig, render_all: bool) -> tuple[Evaluation, int]:
    """The pending run, then the opening run: its evaluation, and how many of the opening
    run's signals were left unrendered."""
    store = Store(tmp_path / f"{watch.name}-{render_all}.sqlite")
    policies = default_policies()
    signals: list[Signal] = []
    evaluation = Evaluation([], [])
    for minute in range(2):
        now = T0 + timedelta(minutes=minute)
        signals = signals_of(watch)
        if render_all:
            signals = [s.rendered() for s in signals]

        def run(
            incidents: Mapping[str, Incident], signals: list[Signal] = signals, now: datetime = now
        ) -> Evaluation:
            return decide(signals, incidents, policies.__getitem__, StormRules(), now)

        evaluation, _ = store.evaluate(run, now)
    store.close()
    return evaluation, sum("_render" in s.__dict__ for s in signals)


def told(evaluation: Evaluation) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (n.id, n.channel, {t: getattr(n.incident.signal, t) for t in TEXTS})
        for n in evaluation.notifications
    ]


@pytest.mark.parametrize("remediation", [[], ["ssh {{ $labels.host }}"], ["reboot the Pi"]])
def test_a_storms_group_message_renders_only_the_members_it_lists(
    tmp_path: Path, remediation: list[str]
) -> None:
    watch = SHIPPED.model_copy(update={"name": "NoSteps", "remediation": remediation})
    lazy, unrendered = opening(tmp_path, watch, render_all=False)
    whole, _ = opening(tmp_path, watch, render_all=True)
    assert told(lazy) == told(whole)  # the same messages, texts and ids
    group = [n.incident.signal for n in lazy.notifications if n.incident.key.startswith("group/")]
    assert group and {s.remediation for s in group} == {
        tuple(remediation) if "{{" not in "".join(remediation) else ()
    }
    if not remediation:  # known without rendering: only the listed members are read
        assert unrendered == HOSTS - LISTED
