"""Odd answers never resolve anything (tests/cases/odd_answers.yaml).

An answer that is not exactly the documented shape is "cannot evaluate" for what it covers: a
warning naming the watch or alert, and every incident it covers keeps its state — no resolve, no
"no longer seen", no PagerDuty resolve. Each case runs the real watch flow twice (plainly: store,
outbox and PagerDuty fake, no Prefect API) against a fake speaking the source's protocol.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.config.schema import PrometheusConfig
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.sources.prometheus.client import query_watches
from fleet_alerting.sources.prometheus.judge import evaluate_watches
from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer
from tests.test_bad_answers import (
    FAILURE,
    PRESENCE,
    AlertmanagerV2,
    Prometheus,
    am_alert,
    sample,
    vector,
)

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "odd_answers.yaml").read_text())
PAGING = {"open_after": 1, "resolve_after": 1, "notify": [], "page": ["pagerduty"]}


def write_config(path: Path, pd: PagerDutyServer, **sections: Any) -> None:
    """Critical incidents page at once; warnings are kept in the store only."""
    (path.parent / "pd.key").write_text("P" * 32)
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "outbox_file": "outbox.jsonl",
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd.url}/v2/enqueue"},
        },
        "policies": {
            "critical": PAGING | {"page_after": "0s"},
            "warning": {"open_after": 1, "resolve_after": 1, "notify": []},
        },
        "grouping": {"enabled": False},
        **sections,
    }
    path.write_text(yaml.safe_dump(config))


def incidents(config_file: Path) -> dict[str, Incident]:
    with Store(config_file.parent / "state.sqlite") as store:
        return {i.key: i for i in store.incidents(include_resolved=True)}


def resolves(pd: PagerDutyServer) -> list[str]:
    return sorted(e["dedup_key"] for e in pd.events if e["event_action"] == "resolve")


@pytest.fixture
def pd() -> Iterator[PagerDutyServer]:
    with PagerDutyServer() as server:
        yield server


# Prometheus ----------------------------------------------------------------------------------
HOST = "prometheus/RoleAgentFailure:host={}"


@pytest.mark.parametrize("case", CASES["prometheus"], ids=lambda c: c["name"])
def test_prometheus_odd_answer_keeps_every_incident(
    case: dict, config_file: Path, pd: PagerDutyServer
) -> None:
    from fleet_alerting.flows.watches import prometheus_watches

    watch = FAILURE.model_dump(mode="json", exclude_defaults=True)
    with Prometheus() as prom:
        prometheus = {"url": prom.url, "default_watches": False, "watches": [watch]}
        write_config(config_file, pd, prometheus=prometheus)
        prom.answers[PRESENCE] = vector(*(sample(h, "1") for h in "abc"))
        prom.answers[FAILURE.expr] = vector(sample("a"), sample("b"))
        asyncio.run(prometheus_watches.fn(str(config_file)))
        assert {incidents(config_file)[HOST.format(h)].state for h in "ab"} == {State.paged}

        prom.answers[FAILURE.expr] = case.get("expr", vector(sample("a")))
        prom.answers[PRESENCE] = case.get("metric", prom.answers[PRESENCE])
        summary = asyncio.run(prometheus_watches.fn(str(config_file)))

    now = incidents(config_file)
    assert {now[HOST.format(h)].state for h in "ab"} == {State.paged}
    assert summary["resolved"] == 0 and resolves(pd) == []
    warnings = [i.signal.summary for i in now.values() if i.is_open and i.severity == "warning"]
    assert len(warnings) == 1, warnings
    assert "RoleAgentFailure" in warnings[0] and case["warning"] in warnings[0]


NULL_VALUE = {"metric": {"host": "a"}, "value": [1.7e9, None]}


@pytest.mark.parametrize(
    "odd",
    [None, [42], [NULL_VALUE]],
    ids=["null", "a sample that is no object", "a named sample whose value is null"],
)
def test_an_odd_presence_answer_moves_no_absent_metric_incident(
    odd: object, config_file: Path, pd: PagerDutyServer
) -> None:
    from fleet_alerting.flows.watches import prometheus_watches

    absent_key = "prometheus/RoleAgentFailure:absent=role_agent_last_run_success"
    watch = FAILURE.model_dump(mode="json", exclude_defaults=True) | {"absent_is": "critical"}
    odd_answer = {"status": "success", "data": {"resultType": "vector", "result": odd}}
    with Prometheus() as prom:
        prometheus = {"url": prom.url, "default_watches": False, "watches": [watch]}
        write_config(config_file, pd, prometheus=prometheus)
        prom.answers[FAILURE.expr] = vector()

        def run(presence: object) -> State | None:
            prom.answers[PRESENCE] = presence
            asyncio.run(prometheus_watches.fn(str(config_file)))
            found = incidents(config_file).get(absent_key)
            return None if found is None else found.state

        assert run(vector(sample("a", "1"))) is None
        assert run(odd_answer) is None  # not "no series at all"
        assert run(vector()) == State.paged
        assert run(odd_answer) == State.paged  # not "reported again"
    assert resolves(pd) == []


class RefusesTimeout(FakeServer):
    def handle(self, request: Request) -> Response:
        error = 'invalid parameter "timeout": cannot parse "1.5s" to a valid duration'
        return Response(400, {"status": "error", "errorType": "bad_data", "error": error})


def test_a_refused_parameter_is_not_blamed_on_the_expressions() -> None:
    other = FAILURE.model_copy(update={"name": "Other", "expr": "up == 0"})
    with RefusesTimeout() as prom:
        config = PrometheusConfig(url=prom.url, default_watches=False, watches=[FAILURE, other])
        outcomes = asyncio.run(query_watches(config, [FAILURE, other]))
    (warning,) = [s.summary for s in evaluate_watches(outcomes, LinksConfig()).signals]
    assert warning.startswith("prometheus watches RoleAgentFailure, Other: configuration error: ")
    assert "expr" not in warning and 'invalid parameter "timeout"' in warning


# Alertmanager --------------------------------------------------------------------------------
ALERT = "alertmanager:fingerprint={}"


def odd_record(case: dict) -> object:
    if "raw" in case:
        return case["raw"]
    record = am_alert("B", "bbbb", timedelta(minutes=10))
    for name in case.get("drop", []):
        del record[name]
    return copy.deepcopy(record | case.get("set", {}))


@pytest.mark.parametrize("case", CASES["alertmanager"], ids=lambda c: c["name"])
def test_alertmanager_odd_alert_keeps_what_it_may_cover(
    case: dict, config_file: Path, pd: PagerDutyServer
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    def alert(name: str) -> dict:
        return am_alert(name, name.lower() * 4, timedelta(minutes=10), instance=f"pi-{name}")

    with AlertmanagerV2() as am:
        rules = [{"name": "critical", "matchers": ['severity="critical"']}]
        # no Watchdog rule, and no restart: an alert the fake does not list is over
        alertmanager = {"url": am.url, "rules": rules, "watchdog": None, "restart_grace": "0s"}
        write_config(config_file, pd, alertmanager=alertmanager)
        am.alerts = [alert("A"), alert("B"), alert("C")]
        asyncio.run(alertmanager_escalation.fn(str(config_file)))
        assert {incidents(config_file)[ALERT.format(f * 4)].state for f in "abc"} == {State.paged}

        am.alerts = [alert("A"), odd_record(case)]
        if "body" in case:  # the fake sends a dict or list as JSON, anything else as text
            am.alerts = json.dumps(case["body"])  # type: ignore[assignment]
        asyncio.run(alertmanager_escalation.fn(str(config_file)))

    now = incidents(config_file)
    kept = "abc" if case.get("frozen") else "ab"
    assert {now[ALERT.format(f * 4)].state for f in kept} == {State.paged}
    assert resolves(pd) == ([] if case.get("frozen") else [ALERT.format("cccc")])
    source = "alertmanager-api" if "body" in case else "alertmanager-records"
    warnings = [i.signal.summary for i in now.values() if i.source == source]
    assert len(warnings) == 1 and case["warning"] in warnings[0], warnings
