"""Light records: the store keeps what the engine compares, a steady failure is
compared on it and never read in full nor rewritten, and texts are rendered only for incidents
that change — with the same words as when every series was rendered every run."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.incidents import Incident, Kind, Records
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.templates import format_value, render
from fleet_alerting.delivery.notifiers import slack_webhook
from fleet_alerting.sources.blackbox.client import ProbeResult, ProbeTarget, to_signal
from fleet_alerting.sources.prometheus.judge import (
    Series,
    WatchOutcome,
    active_watches,
    evaluate_watches,
    graph_link,
    logs_query,
    source_of,
)
from fleet_alerting.sources.prometheus.judge import _links as watch_links
from fleet_alerting.store.database import Store, incidents_table

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
POLICY = PolicyConfig(open_after=2, resolve_after=2, repeat=timedelta(hours=1))
LINKS = LinksConfig(
    grafana_url="https://grafana.test/", loki_datasource_uid="LOKI1", prometheus_url="http://p:9090"
)
TARGET = ProbeTarget("api", "https://api.test/healthz", Severity.critical)


class Run:
    """One evaluation through the store, as the pipeline runs it; remembers what it read."""

    def __init__(self, store: Store):
        self.store = store
        self.loaded = -1

    def __call__(self, signals: list[Signal], now: datetime) -> Evaluation:
        def decide(incidents: Mapping[str, Incident]) -> Evaluation:
            evaluation = evaluate(signals, incidents, lambda _s: POLICY, now)
            assert isinstance(incidents, Records)
            self.loaded = incidents.loaded
            return evaluation

        return self.store.evaluate(decide, now)[0]


def updated_at(store: Store, key: str) -> str:
    table = incidents_table.c
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table.updated_at).where(table.key == key)).scalar_one()


def probe(latency: float, status: int = 500) -> Signal:
    error = f"HTTP {status} (probe failed, module http_2xx)"
    return to_signal(ProbeResult(TARGET, False, status, latency, error))


def test_a_steady_blackbox_failure_with_another_latency_every_run_is_not_rewritten(
    state_db: str,
) -> None:
    run = Run(Store(state_db))
    key = probe(100.0).key
    run([probe(100.0)], T0)
    opened = run([probe(130.5)], T0 + timedelta(minutes=1))
    assert [i.state.value for i in opened.incidents] == ["firing"]
    written = updated_at(run.store, key)
    for minute, latency in enumerate([87.2, 1503.9, 240.0], start=2):
        steady = run([probe(latency)], T0 + timedelta(minutes=minute))
        assert steady.incidents == [] and steady.notifications == []
        assert run.loaded == 0  # compared on its brief: the record was not even read
    assert updated_at(run.store, key) == written
    # the latency is shown (the opening observation's), it is just not compared
    assert run.store.incident(key).signal.evidence["latency_ms"] == 130.5
    # what matters still counts: another status is another observation, written
    changed = run([probe(90.0, status=503)], T0 + timedelta(minutes=6))
    assert [i.signal.evidence["status"] for i in changed.incidents] == [503]
    assert updated_at(run.store, key) != written


def _watch() -> WatchConfig:
    return next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")


def _series(host: str, value: float = 0.0, **labels: str) -> Series:
    return Series({"__name__": "x", "host": host, "instance": "n:9100"} | labels, value)


def _signals(*series: Series) -> list[Signal]:
    return evaluate_watches([WatchOutcome(_watch(), firing=list(series))], LINKS).signals


@pytest.mark.parametrize(
    "changed",
    [
        _series("pi-audio-01", 3.0),  # the value
        _series("pi-audio-01", instance="n:9200"),  # a label that is not part of the key
    ],
    ids=["value", "label"],
)
def test_a_watch_series_is_written_only_when_a_label_or_its_value_changes(
    state_db: str, changed: Series
) -> None:
    run = Run(Store(state_db))
    key = incident_key(source_of(_watch()), {"host": "pi-audio-01"})
    run(_signals(_series("pi-audio-01")), T0)
    assert len(run(_signals(_series("pi-audio-01")), T0 + timedelta(minutes=1)).notifications)
    written = updated_at(run.store, key)
    steady = run(_signals(_series("pi-audio-01")), T0 + timedelta(minutes=2))
    assert (steady.incidents, run.loaded) == ([], 0)
    assert updated_at(run.store, key) == written
    again = run(_signals(changed), T0 + timedelta(minutes=3))
    (incident,) = again.incidents
    assert again.notifications == []  # a new observation of the same failure: nobody told
    assert incident.signal.labels == {k: v for k, v in changed.labels.items() if k != "__name__"}
    assert incident.signal.evidence["value"] == format_value(changed.value)
    stored = run.store.incident(key)
    assert stored is not None and stored.signal == incident.signal
    assert updated_at(run.store, key) != written


def test_a_reminder_falls_due_on_a_steady_failure(tmp_path: Path) -> None:
    """The brief knows when the failure was last told: a reminder is not skipped as steady."""
    run = Run(Store(tmp_path / "state.sqlite"))
    run(_signals(_series("pi-audio-01")), T0)
    run(_signals(_series("pi-audio-01")), T0 + timedelta(minutes=1))
    assert run(_signals(_series("pi-audio-01")), T0 + timedelta(minutes=30)).incidents == []
    later = run(_signals(_series("pi-audio-01")), T0 + timedelta(minutes=61))
    assert [n.kind for n in later.notifications] == [Kind.reminder]


def _eager(watch: WatchConfig, series: Series) -> Signal:
    """A firing series' signal built eagerly, every text rendered: what light records avoid."""
    labels, value = series.labels, series.value
    return Signal(
        key=incident_key(source_of(watch), {"host": labels["host"]}),
        source=source_of(watch),
        firing=True,
        severity=watch.severity,
        summary=render(watch.summary, labels, value, watch.name),
        target=labels["host"],
        runbook_url=watch.runbook_url,
        remediation=tuple(render(step, labels, value, watch.name) for step in watch.remediation),
        links=watch_links(LINKS, logs_query(watch, labels), graph_link(LINKS, watch.expr)),
        labels={k: v for k, v in labels.items() if k != "__name__"},
        evidence={
            "details": render(watch.description, labels, value, watch.name),
            "value": format_value(value),
        },
    )


def test_a_notification_reads_as_when_every_text_was_rendered_every_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    run = Run(store)
    series = _series("pi-audio-01", 0.0)
    run(_signals(series), T0)
    run(_signals(series), T0 + timedelta(minutes=1))
    (queued,) = [i.notification for i in store.outbox() if i.notification.channel == "slack"]
    assert queued.kind == Kind.opened
    eager = _eager(_watch(), series)
    assert queued.incident.signal == eager
    before = slack_webhook.render(replace(queued, incident=replace(queued.incident, signal=eager)))
    assert slack_webhook.render(queued) == before
    text = str(before)
    assert "Role agent on pi-audio-01 failed its last run" in text and "ssh pi-audio-01" in text


def test_a_store_written_before_light_records_gets_the_brief_of_its_open_incidents(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.sqlite"
    shutil.copy(Path(__file__).parent / "fixtures" / "store-main-c4597d7.sqlite", db)
    Store(db).close()
    with sqlite3.connect(db) as raw:
        rows = raw.execute(
            "SELECT key, state, fingerprint IS NOT NULL, failures, onset IS NOT NULL, acted "
            "FROM incidents ORDER BY key"
        ).fetchall()
    assert rows == [
        ("alertmanager:fingerprint=abc123", "paged", 1, 1, 1, 0),
        ("blackbox:target=dev1", "firing", 1, 1, 1, 0),
        ("blackbox:target=dev2", "resolved", 0, None, 0, None),  # never compared again
    ]


def test_incidents_with_long_keys_that_inhibit_each_other_are_stored(state_db: str) -> None:
    """A watch without key_labels keys its incidents by every label: keys of a kilobyte and
    more. PostgreSQL limits an index entry to 2,704 bytes, so no index may hold several keys."""
    import secrets

    long_labels = {f"label_{i:02d}": secrets.token_hex(40) for i in range(16)}
    signals = [
        Signal(
            key=incident_key("prometheus/AllLabels", long_labels | {"host": host}),
            source="prometheus/AllLabels",
            firing=True,
            severity=Severity.warning,
            summary=f"{host} fails",
            labels=long_labels | {"host": host},
        )
        for host in ("pi-01", "pi-02")
    ]
    assert all(len(s.key) > 1400 for s in signals)
    store = Store(state_db)
    run = Run(store)
    run(signals, T0)
    opened = run(signals, T0 + timedelta(minutes=1))
    cause, effect = sorted(opened.incidents, key=lambda i: i.key)
    inhibited = replace(effect, inhibited_by=cause.key, group=cause.key)
    store.record(Evaluation([cause, inhibited], []), T0 + timedelta(minutes=1))
    stored = store.incident(effect.key)
    assert stored is not None and stored.inhibited_by == cause.key
    steady = run(signals, T0 + timedelta(minutes=2))
    assert steady.notifications == []


def test_a_postgresql_store_of_schema_2_drops_the_brief_index(
    request: pytest.FixtureRequest,
) -> None:
    """Schema 2 made the covering brief index on PostgreSQL too: the upgrade drops it, and
    kilobyte keys that inhibit each other are stored."""
    from tests.stores import new_database, raw_engine

    db = new_database(request)
    Store(db).close()
    columns = "state, key, source, fingerprint, failures, successes, onset, notified_at, acted"
    with raw_engine(db).begin() as conn:
        conn.exec_driver_sql(
            f"CREATE INDEX ix_incidents_brief ON incidents ({columns}, inhibited_by, grouped_in)"
        )
        conn.exec_driver_sql("UPDATE store_meta SET value = '2' WHERE key = 'schema_version'")
    store = Store(db)
    assert store.upgraded_from == 2
    with raw_engine(db).connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("incidents")}
    assert "ix_incidents_brief" not in indexes and "ix_incidents_state_resolved_at" in indexes
    test_incidents_with_long_keys_that_inhibit_each_other_are_stored(db)
