"""`serve` watched from outside: its metrics endpoint (the store read at scrape time, a store
error a gauge, not a failed scrape), its heartbeat to a dead man's switch (Healthchecks' API), on
a real SQLite store and real HTTP."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fleet_alerting.config import load_config
from fleet_alerting.config.schema import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.deployments.heartbeat import Heartbeat
from fleet_alerting.deployments.heartbeat import heartbeat as heartbeat_while
from fleet_alerting.deployments.serve import serve_all
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.store.database import Store
from fleet_alerting.store.health import open_incidents
from fleet_alerting.surfaces.metrics import ServeCollector, metrics_endpoint
from tests.fakes.deadmans_switch import DeadMansSwitch
from tests.servers import free_port
from tests.test_operator_cli import cli

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
PAGE_AT_ONCE = PolicyConfig(open_after=1, page=["pagerduty"], page_after=timedelta(0))


def make_config(tmp_path: Path, **sections: object) -> Config:
    path = tmp_path / "config.yaml"
    text = {"state": {"path": "state.sqlite"}, "notify": {"dry_run": True}} | sections
    path.write_text(yaml.safe_dump(text))
    return load_config(path)


def page_queued(config: Config, at: datetime = T0) -> None:
    """A critical outage paging PagerDuty at once: the page is queued at `at`."""
    with Store(config.state) as store:
        signal = Signal(
            "blackbox:url=http://api/healthz", "blackbox", True, Severity.critical, "down"
        )
        store.record(evaluate([signal], store.unresolved(), lambda _s: PAGE_AT_ONCE, at), at)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def served(*watches: str, since: datetime | None = None) -> WatchRuns:
    runs = WatchRuns()
    runs.serve({w: timedelta(seconds=10) for w in watches}, since or datetime.now(UTC))
    return runs


def test_metrics_say_what_the_store_holds_and_how_the_watches_ran(tmp_path: Path) -> None:
    config = make_config(tmp_path, metrics={"listen": f"127.0.0.1:{free_port()}"})
    page_queued(config)
    store = Store(config.state)
    (page,) = [i for i in store.outbox(("queued",)) if i.notification.channel == "pagerduty"]
    store.queue.mark_dead(page.id, None, 1, "permanent: PagerDuty answered HTTP 400")
    blocked = T0 + timedelta(hours=1)
    store.queue.destination_blocked("slack", T0, blocked, "HTTP 429")
    for minutes in (0, 4, 9):  # its rest ran out before each next attempt failed
        moment = T0 + timedelta(minutes=minutes)
        store.queue.destination_failed("pagerduty", moment, moment + timedelta(seconds=30), "503")
    store.close()
    runs = served("blackbox-probe", "prometheus-watches")
    runs.started("blackbox-probe").ended(True)
    runs.started("prometheus-watches").ended(False)
    lines: list[str] = []
    with metrics_endpoint(config, runs, lines.append) as url:
        assert url is not None
        got = scrape(url)
    watch = (("watch", "blackbox-probe"),)
    assert got[("fleet_alerting_watch_interval_seconds", watch)] == 10
    assert ("fleet_alerting_watch_last_success_timestamp_seconds", watch) in got
    assert ("fleet_alerting_watch_last_failure_timestamp_seconds", watch) not in got
    failing = (("watch", "prometheus-watches"),)
    assert ("fleet_alerting_watch_last_failure_timestamp_seconds", failing) in got
    assert ("fleet_alerting_watch_last_success_timestamp_seconds", failing) not in got
    assert got[("fleet_alerting_watch_last_run_duration_seconds", failing)] >= 0
    # paged, but no pager took its page: counted as such
    open_key = (("severity", "critical"), ("source", "blackbox"), ("state", "page_dead"))
    assert got[("fleet_alerting_incidents_open", open_key)] == 1
    dead = (("destination", "pagerduty"), ("status", "dead"))
    assert got[("fleet_alerting_outbox_messages", dead)] == 1
    pd = (("destination", "pagerduty"),)
    assert got[("fleet_alerting_outbox_last_dead_letter_timestamp_seconds", pd)] == T0.timestamp()
    slack = (("destination", "slack"),)
    assert got[("fleet_alerting_destination_blocked_until_timestamp_seconds", slack)] == (
        blocked.timestamp()
    )
    # failing since its first failure in a row, however its rests fall; absent once one went
    since = got[("fleet_alerting_destination_failing_since_timestamp_seconds", pd)]
    assert since == T0.timestamp()
    assert ("fleet_alerting_destination_failing_since_timestamp_seconds", slack) not in got
    assert got[("fleet_alerting_store_up", ())] == 1
    assert got[("fleet_alerting_store_errors_total", ())] == 0
    assert got[("fleet_alerting_build_info", (("version", "0.1.0"),))] == 1
    assert got[("fleet_alerting_watches_scheduled", ())] == 2


def test_a_serve_whose_server_is_starting_shows_no_watch_scheduled(tmp_path: Path) -> None:
    """Before its Prefect server answers there is no watch series to go stale: this gauge is
    what FleetAlertingNothingScheduled reads."""
    config = make_config(tmp_path, metrics={"listen": f"127.0.0.1:{free_port()}"})
    runs = WatchRuns()
    runs.expect({"blackbox-probe": timedelta(seconds=10)})
    with metrics_endpoint(config, runs, print) as url:
        assert url is not None
        got = scrape(url)
    assert got[("fleet_alerting_watches_scheduled", ())] == 0
    assert not [name for name, _ in got if name.startswith("fleet_alerting_watch_")]


def test_a_serve_of_the_audit_alone_has_a_deployment_scheduled_and_no_watch(
    tmp_path: Path,
) -> None:
    """FleetAlertingNothingScheduled reads deployments, not watches: a serve whose config
    schedules only the quarterly audit is well once it has registered it, and 0 before."""
    config = make_config(tmp_path, metrics={"listen": f"127.0.0.1:{free_port()}"})
    runs = WatchRuns()
    runs.expect({}, deployments=1)  # the quarterly audit: no watch
    with metrics_endpoint(config, runs, print) as url:
        assert url is not None
        starting = scrape(url)
        runs.begin(datetime.now(UTC))
        scheduled = scrape(url)
    assert starting[("fleet_alerting_deployments_scheduled", ())] == 0
    assert scheduled[("fleet_alerting_deployments_scheduled", ())] == 1
    assert scheduled[("fleet_alerting_watches_scheduled", ())] == 0


def test_metrics_say_whether_the_prefect_server_answers(tmp_path: Path) -> None:
    """Absent before serve has a server; then up, and since when it answered."""
    config = make_config(tmp_path, metrics={"listen": f"127.0.0.1:{free_port()}"})
    runs = served("blackbox-probe")
    answered = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    with metrics_endpoint(config, runs, print) as url:
        assert url is not None
        before = scrape(url)
        runs.api_watched("the Prefect server at http://prefect-host:4200/api", answered)
        up = scrape(url)
        runs.api_asked(answered + timedelta(seconds=50), "ConnectError")
        silent = scrape(url)
    assert not [name for name, _ in before if name.startswith("fleet_alerting_prefect_api")]
    assert up[("fleet_alerting_prefect_api_up", ())] == 1
    assert silent[("fleet_alerting_prefect_api_up", ())] == 0
    last = ("fleet_alerting_prefect_api_last_answer_timestamp_seconds", ())
    assert silent[last] == answered.timestamp()


def test_a_store_that_cannot_be_read_is_a_gauge_not_a_failed_scrape(tmp_path: Path) -> None:
    config = make_config(tmp_path, metrics={"listen": f"127.0.0.1:{free_port()}"})
    (tmp_path / "state.sqlite").write_text("not a database, " * 100)
    runs = served("blackbox-probe")
    lines: list[str] = []
    with metrics_endpoint(config, runs, lines.append) as url:
        assert url is not None
        first, second = scrape(url), scrape(url)
    assert first[("fleet_alerting_store_up", ())] == 0
    assert first[("fleet_alerting_store_errors_total", ())] == 1
    assert second[("fleet_alerting_store_errors_total", ())] == 2
    assert ("fleet_alerting_watch_interval_seconds", (("watch", "blackbox-probe"),)) in second
    assert lines[0].startswith("metrics at http://127.0.0.1:")
    assert "metrics: the store could not be read: " in lines[1]


def test_a_store_that_does_not_answer_delays_a_scrape_by_at_most_the_timeout(
    tmp_path: Path,
) -> None:
    """A PostgreSQL host that accepts the connection and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://fleet@127.0.0.1:{silent.getsockname()[1]}/fleet"
        config = make_config(tmp_path, state={"url": url, "connect_timeout": "30s"})
        lines: list[str] = []
        collector = ServeCollector(config, served("blackbox-probe"), lines.append, timeout=0.5)
        began = time.monotonic()
        names = {m.name: m for m in collector.collect()}
        took = time.monotonic() - began
    assert took < 2
    assert names["fleet_alerting_store_up"].samples[0].value == 0
    assert "fleet_alerting_watch_interval_seconds" in names
    assert lines == ["metrics: the store could not be read: no answer within 0.5s"]


def test_metrics_disabled_listen_nowhere(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, metrics={"enabled": False, "listen": f"127.0.0.1:{port}"})
    with metrics_endpoint(config, served(), print) as url:
        assert url is None
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/metrics")


def test_serve_refuses_to_start_when_its_metrics_address_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        make_config(tmp_path, blackbox={}, metrics={"listen": f"127.0.0.1:{port}"})
        code = serve_all(str(tmp_path / "config.yaml"), sidecars=[metrics_endpoint])
    assert code == 2
    assert f"serve: metrics.listen 127.0.0.1:{port}: Address already in use" in (
        capsys.readouterr().err
    )


@pytest.fixture
def switch() -> DeadMansSwitch:
    with DeadMansSwitch() as fake:
        yield fake


def heartbeat(tmp_path: Path, switch: DeadMansSwitch, runs: WatchRuns, out=print) -> Heartbeat:
    (tmp_path / "heartbeat.url").write_text(switch.ping_url + "\n")
    config = make_config(tmp_path, heartbeat={"url": {"file": "heartbeat.url"}, "every": "1s"})
    assert config.heartbeat is not None
    return Heartbeat(config, config.heartbeat, runs, out)


def test_heartbeat_pings_while_all_is_well_and_fails_naming_the_late_watch(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    began = datetime.now(UTC) - timedelta(seconds=25)
    runs = served("blackbox-probe", "prometheus-watches", since=began)
    beat = heartbeat(tmp_path, switch, runs)
    beat.beat(began)
    runs.started("blackbox-probe").ended(True)
    runs.started("prometheus-watches").ended(False)
    beat.beat(began + timedelta(seconds=25))
    assert [(p.ok, p.body) for p in switch.pings] == [
        (True, ""),
        (False, "watch prometheus-watches has not succeeded since serve began 25s ago (every 10s)"),
    ]
    assert [r.method for r in switch.requests] == ["GET", "POST"]


def test_heartbeat_fails_naming_a_stuck_page(tmp_path: Path, switch: DeadMansSwitch) -> None:
    beat = heartbeat(tmp_path, switch, served())
    page_queued(beat.config)
    beat.beat(T0 + timedelta(minutes=4))
    beat.beat(T0 + timedelta(minutes=6))
    assert [(p.ok, p.body) for p in switch.pings] == [
        (True, ""),
        (
            False,
            "a page to pagerduty for blackbox:url=http://api/healthz has been queued for 6m00s",
        ),
    ]


def test_heartbeat_fails_while_an_open_incidents_page_is_a_dead_letter(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    """A refused page (a wrong routing key) is no queued page and fails no run after the first:
    the heartbeat says nobody was paged for as long as that holds, hours later too, and stops
    once an operator requeues it (`outbox requeue`, through the CLI)."""
    beat = heartbeat(tmp_path, switch, served())
    page_queued(beat.config)
    with Store(beat.config.state) as store:
        (page,) = [i for i in store.outbox(("queued",)) if i.notification.channel == "pagerduty"]
        store.queue.mark_dead(page.id, None, 1, "permanent: PagerDuty answered HTTP 400")
    beat.beat(T0 + timedelta(hours=3))
    requeued = cli("outbox", "requeue", str(page.id), "--config", str(tmp_path / "config.yaml"))
    assert requeued.returncode == 0, requeued.stderr
    beat.beat(datetime.now(UTC))
    assert [(p.ok, p.body) for p in switch.pings] == [
        (
            False,
            "nobody was paged for blackbox:url=http://api/healthz: its page to pagerduty is dead "
            f"letter #{page.id} (page the on-call by hand, then `fleet-alerting outbox drop "
            f"{page.id} --reason WHY`; or fix the cause and `outbox requeue {page.id}`)",
        ),
        (True, ""),
    ]


def test_a_dead_page_dropped_by_an_operator_who_paged_by_hand_is_quiet(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    """`outbox drop` of a refused page: the operator paged by hand; the heartbeat pings again
    and the metrics count the incident as page_dropped, not page_dead (FleetAlertingPageDead
    ends), the refusal kept in the dead letter's reason."""
    beat = heartbeat(tmp_path, switch, served())
    page_queued(beat.config)
    with Store(beat.config.state) as store:
        (page,) = [i for i in store.outbox(("queued",)) if i.notification.channel == "pagerduty"]
        store.queue.mark_dead(page.id, None, 1, "permanent: PagerDuty answered HTTP 400")
    config = str(tmp_path / "config.yaml")
    dropped = cli("outbox", "drop", str(page.id), "--reason", "paged by phone", "--config", config)
    assert dropped.returncode == 0, dropped.stderr
    again = cli("outbox", "drop", str(page.id), "--reason", "twice", "--config", config)
    assert again.returncode == 1 and "nothing changed" in again.stderr
    beat.beat(datetime.now(UTC))
    assert [(p.ok, p.body) for p in switch.pings] == [(True, "")]
    with Store(beat.config.state) as store:
        assert open_incidents(store, utcnow()) == {("critical", "blackbox", "page_dropped"): 1}
        (dead,) = store.outbox(("dead",))
    assert dead.last_error.endswith(
        ": paged by phone (was: permanent: PagerDuty answered HTTP 400)"
    ), dead.last_error


def test_a_refused_ping_is_said_once_without_the_url(tmp_path: Path, switch: DeadMansSwitch):
    lines: list[str] = []
    beat = heartbeat(tmp_path, switch, served(), lines.append)
    switch.status = 503
    for _ in range(3):
        beat.beat(datetime.now(UTC))
    assert lines == ["heartbeat: the dead man's switch answered HTTP 503"]
    assert len(switch.pings) == 3


def test_heartbeat_stops_when_serve_stops(tmp_path: Path, switch: DeadMansSwitch) -> None:
    beat = heartbeat(tmp_path, switch, served()).start()
    assert switch.wait_for(lambda p: p.ok, timeout=10)
    beat.stop()
    count = len(switch.pings)
    assert switch.wait_for(lambda p: True, timeout=2.5, after=switch.pings[-1].at) is None
    assert len(switch.pings) == count


def test_a_heartbeat_url_that_is_not_http_is_said_without_its_value(tmp_path: Path) -> None:
    (tmp_path / "heartbeat.url").write_text("hc-ping.com/CANARY-heartbeat-token\n")
    config = make_config(tmp_path, heartbeat={"url": {"file": "heartbeat.url"}})
    lines: list[str] = []
    with heartbeat_while(config, served(), lines.append) as beating:
        assert beating is None
    (line,) = lines
    assert line.startswith("heartbeat: not started: secret file ")
    assert line.endswith("heartbeat.url does not hold an http(s) URL")
    assert "CANARY" not in line


def test_no_ping_before_the_watches_are_scheduled_and_a_last_word_at_exit(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    runs = WatchRuns()
    runs.expect({"blackbox-probe": timedelta(seconds=10)})  # its Prefect server is starting
    beat = heartbeat(tmp_path, switch, runs)
    beat.beat(datetime.now(UTC))
    assert switch.pings == []
    beat.last_words("serve could not start its Prefect server: it failed")
    beat.beat(datetime.now(UTC))  # a beat on its way after the last word sends nothing
    assert [(p.ok, p.body) for p in switch.pings] == [
        (False, "serve could not start its Prefect server: it failed")
    ]


def test_a_late_watch_whose_run_hangs_says_its_run_is_in_flight(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    runs = served("blackbox-probe", since=datetime.now(UTC) - timedelta(seconds=25))
    runs.started("blackbox-probe")  # held by a destination that does not answer
    heartbeat(tmp_path, switch, runs).beat(datetime.now(UTC))
    [ping] = switch.pings
    assert not ping.ok
    assert ping.body.startswith(
        "watch blackbox-probe has not succeeded since serve began 25s ago (every 10s, a run in "
        "flight for "
    ), ping.body
