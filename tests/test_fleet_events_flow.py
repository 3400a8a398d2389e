"""The fleet-events flow end to end: a Fleet API test server, a Slack webhook test server, a real
Prefect server for the run's artifacts; restarts and overlapping answers never repeat an event."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.sources.fleet_events.judge import CURSOR_KEY
from fleet_alerting.store.database import Store
from tests.fakes.fleet_api import FleetApiServer, live_event
from tests.fakes.saas import SlackWebhookServer

TOKEN = "fleet-CANARY-flow-token-3c1d"


def ev(minutes_ago: float, i: int, type_: str, severity: str, target: str = "pi-audio-01") -> dict:
    return live_event(
        datetime.now(UTC) - timedelta(minutes=minutes_ago), i, type_, severity, target
    )


def write_config(path: Path, fleet: str, slack: str) -> None:
    (path.parent / "fleet.token").write_text(TOKEN)
    (path.parent / "slack.url").write_text(f"{slack}/services/T/B/x")
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "slack": {"webhook": {"file": "slack.url"}}},
        # Slack only: nothing else is configured (fail closed)
        "policies": {"critical": {"page": [], "mirror": False}},
        "links": {"grafana_url": "https://grafana.example"},
        "fleet_api": {"url": fleet, "token": {"file": "fleet.token"}, "limit": 3},
    }
    path.write_text(yaml.safe_dump(config))


async def artifact_data(key: str, since: datetime) -> list:
    """This test's artifacts of `key` (other tests' fleet-events runs share the Prefect server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return [a.data for a in found if a.created is not None and a.created >= since]


@pytest.mark.integration
def test_feed_reports_each_event_once_and_alerts_high_severity(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import fleet_events

    started = datetime.now(UTC)
    with FleetApiServer(TOKEN) as fleet, SlackWebhookServer() as slack:
        write_config(config_file, fleet.url, slack.url)
        fleet.events = [
            ev(5, 1, "command.failed", "error"),
            ev(4, 2, "audio.upload", "info"),
            ev(3, 3, "audio.upload", "error", "pi-audio-02"),
        ]
        first = asyncio.run(fleet_events(str(config_file)))
        # overlapping answer (limit 3): two old events again, one new; a warn is below the bar
        fleet.events += [ev(2, 4, "command.failed", "warn"), ev(1, 5, "device.offline", "error")]
        second = asyncio.run(fleet_events(str(config_file)))
        third = asyncio.run(fleet_events(str(config_file)))  # same answer again: nothing new
        fleet.token = "rotated"  # our token is now refused: a problem, the cursor stays
        broken = asyncio.run(fleet_events(str(config_file)))
    assert (first["new_events"], first["alerting_events"]) == (3, 2)
    assert (second["new_events"], second["alerting_events"]) == (2, 0)
    assert (third["new_events"], broken["new_events"], broken["api_problems"]) == (0, 0, 1)
    texts = [m["text"] for m in slack.messages]
    assert [t.split(" | ")[0] for t in texts] == [
        "[CRITICAL] command.failed on pi-audio-01: event 1",
        "[CRITICAL] audio.upload on pi-audio-02: event 3",
    ]
    blocks = json.dumps(slack.messages[0]["blocks"])
    assert "corr-1" in blocks and "https://grafana.example/explore?" in blocks
    store = Store(config_file.parent / "state.sqlite")
    assert len(store.get_value(CURSOR_KEY)["seen"]) == 5
    # one-off events leave no incident row behind (only the API problem of the broken run)
    assert [i.source for i in store.incidents(include_resolved=True)] == ["fleet-events-api"]
    tables = asyncio.run(artifact_data("fleet-events", started))
    feed = [row for data in tables for row in json.loads(data) if "correlation_id" in row]
    assert sorted(r["correlation_id"] for r in feed) == [f"corr-{i}" for i in range(1, 6)]
    assert all(r["logs"].startswith("https://grafana.example/explore?") for r in feed)
    notes = asyncio.run(artifact_data("fleet-events-notifications", started))
    assert TOKEN not in json.dumps(tables) + json.dumps(notes)
