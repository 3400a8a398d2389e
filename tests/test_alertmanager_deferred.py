"""Done when: an escalation of many Alertmanager alerts builds their texts (summary, links,
evidence) only for the incidents that change. A steady run through a real store renders none;
a rendered signal reads exactly as one built whole; what the texts say is in the fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet_alerting.config.schema import EscalationRule
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import TEXTS, Signal, fingerprint_of
from fleet_alerting.sources.alertmanager.judge import to_signal, to_signals
from fleet_alerting.sources.alertmanager.shapes import Alert
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
RULE = EscalationRule(name="critical", matchers=['severity="critical"'])
LINKS = LinksConfig(grafana_url="https://grafana.test/", loki_datasource_uid="LOKI1")
AM = "http://alertmanager.test:9093"
POLICY = PolicyConfig(open_after=1, resolve_after=1, repeat=timedelta(hours=1))


def alert(i: int, **changes: object) -> Alert:
    host = f"pi-{i:04}"
    base = Alert(
        fingerprint=f"fp{i:012}",
        labels={"alertname": "HostDown", "instance": f"{host}:9100", "severity": "critical"},
        annotations={"summary": f"{host} is down", "description": "no scrape for 5m"},
        starts_at=T0 - timedelta(minutes=10),
        ends_at=T0 + timedelta(minutes=5),
        state="active",
        receivers=("pagerduty",),
        generator_url="http://prometheus.test/graph?g0.expr=up",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def unrendered(signals: list[Signal]) -> int:
    return sum("_render" in s.__dict__ for s in signals)


def test_a_steady_escalation_renders_no_text(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    alerts = [alert(i) for i in range(50)]

    def run(now: datetime) -> tuple[list[Signal], Evaluation]:
        signals = to_signals([(RULE, alerts)], AM, LINKS)

        def decide(incidents: Mapping[str, Incident]) -> Evaluation:
            return evaluate(signals, incidents, lambda _s: POLICY, now)

        return signals, store.evaluate(decide, now)[0]

    _, first = run(T0)
    assert len(first.incidents) == 50  # opened and told: their texts were read
    steady, second = run(T0 + timedelta(seconds=60))
    assert second.incidents == []
    assert unrendered(steady) == 50
    store.close()


def test_a_rendered_signal_reads_as_one_built_whole() -> None:
    odd = [
        alert(1),
        alert(2, state="suppressed", silenced_by=("s1",)),
        alert(3, labels={"alertname": "ApiDown", "job": "api"}, generator_url=None),
        alert(4, annotations={"remediation": "restart it\nthen check", "runbook_url": "rb"}),
        alert(5, ends_at=T0 - timedelta(seconds=1)),
    ]
    for one in odd:
        [lazy] = to_signals([(RULE, [one])], AM, LINKS)
        whole = to_signal(one, RULE, AM, LINKS)
        for field in ("key", "source", "firing", "severity", "target", "since", "labels", *TEXTS):
            assert getattr(lazy, field) == getattr(whole, field), field


def test_what_the_texts_say_is_in_the_fingerprint() -> None:
    def fingerprint(one: Alert, links: LinksConfig = LINKS) -> str:
        return fingerprint_of(to_signals([(RULE, [one])], AM, links)[0])

    base = fingerprint(alert(1))
    assert fingerprint(alert(1)) == base
    assert fingerprint(alert(1, annotations={"summary": "other words"})) != base
    assert fingerprint(alert(1, state="suppressed", inhibited_by=("x",))) != base
    assert fingerprint(alert(1, receivers=("slack",))) != base
    assert fingerprint(alert(1), LinksConfig(grafana_url="https://other.test/")) != base
