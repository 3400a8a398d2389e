"""The dead man's switch against a real Prometheus (an always-firing `vector(1)` rule) and a real
Alertmanager: missing for `missing_after` pages "alerting pipeline broken", an unanswered query
changes nothing, seen again resolves. The flow runs plainly (store, outbox, PagerDuty fake).
Time is never waited for: the clock kept in the store is set back instead."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet_alerting.core.incidents import State
from fleet_alerting.store.database import Store
from tests.fakes.saas import PagerDutyServer
from tests.servers import free_port, start_alertmanager, start_prometheus, wait_until
from tests.test_odd_answers import incidents, resolves, write_config

pytestmark = pytest.mark.integration

RULE = {"alert": "Watchdog", "expr": "vector(1)", "labels": {"severity": "none"}}
AM_CONFIG = "route:\n  receiver: ops\nreceivers:\n  - name: ops\n"
KEY = "alertmanager-watchdog:alertname=Watchdog"
CLOCK = "alertmanager-watchdog:Watchdog"


def listed(am: str) -> list[dict[str, Any]]:
    query = {"filter": 'alertname="Watchdog"'}
    return httpx.get(f"{am}/api/v2/alerts", params=query, timeout=5).json()


def resolve_by_hand(am: str) -> None:
    """What Prometheus would send on a clean stop (it keeps an alert alive for minutes)."""
    (alert,) = listed(am)
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    body = [{"labels": alert["labels"], "startsAt": alert["startsAt"], "endsAt": ended}]
    httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def set_clock_back(config_file: Path, **ago: timedelta) -> None:
    now = datetime.now(UTC)
    store = Store(config_file.parent / "state.sqlite")
    try:
        store.set_value(CLOCK, {name: (now - d).isoformat() for name, d in ago.items()})
    finally:
        store.close()


def clock(config_file: Path) -> dict[str, Any]:
    store = Store(config_file.parent / "state.sqlite")
    try:
        return store.get_value(CLOCK)
    finally:
        store.close()


@pytest.fixture
def pd() -> Iterator[PagerDutyServer]:
    with PagerDutyServer() as server:
        yield server


def test_watchdog_missing_pages_unanswered_keeps_seen_again_resolves(
    tmp_path: Path, config_file: Path, pd: PagerDutyServer
) -> None:
    from fleet_alerting.flows.alertmanager_escalation import alertmanager_escalation

    def run(url: str) -> dict[str, int]:
        watchdog = {"alertname": "Watchdog", "missing_after": "5m"}
        rules = [{"name": "critical", "matchers": ['severity="critical"']}]
        alertmanager = {"url": url, "rules": rules, "watchdog": watchdog}
        write_config(config_file, pd, alertmanager=alertmanager)
        return asyncio.run(alertmanager_escalation.fn(str(config_file)))

    am_server, am = start_alertmanager(tmp_path / "am", AM_CONFIG)
    servers = [am_server]
    try:
        prom, _ = start_prometheus(tmp_path / "p1", {"self": None}, [RULE], am)
        servers.append(prom)
        wait_until(lambda: bool(listed(am)), 60, "Watchdog listed by Alertmanager")
        run(am)
        assert KEY not in incidents(config_file) and clock(config_file)["last_seen"]

        prom.stop()  # the pipeline breaks
        resolve_by_hand(am)
        wait_until(lambda: not listed(am), 30, "Watchdog no longer listed")
        run(am)
        assert KEY not in incidents(config_file)  # missing for less than 5m

        set_clock_back(
            config_file, last_seen=timedelta(minutes=6), looking_since=timedelta(hours=1)
        )
        run(am)
        paged = incidents(config_file)[KEY]
        assert (paged.state, paged.severity) == (State.paged, "critical")
        assert paged.signal.summary.startswith(
            "Alerting pipeline broken: Alertmanager does not list the always-firing alert "
            "Watchdog (last listed "
        )
        steps = " ".join(paged.signal.remediation)
        assert "Prometheus is up" in steps and "alert: Watchdog" in steps
        assert "amtool alert query alertname=Watchdog" in steps
        assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [("trigger", KEY)]

        dead = f"http://127.0.0.1:{free_port()}"
        summary = run(dead)  # no answer: one warning for the rules, the page stays
        assert summary["rule_problems"] == 1 and summary["resolved"] == 0
        now = incidents(config_file)
        assert now[KEY].state == State.paged and resolves(pd) == []
        (problem,) = [i for i in now.values() if i.source == "alertmanager-api"]
        assert problem.signal.summary.startswith("Alertmanager rule critical: ")
        assert clock(config_file)["looking_since"] is None  # the outage is not counted twice

        servers.append(start_prometheus(tmp_path / "p2", {"self": None}, [RULE], am)[0])
        wait_until(lambda: bool(listed(am)), 60, "Watchdog listed again")
        run(am)
        assert incidents(config_file)[KEY].state == State.resolved
        assert resolves(pd) == [KEY]
    finally:
        for server in servers:
            server.stop()
