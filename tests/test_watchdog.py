"""The dead man's switch against a real Prometheus (the shipped always-firing `vector(1)` rule,
config/prometheus/watchdog.rules.yml) and a real Alertmanager: missing for `missing_after` pages
"alerting pipeline broken", an unanswered query changes nothing, seen again resolves. The flow
runs plainly (store, outbox, PagerDuty fake). Time is never waited for: the clock kept in the
store is set back instead."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fleet_alerting.core.incidents import State
from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer
from tests.servers import free_port, start_alertmanager, start_prometheus, wait_until
from tests.test_bad_answers import am_alert
from tests.test_odd_answers import incidents, resolves, write_config

SHIPPED_RULE = Path(__file__).parent.parent / "config" / "prometheus" / "watchdog.rules.yml"
AM_CONFIG = "route:\n  receiver: ops\nreceivers:\n  - name: ops\n"
KEY = "alertmanager-watchdog:alertname=Watchdog"
CLOCK = "alertmanager-watchdog:Watchdog"
CASES = yaml.safe_load((Path(__file__).parent / "cases" / "watchdog.yaml").read_text())


def firing(am: str) -> dict[str, Any]:
    """Prometheus config: the shipped always-firing rule, sent to Alertmanager `am`."""
    target = am.removeprefix("http://")
    alerting = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
    return {"rule_files": [str(SHIPPED_RULE)], "alerting": alerting}


def listed(am: str) -> list[dict[str, Any]]:
    query = {"filter": 'alertname="Watchdog"'}
    return httpx.get(f"{am}/api/v2/alerts", params=query, timeout=5).json()


def resolve_by_hand(am: str) -> None:
    """What Prometheus would send on a clean stop (it keeps an alert alive for minutes)."""
    (alert,) = listed(am)
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    body = [{"labels": alert["labels"], "startsAt": alert["startsAt"], "endsAt": ended}]
    httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def set_clock_back(config_file: Path, name: str = "Watchdog", **ago: timedelta) -> None:
    key, now = f"alertmanager-watchdog:{name}", datetime.now(UTC)
    with Store(config_file.parent / "state.sqlite") as store:
        clock = store.get_value(key) or {}
        store.set_value(key, clock | {field: (now - d).isoformat() for field, d in ago.items()})


def clock(config_file: Path) -> dict[str, Any]:
    with Store(config_file.parent / "state.sqlite") as store:
        return store.get_value(CLOCK)


@pytest.fixture
def pd() -> Iterator[PagerDutyServer]:
    with PagerDutyServer() as server:
        yield server


@pytest.mark.integration
def test_watchdog_missing_pages_unanswered_keeps_seen_again_resolves(
    tmp_path: Path, config_file: Path, pd: PagerDutyServer
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    def run(url: str) -> dict[str, int]:
        watchdog = {"alertname": "Watchdog", "missing_after": "5m"}
        rules = [{"name": "critical", "matchers": ['severity="critical"']}]
        alertmanager = {"url": url, "rules": rules, "watchdog": watchdog}
        write_config(config_file, pd, alertmanager=alertmanager)
        return asyncio.run(alertmanager_escalation.fn(str(config_file)))

    am_server, am = start_alertmanager(tmp_path / "am", AM_CONFIG)
    servers = [am_server]
    try:
        prom, _ = start_prometheus(tmp_path / "p1", {"self": None}, firing(am))
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

        servers.append(start_prometheus(tmp_path / "p2", {"self": None}, firing(am))[0])
        wait_until(lambda: bool(listed(am)), 60, "Watchdog listed again")
        run(am)
        assert incidents(config_file)[KEY].state == State.resolved
        assert resolves(pd) == [KEY]
    finally:
        for server in servers:
            server.stop()


# run by run against a fake Alertmanager (tests/cases/watchdog.yaml) ------------------------------
class WatchdogAlertmanager(FakeServer):
    """`GET /api/v2/alerts`: the escalation rule's query lists nothing; the watchdog's (an
    `alertname="…"` filter) answers as `answer` says."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = "absent"

    def handle(self, request: Request) -> Response:
        if self.answer == "down":
            return Response(503, "Service Unavailable")
        named = [
            m for f in request.query.get("filter", []) if (m := re.match(r'alertname="(.+)"', f))
        ]
        if not named:
            return Response(200, [])
        if self.answer == "refused":
            return Response(400, {"code": 400, "message": "bad matcher"})
        alert = am_alert(named[0][1], "d06d06", timedelta(hours=2))
        if self.answer == "ended":
            alert["endsAt"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        if self.answer == "silenced":
            alert["status"] = {"state": "suppressed", "silencedBy": ["s1"], "inhibitedBy": []}
        if self.answer == "malformed":
            del alert["fingerprint"]
        return Response(200, [] if self.answer == "absent" else [alert])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_watchdog_run_by_run(case: dict, config_file: Path, pd: PagerDutyServer) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    key = case.get("key", KEY)
    rules = [{"name": "critical", "matchers": ['severity="critical"']}]
    with WatchdogAlertmanager() as am:
        for number, step in enumerate(case["steps"], 1):
            watchdog = step.get("config", case.get("config", {}))
            alertmanager = {"url": am.url, "rules": rules, "watchdog": watchdog}
            write_config(config_file, pd, alertmanager=alertmanager)
            am.answer = step["watchdog"]
            if "rewind" in step:
                ago = {k: _ago(v) for k, v in step["rewind"].items()}
                set_clock_back(config_file, (watchdog or {}).get("alertname", "Watchdog"), **ago)
            asyncio.run(alertmanager_escalation.fn(str(config_file)))
            now = incidents(config_file)
            where = f"step {number}"
            state = now[key].state.value if key in now else "none"
            assert state == step["state"], where
            if "summary" in step:
                assert step["summary"] in now[key].signal.summary, where
            open_warnings = [
                i.signal.summary
                for i in now.values()
                if i.source == "alertmanager-api" and i.is_open
            ]
            if "warning" in step:
                assert [w for w in open_warnings if w.startswith(step["warning"])], where
        asked = [f for r in am.requests for f in r.query.get("filter", [])]
    if case.get("config", {}) is None:
        assert all(not f.startswith("alertname=") for f in asked)


def _ago(text: str) -> timedelta:
    number, unit = int(text[:-1]), text[-1]
    return timedelta(minutes=number) if unit == "m" else timedelta(hours=number)
