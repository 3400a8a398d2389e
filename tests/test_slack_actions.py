"""Slack buttons: signed `block_actions` payloads, shaped as Slack documents them, posted to the
Slack app; PagerDuty, the incident webhook and `response_url` are local servers speaking their
protocols."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
import yaml
from pydantic import SecretStr
from starlette.testclient import TestClient

from fleet_alerting.config import Config, load_config
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.policy import evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import build_notifiers, drain
from fleet_alerting.delivery.notifiers.slack_webhook import ACTIONS_BLOCK, render
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.slack_app import create_app
from fleet_alerting.surfaces.slack_commands import sign
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.operator_fleet import TOKEN, fleet_server
from tests.servers import free_port, wait_until

SIGNING_SECRET = "slack-signing-secret-CANARY-13"
ROUTING_KEY = "R" * 32
KEY = "blackbox:target=fleet-api"
PD_WEBHOOK_SECRET = "pd-webhook-secret-CANARY-v3"


@dataclass
class World:
    client: TestClient
    config: Config
    pagerduty: PagerDutyServer
    slack: SlackWebhookServer  # the incident messages (incoming webhook)
    responses: SlackWebhookServer  # response_url

    def store(self) -> Store:
        return Store(self.config.state.path)

    def incident(self) -> Incident:
        with self.store() as store:
            incident = store.incident(KEY)
        assert incident is not None
        return incident

    def observe(self, now: datetime, onset: datetime) -> list[Notification]:
        """One blackbox run: the API still fails; evaluate, record, deliver."""
        signal = Signal(KEY, "blackbox", True, Severity.critical, "Fleet API down", since=onset)
        with self.store() as store:
            result = evaluate([signal], store.unresolved(), self.config.policy, now)
            store.record(result, now)

            async def deliver():
                async with httpx.AsyncClient() as http:
                    await drain(store, build_notifiers(self.config, http, store), lambda: now)

            asyncio.run(deliver())
        return result.notifications

    def click(self, action: str, value: str | None = None, user: str = "U0ANA", **kw):
        return self.client.post(
            "/slack/actions", **signed(payload(action, value, user, self), **kw)
        )


def payload(action: str, value: str | None, user: str, world: World) -> dict:
    """A `block_actions` payload as Slack's reference shows it (button or static_select)."""
    element = {
        "action_id": action,
        "block_id": ACTIONS_BLOCK + KEY,
        "action_ts": f"{time.time():.6f}",
    }
    if value is None:
        element |= {"type": "button", "value": action, "text": {"type": "plain_text", "text": "x"}}
    else:
        element |= {
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
        }
    return {
        "type": "block_actions",
        "team": {"id": "T9TK3CUKW", "domain": "example"},
        "user": {"id": user, "username": "ana", "name": "ana", "team_id": "T9TK3CUKW"},
        "api_app_id": "AABA1ABCD",
        "token": "legacy-verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": "1548261231.000200",
            "channel_id": "C0OPS",
            "is_ephemeral": False,
        },
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "channel": {"id": "C0OPS", "name": "operations"},
        "message": {"type": "message", "ts": "1548261231.000200", "text": "incident"},
        "response_url": f"{world.responses.url}/actions/AABA1ABCD/1232321423432/D09sSasd",
        "actions": [element],
    }


def signed(body_json: dict, secret: str = SIGNING_SECRET, age: int = 0) -> dict:
    body = urlencode({"payload": json.dumps(body_json)}).encode()
    ts = str(int(time.time()) - age)
    return {
        "content": body,
        "headers": {
            "x-slack-request-timestamp": ts,
            "x-slack-signature": sign(SecretStr(secret), ts, body),
            "content-type": "application/x-www-form-urlencoded",
        },
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with (
        fleet_server() as fleet,
        PagerDutyServer() as pagerduty,
        SlackWebhookServer() as slack,
        SlackWebhookServer() as responses,
    ):
        (tmp_path / "signing.secret").write_text(SIGNING_SECRET)
        (tmp_path / "fleet.token").write_text(TOKEN)
        (tmp_path / "pd.key").write_text(ROUTING_KEY)
        (tmp_path / "pd-webhook.secret").write_text(PD_WEBHOOK_SECRET)
        (tmp_path / "slack.url").write_text(f"{slack.url}/services/T/B/X")
        config = {
            "state": {"path": "state.sqlite"},
            "notify": {
                "slack": {"webhook": {"file": "slack.url"}, "min_interval": "0s"},
                "pagerduty": {
                    "routing_key": {"file": "pd.key"},
                    "url": f"{pagerduty.url}/v2/enqueue",
                },
            },
            "policies": {
                "critical": {
                    "page": ["pagerduty"],
                    "page_after": "5m",
                    "open_after": 1,
                    "mirror": False,  # partial policies merge over critical's, which mirror
                }
            },
            "fleet_api": {"url": fleet.url, "token": {"file": "fleet.token"}},
            "operators": {
                "slack_app": {
                    "signing_secret": {"file": "signing.secret"},
                    "allowed_users": ["U0ANA"],
                },
                "pagerduty_webhook": {"secret": {"file": "pd-webhook.secret"}},
            },
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        loaded = load_config(path)

        async def no_trigger(_deployment, _out) -> int:
            return 1

        with TestClient(create_app(loaded, no_trigger)) as client:
            yield World(client, loaded, pagerduty, slack, responses)


def kinds(notifications: list[Notification]) -> list[str]:
    return [f"{n.channel}:{n.kind}" for n in notifications]


def test_ack_before_page_after_means_no_page(world: World) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=1)
    assert kinds(world.observe(now, onset)) == ["slack:opened"]
    opened = world.slack.messages[-1]
    assert {b["type"] for b in opened["blocks"]} >= {"actions"}  # the buttons are there

    answer = world.click("ack")
    assert answer.status_code == 200 and answer.content == b""
    incident = world.incident()
    assert incident.acts.acked_by == "@ana" and incident.acts.acked_at is not None
    (update,) = world.responses.messages
    assert update["replace_original"] is True
    assert update["text"].startswith("[CRITICAL] Fleet API down")
    assert "Acknowledged by @ana at" in json.dumps(update["blocks"])
    assert '"action_id": "ack"' not in json.dumps(update["blocks"])  # acknowledged once
    assert "Acknowledged by @ana" in world.slack.messages[-1]["text"]  # the thread's reply

    later = world.observe(now + timedelta(minutes=10), onset)
    assert later == [] and world.pagerduty.events == []  # no page, no reminder
    assert world.incident().state == State.firing
    (record,) = audit.history(world.store(), KEY)
    assert (record.action, record.actor, record.via, record.outcome) == (
        "ack", "@ana", "slack", "done"
    )  # fmt: skip


def test_ack_after_the_page_acknowledges_pagerduty_with_the_same_dedup_key(world: World) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=6)
    assert kinds(world.observe(now, onset)) == ["slack:opened", "pagerduty:paged", "slack:paged"]
    (trigger,) = world.pagerduty.events
    assert world.click("ack").status_code == 200
    ack = world.pagerduty.events[-1]
    assert ack["event_action"] == "acknowledge"
    assert ack["dedup_key"] == trigger["dedup_key"] == KEY
    assert ack["routing_key"] == ROUTING_KEY
    assert world.incident().state == State.paged


@pytest.mark.parametrize(
    "refusal", ["unsigned", "wrong secret", "stale", "replayed", "not allowed"]
)
def test_refused_clicks_change_nothing(world: World, refusal: str) -> None:
    now = datetime.now(UTC)
    world.observe(now, now - timedelta(minutes=6))
    before = world.incident()
    events = len(world.pagerduty.events)
    body = payload("ack", None, "U0EVE" if refusal == "not allowed" else "U0ANA", world)
    request = signed(
        body,
        secret="not-the-secret" if refusal == "wrong secret" else SIGNING_SECRET,
        age=600 if refusal == "stale" else 0,
    )
    if refusal == "unsigned":
        request["headers"] = {"content-type": "application/x-www-form-urlencoded"}
    if refusal == "replayed":
        assert world.client.post("/slack/actions", **request).status_code == 200
        before = world.incident()
        events = len(world.pagerduty.events)
    answer = world.client.post("/slack/actions", **request)
    if refusal == "not allowed":
        assert answer.status_code == 200
        (note,) = world.responses.messages
        assert note["response_type"] == "ephemeral" and note["text"].startswith("Not allowed")
        (record,) = audit.history(world.store(), KEY)
        assert record.outcome == "refused: not allowed" and record.detail["user_id"] == "U0EVE"
    else:
        assert answer.status_code == 401
    assert world.incident() == before
    assert len(world.pagerduty.events) == events


def test_local_mute_then_unsilence_from_the_confirmation(world: World) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=1)
    world.observe(now, onset)
    assert world.click("silence", "4h").status_code == 200
    incident = world.incident()
    assert incident.acts.silenced_by == "@ana" and incident.acts.silence_id is None
    update = json.dumps(world.responses.messages[-1]["blocks"])
    assert '"action_id": "unsilence"' in update and "Silenced by @ana until" in update
    assert world.observe(now + timedelta(minutes=10), onset) == []  # muted: no page
    assert world.click("unsilence").status_code == 200
    assert not world.incident().acts.silenced
    assert kinds(world.observe(now + timedelta(minutes=11), onset)) == [
        "pagerduty:paged", "slack:paged"
    ]  # fmt: skip


def test_resolved_messages_carry_no_buttons() -> None:
    now = datetime.now(UTC)
    signal = Signal(KEY, "blackbox", True, Severity.warning, "down")
    incident = Incident(KEY, "blackbox", Severity.warning, State.resolved, now, now, signal)
    body = render(Notification("n", "slack", Kind.resolved, now, incident))
    assert all(b["type"] != "actions" for b in body["blocks"])
    firing = Incident(KEY, "alertmanager", Severity.warning, State.firing, now, now, signal)
    (actions,) = [
        b
        for b in render(Notification("n", "slack", Kind.opened, now, firing))["blocks"]
        if b["type"] == "actions"
    ]
    assert [e["action_id"] for e in actions["elements"]] == ["ack", "silence"]  # no snooze


def pagerduty_webhook(event_type: str, event_id: str, secret: str = PD_WEBHOOK_SECRET) -> dict:
    """A webhook v3 delivery as PagerDuty documents it, signed `v1=` HMAC-SHA256 of the body."""
    body = json.dumps(
        {
            "event": {
                "id": event_id,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": datetime.now(UTC).isoformat(),
                "agent": {
                    "html_url": "https://example.pagerduty.com/users/PLH1HKV",
                    "id": "PLH1HKV",
                    "self": "https://api.pagerduty.com/users/PLH1HKV",
                    "summary": "Ana Operator",
                    "type": "user_reference",
                },
                "client": None,
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "number": 2,
                    "status": event_type.split(".")[1],
                    "incident_key": KEY,
                    "title": "Fleet API down",
                    "urgency": "high",
                },
            }
        }
    ).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-pagerduty-signature": f"v1=0000,v1={digest}",  # rotation: one of several matches
        "x-webhook-id": "PWH1234",
    }
    return {"content": body, "headers": headers}


def test_pagerduty_webhook_valid_and_invalid_signatures(world: World) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=6)
    world.observe(now, onset)  # paged
    events = len(world.pagerduty.events)
    forged = pagerduty_webhook("incident.acknowledged", "E1", secret="not-the-secret")
    assert world.client.post("/pagerduty/webhook", **forged).status_code == 401
    unsigned = pagerduty_webhook("incident.acknowledged", "E1")
    del unsigned["headers"]["x-pagerduty-signature"]
    assert world.client.post("/pagerduty/webhook", **unsigned).status_code == 401
    assert world.incident().acts.acked_at is None

    valid = pagerduty_webhook("incident.acknowledged", "E1")
    assert world.client.post("/pagerduty/webhook", **valid).status_code == 200
    incident = world.incident()
    assert incident.acts.acked_by == "Ana Operator"
    assert world.slack.messages[-1]["text"].startswith(
        "[CRITICAL] Acknowledged in PagerDuty by Ana Operator"
    )
    assert len(world.pagerduty.events) == events  # not echoed back to PagerDuty
    assert world.client.post("/pagerduty/webhook", **valid).status_code == 200  # redelivery
    assert len(audit.history(world.store(), KEY)) == 1


def test_resolved_in_pagerduty_while_still_failing_stays_open_and_says_so(world: World) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=6)
    world.observe(now, onset)
    resolved = pagerduty_webhook("incident.resolved", "E2")
    assert world.client.post("/pagerduty/webhook", **resolved).status_code == 200
    assert world.incident().state == State.paged
    assert "Resolved in PagerDuty, but still failing" in world.slack.messages[-1]["text"]
    assert world.observe(now + timedelta(hours=2), onset) == []  # no second page, no reminder
    (record,) = audit.history(world.store(), KEY)
    assert (record.action, record.actor, record.via) == ("resolved", "Ana Operator", "pagerduty")


def test_the_click_is_answered_within_3s_and_worked_on_after(world: World) -> None:
    """Under a real ASGI server: the answer comes before the (here slow) work is done."""
    now = datetime.now(UTC)
    world.observe(now, now - timedelta(minutes=1))
    world.responses.fail_next = [Response(200, "ok", delay=4.0)]  # a slow response_url

    async def no_trigger(_deployment, _out) -> int:
        return 1

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world.config, no_trigger), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 60, "uvicorn")
        request = signed(payload("ack", None, "U0ANA", world))
        started = time.monotonic()
        answer = httpx.post(f"http://127.0.0.1:{port}/slack/actions", timeout=10, **request)
        assert answer.status_code == 200 and time.monotonic() - started < 3
        wait_until(lambda: len(world.responses.requests) == 1, 60, "response_url called")
        assert world.incident().acts.acked_by == "@ana"
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_failing_target_muted_for_2_minutes_sends_nothing_then_one_message(world: World) -> None:
    now = datetime.now(UTC)
    onset = now - timedelta(minutes=4)
    world.observe(now, onset)
    assert world.click("silence", "2m").status_code == 200
    # the click's own clock sets the end (on a loaded machine, a second or more after `now`)
    until = world.incident().acts.silenced_until
    assert until is not None and timedelta(minutes=2) <= until - now < timedelta(minutes=3)
    told = len(world.slack.messages)
    for seconds in (30, 60, 90, 119):  # page_after (5 min from onset) passes: held too
        assert world.observe(now + timedelta(seconds=seconds), onset) == []
    assert world.pagerduty.events == []
    at_expiry = world.observe(until + timedelta(seconds=1), onset)
    assert kinds(at_expiry) == ["slack:silence_expired", "pagerduty:paged", "slack:paged"]
    assert world.slack.messages[told]["text"].startswith("[CRITICAL] Silence ended, still failing")
    assert len(world.slack.messages) == told + 2  # that message, then the page now due
    assert world.observe(until + timedelta(seconds=30), onset) == []


def test_secrets_stay_out_of_the_store_messages_and_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    now = datetime.now(UTC)
    world.observe(now, now - timedelta(minutes=6))
    world.click("ack")
    world.click("silence", "1h", user="U0EVE")  # refused
    world.client.post("/slack/actions", **signed(payload("ack", None, "U0ANA", world), "wrong"))
    world.client.post("/pagerduty/webhook", **pagerduty_webhook("incident.resolved", "E9"))
    db = Path(world.config.state.path)
    state = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # with the WAL
    assert b"Ana Operator" in state  # the check can see what was written
    told = json.dumps([world.slack.messages, world.responses.messages])
    for secret in (SIGNING_SECRET, PD_WEBHOOK_SECRET, ROUTING_KEY):
        assert secret.encode() not in state
        assert secret not in told and secret not in caplog.text
