"""The `/fleet` slash command app against a Fleet API test server serving the fixture shapes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from pydantic import SecretStr
from starlette.testclient import TestClient

from fleet_alerting.config import load_config
from fleet_alerting.surfaces.slack_app import create_app
from fleet_alerting.surfaces.slack_commands import sign
from tests.fakes.http import Response
from tests.operator_fleet import CORRELATION, TOKEN, fleet_server
from tests.servers import free_port

SIGNING_SECRET = "slack-signing-secret-CANARY-77"


def write_config(folder: Path, fleet_url: str, answer_within: str = "2s") -> Path:
    (folder / "signing.secret").write_text(SIGNING_SECRET)
    (folder / "fleet.token").write_text(TOKEN)
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True},  # no channel configured: fail closed otherwise
                "links": {"grafana_url": "https://grafana.example", "loki_datasource_uid": "LOKI"},
                "fleet_api": {"url": fleet_url, "token": {"file": "fleet.token"}},
                "operators": {
                    "slack_app": {
                        "signing_secret": {"file": "signing.secret"},
                        "allowed_users": ["U0OPS"],
                        "answer_within": answer_within,
                    }
                },
            }
        )
    )
    return path


class Slack:
    """Sends slash commands the way Slack does: form-encoded, signed, timestamped."""

    def __init__(self, client: TestClient):
        self.client = client

    def command(self, text: str, user: str = "U0ANY", secret: str = SIGNING_SECRET, **kw):
        body = urlencode(
            {
                "command": "/fleet",
                "text": text,
                "user_id": user,
                "channel_id": "C0OPS",
                "team_id": "T1",
            }
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "x-slack-request-timestamp": ts,
            "x-slack-signature": sign(SecretStr(secret), ts, body),
            "content-type": "application/x-www-form-urlencoded",
        }
        return self.client.post("/slack/commands", content=body, headers=headers, **kw)


triggered: list[str] = []


async def record_trigger(deployment: str, out: Callable[[str], None]) -> int:
    triggered.append(deployment)
    out(f"created flow run brave-otter of {deployment}")
    return 0


@pytest.fixture
def slack(tmp_path: Path) -> Iterator[tuple[Slack, object]]:
    with fleet_server() as fleet:
        config = load_config(write_config(tmp_path, fleet.url))
        with TestClient(create_app(config, record_trigger)) as client:
            yield Slack(client), fleet


def text_of(response) -> str:
    assert response.status_code == 200, response.text
    return "\n".join(b["text"]["text"] for b in response.json()["blocks"])


def test_health_and_state_from_the_fixture_shapes(slack) -> None:
    client, fleet = slack
    health = text_of(client.command("health"))
    assert ":red_circle: *audio*: degraded — 1 device offline (pi-audio-02)" in health
    assert fleet.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    state = text_of(client.command("state pi-audio-02"))
    assert "`pi-audio-02` Patio Speakers [audio] error" in state
    assert "pi-audio-01" not in state


def test_logs_filters_and_links_to_the_rest(slack) -> None:
    client, fleet = slack
    answer = text_of(client.command("logs pi-audio-01 error"))
    query = fleet.requests[-1].query
    assert (query["deviceId"], query["level"]) == (["pi-audio-01"], ["error"])
    assert answer.count("playback step") == 15  # odd minutes below 30
    one = text_of(client.command(f"logs {CORRELATION}"))
    assert f"`{CORRELATION}`" in one and one.count("playback step") == 1
    many = text_of(client.command("logs"))
    assert "… 40 more (<https://grafana.example/explore?" in many


def test_refused_requests(slack) -> None:
    client, _ = slack
    assert client.command("health", secret="wrong").status_code == 401
    stale = client.client.post(
        "/slack/commands",
        content=b"text=health",
        headers={
            "x-slack-request-timestamp": str(int(time.time()) - 600),
            "x-slack-signature": sign(
                SecretStr(SIGNING_SECRET), str(int(time.time()) - 600), b"text=health"
            ),
        },
    )
    assert stale.status_code == 401


def test_run_only_for_allowed_users(slack) -> None:
    client, _ = slack
    triggered.clear()
    refused = text_of(client.command("run blackbox-probe/every-minute", user="U0INTRUDER"))
    assert "limited to the users and channels in config" in refused and triggered == []
    done = text_of(client.command("run blackbox-probe/every-minute", user="U0OPS"))
    assert "created flow run brave-otter" in done
    assert triggered == ["blackbox-probe/every-minute"]


def test_incidents_from_the_store(slack) -> None:
    client, _ = slack
    assert "No open incidents." in text_of(client.command("incidents"))
    assert "Usage: `/fleet health`" in text_of(client.command("reboot everything"))


def test_fleet_api_down_or_slow_is_a_friendly_answer(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = load_config(write_config(tmp_path, closed))
    with TestClient(create_app(config, record_trigger)) as client:
        answer = Slack(client).command("health")
        assert "The Fleet API is not answering" in text_of(answer)
    with fleet_server() as fleet:
        config = load_config(write_config(tmp_path, fleet.url, answer_within="0.3s"))
        fleet.fail_next = [Response(200, {"modules": []}, delay=2)]
        with TestClient(create_app(config, record_trigger)) as client:
            started = time.monotonic()
            answer = Slack(client).command("health")
            assert "did not answer in time" in text_of(answer)
            assert time.monotonic() - started < 2
        fleet.fail_next = [
            Response(500, {"code": "INTERNAL", "message": "db down", "correlationId": "c-1"})
        ]
        with TestClient(create_app(config, record_trigger)) as client:
            answer = text_of(Slack(client).command("health"))
    assert "INTERNAL: db down" in answer and "correlation id c-1" in answer
    assert TOKEN not in answer
