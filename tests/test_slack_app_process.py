"""`fleet-alerting slack-app` as operators start it: it says where it listens and which routes it
answers, and logs each handled slash command and button click (who, what, which incident) on
stderr, never a secret. The process is started, spoken to over HTTP, and its output read."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from pydantic import SecretStr

from fleet_alerting.config import load_config
from fleet_alerting.core.policy import evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.notifiers.slack_webhook import ACTIONS_BLOCK
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.slack_commands import sign
from tests.fakes.saas import SlackWebhookServer
from tests.operator_fleet import TOKEN, fleet_server
from tests.servers import free_port, wait_until
from tests.test_slack_actions import KEY, SIGNING_SECRET

ROUTES = ["POST /slack/commands", "GET  /healthz", "POST /slack/actions"]


def signed(body: bytes) -> dict:
    ts = str(int(time.time()))
    headers = {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sign(SecretStr(SIGNING_SECRET), ts, body),
        "content-type": "application/x-www-form-urlencoded",
    }
    return {"content": body, "headers": headers}


def click(response_url: str) -> bytes:
    """An `ack` button press as Slack posts it (the fields the app reads)."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana", "name": "ana"},
        "container": {"type": "message", "channel_id": "C0OPS"},
        "channel": {"id": "C0OPS", "name": "operations"},
        "response_url": response_url,
        "actions": [
            {"action_id": "ack", "block_id": ACTIONS_BLOCK + KEY, "type": "button",
             "value": "ack", "action_ts": f"{time.time():.6f}"}
        ],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)}).encode()


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def started(
    tmp_path: Path, fleet_api: bool = True
) -> Iterator[tuple[str, Path, Path, SlackWebhookServer]]:
    """`fleet-alerting slack-app` started from its entry point, with an incident stored;
    `fleet_api`: whether the config has a `fleet_api` section."""
    port = free_port()
    with fleet_server() as fleet, SlackWebhookServer() as responses:
        (tmp_path / "signing.secret").write_text(SIGNING_SECRET)
        (tmp_path / "fleet.token").write_text(TOKEN)
        config = tmp_path / "config.yaml"
        settings = {"signing_secret": {"file": "signing.secret"}, "allowed_users": ["U0ANA"]}
        sections = {"fleet_api": {"url": fleet.url, "token": {"file": "fleet.token"}}}
        config.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {"dry_run": True},
                    **(sections if fleet_api else {}),
                    "operators": {"slack_app": settings | {"host": "127.0.0.1", "port": port}},
                }
            )
        )
        now = datetime.now(UTC)
        signal = Signal(KEY, "blackbox", True, Severity.critical, "Fleet API down", since=now)
        policy = load_config(config).policy
        with Store(tmp_path / "state.sqlite") as store:
            store.record(evaluate([signal], {}, policy, now + timedelta(minutes=1)), now)
        out, err = tmp_path / "out", tmp_path / "err"
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fleet_alerting.surfaces.cli", "slack-app", "-c", config],
                stdout=stdout,
                stderr=stderr,
            )
        try:
            wait_until(
                lambda: answers(f"http://127.0.0.1:{port}") or proc.poll() is not None, 60, "up"
            )
            yield f"http://127.0.0.1:{port}", out, err, responses
        finally:
            proc.terminate()
            proc.wait(30)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, Path, Path, SlackWebhookServer]]:
    with started(tmp_path) as running:
        yield running


def test_start_up_says_address_and_routes(app) -> None:
    url, out, _err, _responses = app
    lines = out.read_text().splitlines()
    assert lines[0] == f"slack-app: listening on {url}"
    assert sorted(lines[1:]) == sorted(f"  {route.replace(' /', f' {url}/')}" for route in ROUTES)
    assert httpx.get(f"{url}/healthz", timeout=10).text == "ok"


def test_each_handled_command_and_click_is_logged(app) -> None:
    url, out, err, responses = app
    body = urlencode(
        {"command": "/fleet", "text": "incidents", "user_id": "U0ANA", "channel_id": "C0OPS",
         "trigger_id": uuid.uuid4().hex}
    ).encode()  # fmt: skip
    assert httpx.post(f"{url}/slack/commands", timeout=10, **signed(body)).status_code == 200
    answer = httpx.post(f"{url}/slack/actions", timeout=10, **signed(click(f"{responses.url}/r")))
    assert answer.status_code == 200
    wait_until(lambda: "slack ack" in err.read_text(), 30, "the click logged")
    logged = err.read_text()
    assert "/fleet incidents by U0ANA in C0OPS: Open incidents" in logged
    assert f"slack ack on incident {KEY} by @ana (U0ANA) in C0OPS: Acknowledged by @ana" in logged
    assert SIGNING_SECRET not in logged + out.read_text() and TOKEN not in logged


def command(text: str) -> bytes:
    return urlencode(
        {"command": "/fleet", "text": text, "user_id": "U0ANA", "channel_id": "C0OPS",
         "trigger_id": uuid.uuid4().hex}
    ).encode()  # fmt: skip


def test_buttons_and_incidents_need_no_fleet_api(tmp_path: Path) -> None:
    """Only `/fleet health`, `state` and `logs` read the Fleet API: without a `fleet_api`
    section the app starts, says so once, takes clicks and lists incidents, and those three
    answer what they need."""
    with started(tmp_path, fleet_api=False) as (url, out, err, responses):
        assert answers(url), (out.read_text(), err.read_text())
        listed = httpx.post(f"{url}/slack/commands", timeout=10, **signed(command("incidents")))
        health = httpx.post(f"{url}/slack/commands", timeout=10, **signed(command("health")))
        clicked = httpx.post(
            f"{url}/slack/actions", timeout=10, **signed(click(f"{responses.url}/r"))
        )
        assert clicked.status_code == 200
        wait_until(lambda: "slack ack" in err.read_text(), 30, "the click handled")
    assert "Fleet API down" in listed.json()["blocks"][1]["text"]["text"]
    needs = health.json()["blocks"][1]["text"]["text"]
    assert health.json()["text"] == "The Fleet API is not configured"
    assert "`/fleet health`, `/fleet state` and `/fleet logs` read the Fleet API" in needs
    assert "no fleet_api section: /fleet health, state and logs answer that they need one" in (
        out.read_text()
    )
