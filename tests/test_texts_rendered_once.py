"""A storm's new incidents have their texts rendered once in the run that writes them: the store's
write renders each deferred signal into a copy (`Signal.with_texts`) and the run's history record
reads the summary it kept, where it rendered every signal a second time. The rows are the same,
byte for byte, as those of signals rendered before the run; the run's signals stay light."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleet_alerting.config.schema import EscalationRule, PrometheusConfig
from fleet_alerting.core import recipes
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import default_policies
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import StormRules
from fleet_alerting.sources.alertmanager import judge as am_judge
from fleet_alerting.sources.alertmanager.shapes import Alert
from fleet_alerting.sources.prometheus import judge
from fleet_alerting.store import tables
from fleet_alerting.store.backend import is_url
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.stores import new_database, raw_engine

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
LINKS = LinksConfig(grafana_url="https://grafana.test/", prometheus_url="https://prom.test/")
SHIPPED = next(w for w in judge.active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
HOSTS = 40
TABLES = (
    tables.incidents_table,
    tables.texts_table,
    tables.changes_table,
    tables.keys_table,
    tables.runs_table,
)


def signals_at(minute: int) -> list[Signal]:
    """The storm's signals: every host failing from minute 0, one host back from minute 2."""
    series = [
        judge.Series({"host": f"pi-{n:02}", "job": "node"}, 1.0 if minute >= 2 and n == 0 else 0.0)
        for n in range(HOSTS)
    ]
    return judge.evaluate_watches([judge.WatchOutcome(SHIPPED, series)], LINKS).signals


def counted(signal: Signal, renders: dict[str, int]) -> Signal:
    """`signal` with each render of its texts counted under its key."""
    render: Callable[[], dict[str, Any]] | None = signal.__dict__.get("_render")
    if render is not None:
        signal.__dict__["_render"] = partial(_counting, render, renders, signal.key)
    return signal


def _counting(render: Callable[[], dict[str, Any]], renders: dict[str, int], key: str) -> Any:
    renders[key] = renders.get(key, 0) + 1
    return render()


def _recipe_of_counted(render: Any, _renders: dict[str, int], _key: str) -> Any:
    """A counted render's recipe: its own render's, if any."""
    make = recipes.MAKERS.get(getattr(render, "func", None))  # type: ignore[arg-type]
    return None if make is None else make(*render.args)


recipes.MAKERS[_counting] = _recipe_of_counted  # counting changes nothing of what is stored


def runs(db: str, rendered_first: bool) -> tuple[list[dict[str, int]], list[list[Signal]]]:
    """Three runs of the pipeline (pending, opening, one host back) on the store `db`: per run,
    the renders per key and its signals."""
    policies = default_policies()
    renders: list[dict[str, int]] = []
    kept: list[list[Signal]] = []
    with Store(db) as store:
        for minute in range(3):
            renders.append({})
            signals = [counted(s, renders[-1]) for s in signals_at(minute)]
            if rendered_first:
                signals = [s.rendered() for s in signals]
            evaluate_and_record(
                store,
                signals,
                policies.__getitem__,
                T0 + timedelta(minutes=minute),
                rules=StormRules(),
            )
            kept.append(signals)
    return renders, kept


def stored(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the incidents' and the history's tables, in key order."""
    with raw_engine(db).connect() as conn:
        return {
            t.name: conn.execute(sa.select(t).order_by(*t.primary_key.columns)).tuples().all()
            for t in TABLES
        }


@pytest.fixture
def second_db(state_db: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Another store on the same backend as `state_db`."""
    return new_database(request) if is_url(state_db) else str(tmp_path / "rendered.sqlite")


def test_a_new_incidents_texts_are_rendered_once_and_stored_as_rendered_first(
    state_db: str, second_db: str
) -> None:
    renders, signals = runs(state_db, rendered_first=False)
    pending, opening, later = renders
    assert sorted(pending) == sorted(s.key for s in signals[0])
    assert set(pending.values()) == {1}  # the write's copy; history read the summary it kept
    # the pending run's signals keep only their summary: their texts went with the write's chunk
    assert all(
        "_render" in s.__dict__ and "links" not in s.__dict__ and "evidence" not in s.__dict__
        for s in signals[0]
    )
    assert len(opening) <= StormRules().grouping.max_listed  # the group's message lists a few
    assert set(later.values()) <= {1}

    runs(second_db, rendered_first=True)
    lazy, whole = stored(state_db), stored(second_db)
    assert len(lazy["history_changes"]) == HOSTS + 1 and len(lazy["incidents"]) == HOSTS + 1
    assert lazy == whole


AM = "http://alertmanager.test:9093"
ALERTS = 30  # a storm: one group (`grouping.ungrouped_storm`)


def alertmanager_storm(remediation: str, renders: dict[str, int]) -> list[Signal]:
    """Critical `HostDown` alerts as Alertmanager lists them, each render counted."""
    started = T0 - timedelta(minutes=10)
    alerts = [
        Alert(
            fingerprint=f"{n:016x}",
            labels={"alertname": "HostDown", "host": f"pi-{n:02}", "severity": "critical"},
            annotations={"summary": f"pi-{n:02} is down", "remediation": remediation},
            starts_at=started,
            ends_at=T0 + timedelta(hours=1),
            state="active",
            receivers=("team",),
            generator_url="http://prometheus.test/graph",
        )
        for n in range(ALERTS)
    ]
    rule = EscalationRule(name="critical", matchers=['severity="critical"'])
    return [counted(s, renders) for s in am_judge.to_signals([(rule, alerts)], AM, LINKS)]


@pytest.mark.parametrize("remediation", ["", "  restart node_exporter\n\n check its cable "])
def test_an_alertmanager_storms_opening_renders_each_alert_once_and_keeps_the_rest_light(
    state_db: str, second_db: str, remediation: str
) -> None:
    """Alertmanager opens its incidents in their first run: the group's message compares every
    member's remediation, known without rendering (the annotation), and renders only the members
    it lists; the write keeps each alert's recipe (core.recipes), rendered or not, and renders
    none (tests/test_store_recipes.py: what is read back)."""
    policy = default_policies()[Severity.critical].model_copy(update={"open_after": 1})
    stores: list[dict[str, list[tuple[Any, ...]]]] = []
    for db, rendered_first in ((state_db, False), (second_db, True)):
        renders: dict[str, int] = {}
        signals = alertmanager_storm(remediation, renders)
        if rendered_first:
            signals = [s.rendered() for s in signals]
        with Store(db) as store:
            evaluation, _ = evaluate_and_record(
                store, signals, lambda _s: policy, T0, rules=StormRules()
            )
        [group] = [i for i in evaluation.incidents if i.key.startswith("group/")]
        assert group.signal.remediation == tuple(
            line.strip() for line in remediation.splitlines() if line.strip()
        )
        if rendered_first:
            assert renders == {s.key: 1 for s in signals}
        else:  # the group's message renders the members it lists; the store keeps recipes
            assert set(renders.values()) == {1}
            assert len(renders) == StormRules().grouping.max_listed  # schema 9: every alert
            rendered = [s.key for s in signals if "_render" not in s.__dict__]
            assert sorted(rendered) == sorted(renders)
        stores.append(stored(db))
    lazy, whole = stores
    assert len(lazy["incidents"]) == ALERTS + 1 and len(lazy["incident_texts"]) == ALERTS + 1
    assert lazy == whole
