"""serve's log says each new complaint of the heartbeat once, not once a beat: a late watch whose
"last succeeded 40s ago" grows every beat, with its failure's reason (up to 500 characters), is
one line while nothing else goes wrong. Real heartbeat, the dead man's switch fake, SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.deployments.heartbeat import Heartbeat
from fleet_alerting.deployments.watch_runs import WatchRuns
from tests.fakes.deadmans_switch import DeadMansSwitch

REASON = "page to pagerduty undelivered: PagerDuty Events API answered HTTP 503 " + "x" * 400


def failed_once(reason: str) -> WatchRuns:
    """blackbox-probe (every 10 s) served a minute ago, its one run failed for `reason`."""
    runs = WatchRuns()
    runs.serve({"blackbox-probe": timedelta(seconds=10)}, datetime.now(UTC) - timedelta(minutes=1))
    runs.started("blackbox-probe").ended(False, reason)
    return runs


@pytest.fixture
def switch() -> DeadMansSwitch:
    with DeadMansSwitch() as fake:
        yield fake


def beating(tmp_path: Path, switch: DeadMansSwitch, runs: WatchRuns, out) -> Heartbeat:
    (tmp_path / "heartbeat.url").write_text(switch.ping_url + "\n")
    text = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True},
        "heartbeat": {"url": {"file": "heartbeat.url"}, "every": "1s"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(text))
    config = load_config(tmp_path / "config.yaml")
    return Heartbeat(config, config.heartbeat, runs, out)


def test_the_same_late_watch_and_reason_is_logged_once(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    runs = failed_once(REASON)
    lines: list[str] = []
    beat = beating(tmp_path, switch, runs, lines.append)
    now = datetime.now(UTC)
    for k in range(5):
        beat.beat(now + timedelta(seconds=k))
    assert len(switch.pings) == 5 and all(REASON in p.body for p in switch.pings)  # /fail: each
    assert len(lines) == 1, [len(line) for line in lines]


def test_control_a_refused_ping_is_said_once(tmp_path: Path, switch: DeadMansSwitch) -> None:
    lines: list[str] = []
    runs = WatchRuns()
    runs.serve({}, datetime.now(UTC))
    beat = beating(tmp_path, switch, runs, lines.append)
    switch.status = 503
    for _ in range(3):
        beat.beat(datetime.now(UTC))
    assert lines == ["heartbeat: the dead man's switch answered HTTP 503"]


def test_control_a_registered_secret_in_the_reason_is_masked_and_the_reason_is_bounded(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    from fleet_alerting.config.secrets import register

    secret = "https://hooks.slack.com/services/T000/B000/CANARYreviewS9token"
    register(secret)
    runs = failed_once(f"POST {secret} failed\n" + "y" * 5000)
    beat = beating(tmp_path, switch, runs, lambda _line: None)
    beat.beat(datetime.now(UTC))
    body = switch.pings[-1].body
    assert "CANARY" not in body and "\n" not in body
    assert len(body) < 700


def test_control_an_older_failures_reason_is_not_said_after_a_success(
    tmp_path: Path, switch: DeadMansSwitch
) -> None:
    runs = failed_once("old trouble")
    runs.started("blackbox-probe").ended(True)
    beat = beating(tmp_path, switch, runs, lambda _line: None)
    beat.beat(datetime.now(UTC) + timedelta(seconds=30))
    assert not switch.pings[-1].ok and "old trouble" not in switch.pings[-1].body
