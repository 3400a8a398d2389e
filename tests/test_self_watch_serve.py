"""Done when: `serve` tells when it fails. A real `serve` (its own Prefect server) with metrics and
a heartbeat; a real Prometheus scraping it with the shipped rules, a real Alertmanager, and a dead
man's switch speaking Healthchecks' API. One watch's runs fail (its config section is taken away
under the running serve): the watch-stale alert reaches Alertmanager and the heartbeat says
`/fail` naming the watch and why its runs fail. Healed, the pings say ok; SIGKILLed, the pings
stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.deadmans_switch import DeadMansSwitch
from tests.servers import free_port, start_alertmanager, start_prometheus, wait_until

ROOT = Path(__file__).parents[1]
RULES = ROOT / "config" / "prometheus" / "fleet-alerting.rules.yml"
EVERY = 2.0  # the heartbeat's period, seconds
AM_CONFIG = "route: {receiver: nobody}\nreceivers: [{name: nobody}]\n"


def write_config(path: Path, metrics_port: int, with_prometheus: bool) -> None:
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True},
        "blackbox": {},
        "schedule": {"every": {"blackbox-probe": "10s", "prometheus-watches": "10s"}},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "heartbeat": {"url": {"file": "heartbeat.url"}, "every": f"{EVERY:g}s"},
    }
    if with_prometheus:  # nothing listens there: each run completes, reporting it unreachable
        config["prometheus"] = {"url": f"http://127.0.0.1:{free_port()}"}
    path.write_text(yaml.safe_dump(config))


def stale_watches(alertmanager: str) -> set[str]:
    alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    return {
        a["labels"]["watch"]
        for a in alerts
        if a["labels"]["alertname"] == "FleetAlertingWatchStale"
    }


@pytest.mark.integration
def test_serve_is_watched_by_prometheus_and_a_dead_mans_switch(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = tmp_path / "config.yaml"
    write_config(config, metrics_port, with_prometheus=True)
    am_server, alertmanager = start_alertmanager(tmp_path / "alertmanager", AM_CONFIG)
    rules = tmp_path / "prometheus" / RULES.name
    rules.parent.mkdir(parents=True)
    shutil.copy(RULES, rules)
    alerting = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager[7:]]}]}]}
    prom_server, _ = start_prometheus(
        tmp_path / "prometheus",
        {"fleet-alerting": f"127.0.0.1:{metrics_port}"},
        {"rule_files": [str(rules)], "alerting": alerting},
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    log = tmp_path / "serve.log"
    with DeadMansSwitch() as switch:
        (tmp_path / "heartbeat.url").write_text(switch.ping_url)
        with log.open("w") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "fleet_alerting.surfaces.cli", "serve", "--config", config],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: "metrics at http://" in log.read_text(), 120, "serve's metrics")
            write_config(config, metrics_port, with_prometheus=False)  # its runs now fail

            wait_until(
                lambda: stale_watches(alertmanager) == {"prometheus-watches"}, 120, "stale alert"
            )
            failed = switch.wait_for(lambda p: not p.ok, timeout=30)
            assert failed is not None and "watch prometheus-watches" in failed.body
            assert failed.body.endswith(": prometheus.url is not set")  # why, not only who
            assert "blackbox-probe" not in failed.body

            write_config(config, metrics_port, with_prometheus=True)
            healed = time.monotonic()
            assert switch.wait_for(lambda p: p.ok, timeout=60, after=healed), "no ok ping"
            serve.kill()
            serve.wait(10)
            killed = time.monotonic()
            assert switch.wait_for(lambda p: True, timeout=2 * EVERY + 1, after=killed) is None
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGKILL)
                serve.wait(10)
            prom_server.stop()
            am_server.stop()
    said = log.read_text()
    assert switch.check not in said  # the URL's token is a secret
    # no scrape failed (the failing runs' tracebacks are Prefect's, expected)
    assert "prometheus_client" not in said and "heartbeat: the ping failed" not in said
