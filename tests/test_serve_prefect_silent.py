"""Done when: `serve` never goes silent about the Prefect server it runs through. A real `serve`
with PREFECT_API_URL pointing at a real Prefect server (a process of its own, as an operator
runs one), metrics and a heartbeat to a Healthchecks-style fake:
- the server is killed: within a minute the heartbeat's `/fail` and serve's log name it and
  how long it has not answered, `fleet_alerting_prefect_api_up` is 0 — and serve keeps running;
- the server is started again: serve says it answers again, its runs resume and the pings say
  ok, with no restart of serve.
And a serve of the quarterly audit alone (no watch) shows a deployment scheduled and pings ok:
FleetAlertingNothingScheduled does not fire for it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleet_alerting.http.errors import shown_url
from tests.fakes.deadmans_switch import DeadMansSwitch
from tests.servers import free_port, http_ready, start_serve, startup_timeout, wait_until
from tests.test_self_watch import scrape

ROOT = Path(__file__).parents[1]
EVERY = 1.0  # the heartbeat's period, seconds


class PrefectServer:
    """`prefect server start` in a session of its own (killed with all it started)."""

    def __init__(self, home: Path, port: int, log: Path):
        self.home, self.port, self.log = home, port, log
        self.url = f"http://127.0.0.1:{port}/api"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env |= {"PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        argv = ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port"]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *argv, str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(http_ready(f"{self.url}/health"), startup_timeout(), "the Prefect server")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path / "server-home", free_port(), tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


def write_config(tmp_path: Path, switch: DeadMansSwitch, metrics_port: int, **sections) -> Path:
    (tmp_path / "heartbeat.url").write_text(switch.ping_url)
    config = tmp_path / "config.yaml"
    base = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "heartbeat": {"url": {"file": "heartbeat.url"}, "every": f"{EVERY:g}s"},
    }
    config.write_text(yaml.safe_dump(base | sections))
    return config


def stopped(serve: subprocess.Popen[bytes]) -> int | None:
    if serve.poll() is None:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(5)
    return serve.returncode


@pytest.mark.integration
def test_a_prefect_server_that_goes_away_is_said_and_serve_resumes_when_it_is_back(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    metrics_port = free_port()
    log = tmp_path / "serve.log"
    with DeadMansSwitch() as switch:
        # each run completes, reporting the Prometheus it cannot reach
        config = write_config(
            tmp_path,
            switch,
            metrics_port,
            prometheus={"url": f"http://127.0.0.1:{free_port()}"},
            schedule={"every": {"prometheus-watches": "10s"}},
        )
        env = os.environ | {
            "PREFECT_API_URL": prefect_server.url,
            "PREFECT_HOME": str(tmp_path / "serve-home"),
            # Prefect's client gives up after one retry: serve's poll fails within seconds
            "PREFECT_CLIENT_MAX_RETRIES": "1",
        }
        serve = start_serve(config, env, log)
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            wait_until(lambda: ": Completed" in log.read_text(), 150, "a run before the kill")
            assert switch.wait_for(lambda p: p.ok, timeout=30), "no ok ping before the kill"
            prefect_server.kill()
            killed = time.monotonic()

            named = f"the Prefect server at {prefect_server.url} (PREFECT_API_URL)"
            failed = switch.wait_for(
                lambda p: not p.ok and named in p.body, timeout=60, after=killed
            )
            assert failed is not None, [p.body for p in switch.pings[-3:]]
            assert f"{named} has not answered for " in failed.body
            assert failed.body.startswith(named)  # the cause first, the late watch after it
            assert serve.poll() is None, log.read_text()[-2000:]
            assert scrape(metrics)[("fleet_alerting_prefect_api_up", ())] == 0
            assert f"serve: {named} has not answered for " in log.read_text()

            prefect_server.start()
            back = time.monotonic()
            said = len(log.read_text())
            wait_until(lambda: "answers again" in log.read_text()[said:], 30, "answers again")
            wait_until(
                lambda: ": Completed" in log.read_text()[said:], 90, "a run after the restart"
            )
            assert switch.wait_for(lambda p: p.ok, timeout=30, after=back), "no ok ping after"
            assert serve.poll() is None
            assert scrape(metrics)[("fleet_alerting_prefect_api_up", ())] == 1
        finally:
            code = stopped(serve)
    assert code == 0, log.read_text()[-2000:]


@pytest.mark.integration
def test_a_serve_of_the_audit_alone_schedules_it_and_is_well(
    tmp_path: Path, prefect_api: str
) -> None:
    shutil.copytree(ROOT / "config" / "audit", tmp_path / "audit")
    metrics_port = free_port()
    log = tmp_path / "serve.log"
    with DeadMansSwitch() as switch:
        config = write_config(tmp_path, switch, metrics_port)
        env = os.environ | {"PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(tmp_path / "h")}
        serve = start_serve(config, env, log)
        try:
            assert switch.wait_for(lambda p: True, timeout=120), log.read_text()[-2000:]
            got = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            assert got[("fleet_alerting_deployments_scheduled", ())] == 1
            assert got[("fleet_alerting_watches_scheduled", ())] == 0
            assert all(p.ok for p in switch.pings), switch.pings[-1].body
        finally:
            stopped(serve)
    assert "serving quarterly-audit/quarterly" in log.read_text()


def test_the_api_url_is_said_without_its_credentials() -> None:
    url = "https://fleet:hunter2@prefect.example:4200/api?token=hunter3#x"
    assert shown_url(url) == "https://prefect.example:4200/api"
    assert shown_url("http://[::1]:4200/api") == "http://[::1]:4200/api"
