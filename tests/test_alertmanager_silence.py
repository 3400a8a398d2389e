"""Silence from an incident against a real Alertmanager (Debian, loopback): the silence it creates,
what the next escalation run makes of it, and Unsilence expiring it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.incidents import State
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.incident_actions import perform
from tests.servers import start_alertmanager
from tests.test_alertmanager import AM_CONFIG, post_alert


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    server, url = start_alertmanager(tmp_path / "alertmanager", AM_CONFIG)
    yield url
    server.stop()


async def artifact_data(key: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    return [a.data for a in found]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.integration
def test_silence_creates_a_real_silence_the_next_run_respects_and_unsilence_expires_it(
    prefect_api: str, alertmanager: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    labels = {"alertname": "ApiDown", "severity": "critical", "instance": "fleet-api:443"}
    post_alert(alertmanager, timedelta(minutes=2), **labels)
    config_file.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
                "alertmanager": {"url": alertmanager},
            }
        )
    )
    config = load_config(config_file)
    first = asyncio.run(alertmanager_escalation(str(config_file)))
    assert first["firing"] == 1
    store = Store(config.state.path)
    (incident,) = store.incidents()
    assert incident.state == State.firing  # critical, 2 min old: told, not yet paged

    now = datetime.now(UTC)
    done = asyncio.run(
        perform(
            config, incident.key, "silence", actor="@ana", via="slack", now=now,
            duration=timedelta(hours=4),
        )
    )  # fmt: skip
    assert done.ok, done.message
    silence_id = store.incident(incident.key).acts.silence_id
    assert silence_id and silence_id in done.message
    silence = httpx.get(f"{alertmanager}/api/v2/silence/{silence_id}").json()
    assert silence["status"]["state"] == "active"
    assert {(m["name"], m["value"], m["isRegex"]) for m in silence["matchers"]} == {
        (name, value, False) for name, value in labels.items()
    }
    assert abs(parse_time(silence["endsAt"]) - (now + timedelta(hours=4))) < timedelta(seconds=2)
    assert silence["createdBy"] == "@ana" and incident.key in silence["comment"]
    (alert,) = httpx.get(f"{alertmanager}/api/v2/alerts").json()
    assert alert["status"]["silencedBy"] == [silence_id]

    second = asyncio.run(alertmanager_escalation(str(config_file)))
    assert second["firing"] == 0
    (trail,) = asyncio.run(artifact_data("incident-actions"))
    assert incident.key in trail and "silence by @ana via slack: done" in trail
    after = store.incident(incident.key)
    assert after.state == State.resolved and silence_id in after.resolution
    assert after.paged_at is None

    undone = asyncio.run(
        perform(config, incident.key, "unsilence", actor="@ana", via="cli", now=datetime.now(UTC))
    )
    assert undone.ok, undone.message
    expired = httpx.get(f"{alertmanager}/api/v2/silence/{silence_id}").json()
    assert expired["status"]["state"] == "expired"
    history = [(r.action, r.actor, r.via, r.outcome) for r in audit.history(store, incident.key)]
    assert history == [("silence", "@ana", "slack", "done"), ("unsilence", "@ana", "cli", "done")]
    # the alert fires again unsilenced: the next run opens a new, unacknowledged episode
    third = asyncio.run(alertmanager_escalation(str(config_file)))
    assert third["firing"] == 1
    fresh = store.incident(incident.key)
    assert fresh.state == State.firing and not fresh.acts.silenced
    store.close()
