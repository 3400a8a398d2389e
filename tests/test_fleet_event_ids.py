"""Fleet API events (fixture shape, API-given ids): an id the API hands out again — its in-memory
event counter restarted, say — for a new error event is another event, told (an event is told
apart by its id and its time).

Plain `fleet-alerting run fleet-events` runs against the protocol-speaking Fleet API and Slack
fakes (loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

import fleet_alerting
from tests.fakes.fleet_api import FleetApiServer
from tests.fakes.saas import SlackWebhookServer

ROOT = Path(fleet_alerting.__file__).resolve().parents[1]  # the checkout under test
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]
TOKEN = "fleet-CANARY-ids-token-77aa"


def fixture_event(event_id: str, minutes_ago: float, title: str, target: str) -> dict:
    ts = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "id": event_id,
        "source": "command.failed",
        "type": "command.failed",
        "title": title,
        "severity": "error",
        "timestamp": ts.isoformat().replace("+00:00", "Z"),
        "target": target,
        "correlationId": None,
    }


def write_config(tmp: Path, fleet: str, slack: str) -> Path:
    (tmp / "fleet.token").write_text(TOKEN)
    (tmp / "slack.url").write_text(f"{slack}/services/T/B/x")
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "slack": {"webhook": {"file": "slack.url"}}},
        "policies": {"critical": {"page": [], "mirror": False}},
        "fleet_api": {"url": fleet, "token": {"file": "fleet.token"}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run(
        [*CLI, "run", "fleet-events", "--config", str(config)],
        cwd=ROOT, env=env | {"PREFECT_HOME": str(home)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def told(slack: SlackWebhookServer) -> str:
    return repr(slack.messages)


def scenario(tmp: Path, second_id: str) -> tuple[str, str]:
    with FleetApiServer(TOKEN, shape="fixture") as api, SlackWebhookServer() as slack:
        config = write_config(tmp, api.url, slack.url)
        api.events = [fixture_event("evt-1", 10, "play failed on pi-audio-01", "pi-audio-01")]
        first = run(config, tmp / "home")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "pi-audio-01" in told(slack)
        # the Fleet API restarted: its buffer is empty and its counter begins again at evt-1
        api.events = [fixture_event(second_id, 1, "reboot failed on pi-video-07", "pi-video-07")]
        second = run(config, tmp / "home")
        assert second.returncode == 0, second.stdout + second.stderr
        return told(slack), second.stdout


def test_a_new_error_event_with_a_reused_id_is_told(tmp_path: Path) -> None:
    slack_text, summary = scenario(tmp_path, "evt-1")
    assert "pi-video-07" in slack_text, summary


def test_control_a_new_error_event_with_a_new_id_is_told(tmp_path: Path) -> None:
    slack_text, summary = scenario(tmp_path, "evt-2")
    assert "pi-video-07" in slack_text, summary
