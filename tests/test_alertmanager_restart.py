"""What a real Alertmanager's answer can vouch for. It keeps alerts in memory: restarted, it lists
none until Prometheus re-sends them (its resend delay, 1m by default), and that complete, empty
answer must not resolve — nor, when the alerts come back, page again. And an alert it lists as
active fires, whatever its `endsAt` says next to our clock (ours may run ahead of its)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fleet_alerting.config import Config
from fleet_alerting.sources import alertmanager as alertmanager_watch
from fleet_alerting.sources.alertmanager.judge import restart_doubt
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.observe import observe
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.http import FakeServer, Request, Response
from tests.servers import start_alertmanager, wait_until

AM_CONFIG = "route:\n  receiver: ops\nreceivers:\n  - name: ops\n"
STARTED = datetime.now(UTC) - timedelta(minutes=10)  # the alerts' startsAt: long past page_after


class RestartableAlertmanager:
    """A real Alertmanager that restarts on the same port and storage, as systemd restarts it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.server, self.url = start_alertmanager(workdir, AM_CONFIG)
        self.port = int(self.url.rsplit(":", 1)[1])

    def restart(self) -> None:
        self.server.stop()
        self.server, _ = start_alertmanager(self.workdir, AM_CONFIG, self.port)

    def lists(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v2/alerts", timeout=5).json()

    def up_for(self) -> timedelta:
        status = httpx.get(f"{self.url}/api/v2/status", timeout=5).json()
        return datetime.now(UTC) - datetime.fromisoformat(status["uptime"])


@pytest.fixture
def am(tmp_path: Path) -> Iterator[RestartableAlertmanager]:
    server = RestartableAlertmanager(tmp_path / "alertmanager")
    yield server
    server.server.stop()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert(name: str, ends_in: timedelta) -> dict[str, Any]:
    severity = "none" if name == "Watchdog" else "critical"
    return {
        "labels": {"alertname": name, "severity": severity, "instance": "fleet"},
        "annotations": {"summary": f"{name} on the fleet"},
        "startsAt": iso(STARTED),
        "endsAt": iso(datetime.now(UTC) + ends_in),
    }


def prometheus_sends(url: str, *names: str) -> None:
    """What Prometheus (re-)sends every resend delay: the alerts with their original startsAt,
    endsAt 4 minutes ahead of its clock."""
    alerts = [alert(name, timedelta(minutes=4)) for name in names]
    httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
    wanted = set(names)
    wait_until(lambda: {a["labels"]["alertname"] for a in listed(url)} >= wanted, 10)


def listed(url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/api/v2/alerts", timeout=5).json()


class Runs:
    """alertmanager-escalation runs as the flow makes them, without Prefect: the watch observes,
    then the engine decides with its policies and its `unseen`, in one store transaction."""

    def __init__(self, tmp: Path, url: str, **alertmanager: Any):
        self.tmp, self.url = tmp, url
        self.store = Store(self.config(**alertmanager).state)

    def config(self, **alertmanager: Any) -> Config:
        state = {"path": str(self.tmp / "state.sqlite")}
        return Config.model_validate(
            {"state": state, "alertmanager": {"url": self.url, **alertmanager}}
        )

    def run(self, now: datetime | None = None, **alertmanager: Any) -> None:
        config, now = self.config(**alertmanager), now or datetime.now(UTC)
        seen = asyncio.run(observe(alertmanager_watch.WATCH, config, now))
        evaluate_and_record(
            self.store,
            seen.signals,
            seen.policy_for or config.policy,
            now,
            seen.unseen_sources,
            seen.unseen,
            None,
            config.storm_rules(),
            config.maintenance_rules(),
        )

    def paging(self) -> list[str]:
        """The PagerDuty notifications queued, in order: `paged AlertName`, `resolved …`."""
        return [
            f"{row.notification.kind.value} {row.notification.incident.signal.labels['alertname']}"
            for row in self.store.outbox(("queued",))
            if row.notification.channel == "pagerduty"
        ]

    def states(self) -> dict[str, str]:
        return {
            i.signal.labels.get("alertname", i.key): i.state.value
            for i in self.store.incidents(include_resolved=True)
            if i.source == "alertmanager"
        }


@pytest.fixture
def runs(tmp_path: Path, am: RestartableAlertmanager) -> Iterator[Runs]:
    made = Runs(tmp_path, am.url)
    yield made
    made.store.close()


def test_a_restart_neither_resolves_nor_pages_twice_while_the_watchdog_is_missing(
    am: RestartableAlertmanager, runs: Runs, caplog: pytest.LogCaptureFixture
) -> None:
    """Main: paged, resolved, paged again (a second PagerDuty incident, its ack lost)."""
    prometheus_sends(am.url, "FleetOffline", "Watchdog")
    runs.run()
    am.restart()
    assert am.lists() == []  # complete, well formed, empty
    with caplog.at_level(logging.WARNING, "fleet_alerting.run"):
        runs.run()  # between the restart and Prometheus' next resend
    assert runs.states() == {"FleetOffline": "paged"}
    assert (
        "1 incident no longer listed by Alertmanager kept open this run: the always-firing "
        "alert Watchdog is missing from its answer"
    ) in caplog.text
    prometheus_sends(am.url, "FleetOffline", "Watchdog")
    runs.run()
    assert runs.paging() == ["paged FleetOffline"]


def test_without_a_watchdog_a_restart_holds_resolves_for_the_grace_then_a_gone_alert_resolves(
    am: RestartableAlertmanager, runs: Runs, caplog: pytest.LogCaptureFixture
) -> None:
    prometheus_sends(am.url, "FleetOffline")
    runs.run(watchdog=None)
    am.restart()
    ahead = datetime.now(UTC) + timedelta(minutes=10)  # by its own clock it just started
    with caplog.at_level(logging.WARNING, "fleet_alerting.run"):
        runs.run(ahead, watchdog=None)  # restart_grace: 3m by default
    assert runs.states() == {"FleetOffline": "paged"}
    assert "less than alertmanager.restart_grace (3m): Prometheus may not have re-sent" in (
        caplog.text
    )
    # Prometheus no longer sends it: really gone, it resolves once Alertmanager is past the grace
    runs.run(watchdog=None, restart_grace="2s")
    assert runs.states() == {"FleetOffline": "paged"}
    wait_until(lambda: am.up_for() > timedelta(seconds=3), 20, "Alertmanager up for 3s")
    runs.run(watchdog=None, restart_grace="2s")
    assert runs.states() == {"FleetOffline": "resolved"}
    assert runs.paging() == ["paged FleetOffline", "resolved FleetOffline"]


def test_past_the_grace_with_the_watchdog_listed_a_gone_alert_resolves(
    am: RestartableAlertmanager, runs: Runs
) -> None:
    """The control: an answer that vouches for absence resolves at once (one absence)."""
    prometheus_sends(am.url, "FleetOffline", "Watchdog")
    runs.run(restart_grace="1s")
    wait_until(lambda: am.up_for() > timedelta(seconds=2), 20, "Alertmanager up for 2s")
    ended = alert("FleetOffline", timedelta(seconds=-1))  # Prometheus resolves it
    httpx.post(f"{am.url}/api/v2/alerts", json=[ended], timeout=5).raise_for_status()
    wait_until(lambda: len(am.lists()) == 1, 10)  # the Watchdog alone
    runs.run(restart_grace="1s")
    assert runs.paging() == ["paged FleetOffline", "resolved FleetOffline"]


class RecordingRelay(FakeServer):
    """Relays every request to the real Alertmanager and records its path; `status_down`: its
    status answers 503."""

    def __init__(self, upstream: str):
        super().__init__()
        self.upstream = upstream
        self.status_down = False

    def handle(self, request: Request) -> Response:
        if self.status_down and request.path == "/api/v2/status":
            return Response(503, "Service Unavailable")
        answer = httpx.request(
            request.method,
            f"{self.upstream}{request.path}",
            params={k: v for k, v in request.query.items()},
            content=request.body,
            headers={"content-type": request.headers.get("content-type", "application/json")},
            timeout=5,
        )
        return Response(answer.status_code, answer.content, {"content-type": "application/json"})

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def test_alertmanagers_status_is_asked_only_when_an_absence_would_resolve(
    am: RestartableAlertmanager, tmp_path: Path
) -> None:
    prometheus_sends(am.url, "FleetOffline", "Watchdog")
    with RecordingRelay(am.url) as relay:
        runs = Runs(tmp_path, relay.url)
        try:
            runs.run()
            runs.run()  # steady: everything open is listed
            assert "/api/v2/status" not in relay.paths()
            am.restart()
            prometheus_sends(am.url, "Watchdog")  # FleetOffline is gone, the Watchdog is back
            runs.run()
        finally:
            runs.store.close()
    assert relay.paths().count("/api/v2/status") == 1
    assert runs.states() == {"FleetOffline": "paged"}  # Alertmanager started moments ago


@pytest.mark.parametrize("ahead", [timedelta(minutes=5), timedelta(0)], ids=["5m", "in step"])
def test_an_active_alert_fires_however_far_our_clock_runs_ahead_of_alertmanagers(
    am: RestartableAlertmanager, runs: Runs, ahead: timedelta, caplog: pytest.LogCaptureFixture
) -> None:
    """Main, 5m: the alert (endsAt 4 min ahead of Alertmanager's clock, so 1 min behind ours)
    never pages, and an open incident resolves. The Watchdog, listed the same way, is seen: an
    alert Prometheus then resolves is resolved here too (no missing Watchdog holds it)."""
    for _ in range(3):  # Prometheus re-sends before each run
        prometheus_sends(am.url, "FleetOffline", "Watchdog")
        with caplog.at_level(logging.WARNING, "fleet_alerting.run"):
            runs.run(datetime.now(UTC) + ahead, restart_grace="0s")
    said = re.findall(r"this machine's clock runs 0:0[45]:\d\d ahead", caplog.text)
    assert len(said) == (3 if ahead else 0)  # once a run (its Date counts whole seconds)
    assert runs.paging() == ["paged FleetOffline"]
    assert runs.states() == {"FleetOffline": "paged"}
    ended = alert("FleetOffline", timedelta(seconds=-1))
    httpx.post(f"{am.url}/api/v2/alerts", json=[ended], timeout=5).raise_for_status()
    wait_until(lambda: len(am.lists()) == 1, 10)  # the Watchdog alone
    runs.run(datetime.now(UTC) + ahead, restart_grace="0s")
    assert runs.paging() == ["paged FleetOffline", "resolved FleetOffline"]


CASES = yaml.safe_load((Path(__file__).parent / "cases" / "alertmanager_restart.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_restart_doubt(case: dict[str, Any]) -> None:
    answered = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
    started = None if case["up"] is None else answered - span(case["up"])
    assert restart_doubt(started, answered, span(case["grace"])) == case["doubt"]


def span(text: str) -> timedelta:
    return timedelta(seconds=int(text[:-1]) * {"s": 1, "m": 60}[text[-1]])


def test_restart_grace_reaches_the_config() -> None:
    assert Config.model_validate(
        {"alertmanager": {"url": "http://127.0.0.1:9093"}}
    ).alertmanager.restart_grace == timedelta(minutes=3)  # type: ignore[union-attr]


def test_without_alertmanagers_status_nothing_resolves_by_absence(
    am: RestartableAlertmanager, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prometheus_sends(am.url, "FleetOffline")
    with RecordingRelay(am.url) as relay:
        runs = Runs(tmp_path, relay.url, watchdog=None)
        try:
            runs.run(watchdog=None)
            am.restart()
            relay.status_down = True
            with caplog.at_level(logging.WARNING, "fleet_alerting.run"):
                runs.run(watchdog=None)
            assert runs.states() == {"FleetOffline": "paged"}
        finally:
            runs.store.close()
    assert "kept open this run: its start time is unknown (" in caplog.text
    assert "HTTP 503" in caplog.text


def test_an_unreadable_status_holds_resolves_for_the_grace_then_the_watchdog_vouches(
    am: RestartableAlertmanager, tmp_path: Path
) -> None:
    """A status that cannot be read (503, a timeout) holds for `restart_grace` from the first run
    that could not read it (a restart's window: only the Watchdog's rule group may have been sent
    again), then the Watchdog listed vouches — an alert Prometheus resolved is not held open for
    as long as the status stays unreadable."""
    prometheus_sends(am.url, "FleetOffline", "Watchdog")
    with RecordingRelay(am.url) as relay:
        relay.status_down = True
        runs = Runs(tmp_path, relay.url, restart_grace="1s")
        try:
            runs.run(restart_grace="1s")
            wait_until(lambda: am.up_for() > timedelta(seconds=2), 20, "Alertmanager up for 2s")
            ended = alert("FleetOffline", timedelta(seconds=-1))  # Prometheus resolves it
            httpx.post(f"{am.url}/api/v2/alerts", json=[ended], timeout=5).raise_for_status()
            wait_until(lambda: len(am.lists()) == 1, 10)  # the Watchdog alone
            runs.run(datetime.now(UTC) + timedelta(minutes=1), restart_grace="1s")
            assert runs.states() == {"FleetOffline": "paged"}  # the first run it cannot read
            runs.run(datetime.now(UTC) + timedelta(minutes=2), restart_grace="1s")
            assert runs.states() == {"FleetOffline": "resolved"}
        finally:
            runs.store.close()


@pytest.mark.parametrize(
    ("stored", "since_minutes_ago"),
    [
        (None, 0),
        ({"since": -30, "last": -1}, 30),  # runs a minute apart: one spell
        ({"since": -30, "last": -16}, 0),  # none for 16 minutes: the spell ended
        ({"since": -60 * 24 * 14, "last": -60 * 24 * 14}, 0),  # a fortnight ago
        ({"since": 5, "last": 6}, 0),  # stamped ahead of the clock
        ({"since": "garbage"}, 0),
    ],
)
def test_an_unreadable_status_is_counted_from_the_first_run_of_its_spell(
    stored: dict[str, Any] | None, since_minutes_ago: int
) -> None:
    from fleet_alerting.sources.alertmanager.watch import _unreadable_since

    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    if stored and "last" in stored:
        stored = {k: (now + timedelta(minutes=v)).isoformat() for k, v in stored.items()}
    since = _unreadable_since(stored, now, timedelta(minutes=3))
    assert since == now - timedelta(minutes=since_minutes_ago)
