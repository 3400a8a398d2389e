"""An Alertmanager alert's texts are stored as their recipe (schema 10, core.recipes): what they
are rendered from, not the texts themselves. A storm's opening renders none of its alerts' texts
(summary and remediation are known without), and every reader — the listing, `incident`, the
engine's records, the board — reads each alert's signal with the texts the source renders, on
both backends, for odd alerts too (silenced, inhibited, no alertname, no host, non-ASCII, quotes
and newlines). A store of schema 9 upgrades and reads its rendered rows as they were; code of 9,
which would read a recipe as a signal without links or evidence, is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter

from fleet_alerting.config.schema import EscalationRule
from fleet_alerting.core.policy import default_policies
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import StormRules
from fleet_alerting.sources.alertmanager import judge
from fleet_alerting.sources.alertmanager.shapes import Alert
from fleet_alerting.store import migrations, tables
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.tables import texts_table
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.stores import raw_engine
from tests.test_texts_rendered_once import AM, LINKS, T0, alertmanager_storm, counted

RULE = EscalationRule(name="critical", matchers=['severity="critical"'])
POLICY = default_policies()[Severity.critical].model_copy(update={"open_after": 1})
STARTED = T0 - timedelta(minutes=10)


def odd_alert(n: int, labels: dict[str, str], **changes: object) -> Alert:
    fields: dict[str, object] = {
        "fingerprint": f"odd{n:013x}",
        "labels": {"severity": "critical", **labels},
        "annotations": {"summary": f'odd "{n}"\nline', "description": "d" * 600},
        "starts_at": STARTED,
        "ends_at": T0 + timedelta(hours=1),
        "state": "active",
    } | changes
    return Alert(**fields)  # type: ignore[arg-type]


ODD = [
    odd_alert(0, {"alertname": "Zürich ☃", "instance": 'a"b\\c:9100'}, receivers=("x", "y")),
    odd_alert(1, {"job": "node"}, annotations={}, generator_url=None),  # no alertname, no host
    odd_alert(2, {"alertname": "Silenced", "host": "h"}, state="suppressed", silenced_by=("s1",)),
    odd_alert(3, {"alertname": "Held", "host": "h"}, state="suppressed", inhibited_by=("i",)),
    odd_alert(
        4,
        {"alertname": "Steps", "host": "h\u2028"},
        annotations={"remediation": " one\n\n two ", "runbook": "https://rb.test/x?a=1&b=2"},
    ),
]


ODD_KEYS = [judge.alert_key(a) for a in ODD]


def observed(renders: dict[str, int]) -> list[Signal]:
    odd = judge.to_signals([(RULE, ODD)], AM, LINKS)
    return alertmanager_storm("restart it", renders) + [counted(s, renders) for s in odd]


def as_the_source_renders() -> dict[str, Signal]:
    """Each alert's signal with its texts, as the source renders them (`judge.to_signal`)."""
    signals = [s.rendered() for s in alertmanager_storm("restart it", {})]
    signals += [judge.to_signal(alert, RULE, AM, LINKS) for alert in ODD]
    return {s.key: s for s in signals}


def texts_rows(db: str) -> dict[str, str]:
    with raw_engine(db).connect() as conn:
        query = sa.select(texts_table.c.key, texts_table.c.signal)
        return dict(conn.execute(query).tuples().all())


def test_an_opening_renders_no_alerts_texts_and_every_reader_reads_them(state_db: str) -> None:
    renders: dict[str, int] = {}
    expected = as_the_source_renders()
    with Store(state_db) as store:
        evaluation, _ = evaluate_and_record(
            store, observed(renders), lambda _s: POLICY, T0, rules=StormRules()
        )
        # the storm's group renders the members it lists, and the write none of the others
        # (main: each once); an alert told alone renders its texts for its message, and one
        # that opens nothing for the run's history (its summary)
        assert set(renders.values()) == {1}
        members = [k for k in renders if k not in ODD_KEYS]
        assert len(members) == StormRules().grouping.max_listed  # main: 30
        assert set(ODD_KEYS) <= set(renders)
        told = dict(renders)
        alerts = [i for i in evaluation.incidents if i.key in expected]
        assert len(alerts) == len(expected) - 2  # the two suppressed alerts open nothing
        listed = {i.key: i for i in store.incidents() if i.key in expected}
        assert {k: i.signal for k, i in listed.items()} == {i.key: expected[i.key] for i in alerts}
        assert {i.key: store.incident(i.key) for i in alerts} == listed
        with store.transaction() as unit:
            records = unit.records()
            assert {i.key: records[i.key] for i in alerts} == listed
        shown, _ = open_incidents(store, 100)
        assert {i.key: i for i in shown if i.key in expected} == listed
        assert renders == told  # the readers render their own
    stored = texts_rows(state_db)
    assert all(stored[i.key].startswith('{"recipe":"alertmanager"') for i in alerts)  # main: none
    assert not any('"evidence"' in stored[i.key] for i in alerts)  # no texts rendered


def test_a_steady_run_keeps_the_recipes_and_a_changed_alert_gets_its_own(state_db: str) -> None:
    with Store(state_db) as store:
        evaluate_and_record(store, observed({}), lambda _s: POLICY, T0, rules=StormRules())
        before = texts_rows(state_db)
        again = observed({})
        changed = judge.to_signals(
            [(RULE, [odd_alert(0, dict(ODD[0].labels), annotations={"summary": "now this"})])],
            AM,
            LINKS,
        )
        [key] = [s.key for s in changed]
        signals = [s for s in again if s.key != key] + changed
        later = T0 + timedelta(minutes=1)
        evaluate_and_record(store, signals, lambda _s: POLICY, later, rules=StormRules())
        after = texts_rows(state_db)
        assert {k: v for k, v in after.items() if k != key} == {
            k: v for k, v in before.items() if k != key
        }
        read = store.incident(key)
    assert after[key] != before[key] and after[key].startswith('{"recipe":')
    assert read is not None and read.signal == changed[0].rendered()
    assert read.signal.summary == "now this"


SIGNAL_JSON = TypeAdapter(Signal)


def as_schema_9(db: str, signals: dict[str, Signal]) -> None:
    """The texts rows as code of schema 9 wrote them: each signal rendered (without its key);
    the store's version 9."""
    with raw_engine(db).begin() as conn:
        for key in texts_rows(db):
            if key not in signals:
                continue
            whole = SIGNAL_JSON.dump_json(signals[key], exclude={"key"}).decode()
            conn.execute(
                sa.update(texts_table).where(texts_table.c.key == key).values(signal=whole)
            )
        conn.exec_driver_sql(
            "UPDATE store_meta SET value = '9' WHERE key IN ('schema_version', 'compatible_from')"
        )


def test_a_store_of_schema_9_upgrades_reads_its_rows_as_they_were_and_goes_on(
    state_db: str,
) -> None:
    expected = as_the_source_renders()
    with Store(state_db) as store:
        evaluate_and_record(store, observed({}), lambda _s: POLICY, T0, rules=StormRules())
        before = store.incidents()
    as_schema_9(state_db, expected)
    assert not any(s.startswith('{"recipe":') for s in texts_rows(state_db).values())
    with Store(state_db) as store:
        assert store.upgraded_from == 9
        assert store.incidents() == before
        later = T0 + timedelta(hours=2)
        evaluate_and_record(store, observed({}), lambda _s: POLICY, later, rules=StormRules())
        after = {i.key: i.signal for i in store.incidents() if i.key in expected}
    assert after == {i.key: i.signal for i in before if i.key in expected}
    with raw_engine(state_db).connect() as conn:
        meta = migrations.recorded(conn)
    now = str(tables.SCHEMA_VERSION)
    assert (meta["schema_version"], meta["compatible_from"]) == (now, now)
    # code of 9 would read a recipe as a signal without links or evidence: refused
    with raw_engine(state_db).begin() as conn, pytest.raises(StoreError, match="usable by code"):
        migrations.upgrade(conn, tables.metadata, 9, {}, state_db)
