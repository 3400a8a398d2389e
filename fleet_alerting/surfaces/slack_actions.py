"""Slack interactivity: the buttons on incident messages (Acknowledge, Silence, Snooze, Unsilence).

Slack POSTs a `block_actions` payload (JSON in the `payload` form field) to `/slack/actions`, signed
like slash commands. The signature and its 5-minute window are checked with slack-sdk's
`SignatureVerifier` (the documented algorithm, maintained by Slack); a signature seen before is a
replay and refused. Slack wants an answer within 3 s and ignores its body for `block_actions`, so we
answer 200 at once and do the work after (Starlette background task): the action through
`incident_actions.perform`, then the original message is replaced through `response_url`
(slack-sdk's webhook client) with its new state — "Acknowledged by @ana 10:42 UTC", Unsilence
instead of Silence.
A click from a user or channel outside the allow-lists gets an ephemeral "not allowed" and changes
nothing (recorded in the audit trail).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleet_alerting.config import Config
from fleet_alerting.core.actions import ACTIONS, Action
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.delivery.notifiers.slack_webhook import ACTIONS_BLOCK, render
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.incident_actions import Outcome, parse_for, perform
from fleet_alerting.surfaces.pagerduty_webhook import pagerduty_routes

log = logging.getLogger("fleet_alerting.surfaces.slack_actions")
MAX_AGE_SECONDS = 300
# response_url → JSON body; slack-sdk's webhook client in production, replaceable in tests.
Respond = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Click:
    """One button press or menu choice, from a `block_actions` payload."""

    action: Action
    key: str
    value: str  # the chosen option (e.g. "4h"), or the button's value
    user_id: str
    actor: str  # @username when Slack gives one, else the user id
    channel_id: str
    response_url: str


def parse_click(payload: dict[str, Any]) -> Click | None:
    """The first of our actions in the payload, or None (another app's block, a malformed one)."""
    if payload.get("type") != "block_actions":
        return None
    user = payload.get("user") or {}
    channel = payload.get("channel") or {}
    container = payload.get("container") or {}
    for item in payload.get("actions") or []:
        block_id, action = str(item.get("block_id") or ""), item.get("action_id")
        if not block_id.startswith(ACTIONS_BLOCK) or action not in ACTIONS:
            continue
        value = (item.get("selected_option") or {}).get("value") or item.get("value") or ""
        user_id = str(user.get("id") or "")
        username = user.get("username") or user.get("name")
        return Click(
            action=action,
            key=block_id[len(ACTIONS_BLOCK) :],
            value=str(value),
            user_id=user_id,
            actor=f"@{username}" if username else user_id,
            channel_id=str(channel.get("id") or container.get("channel_id") or ""),
            response_url=str(payload.get("response_url") or ""),
        )
    return None


def updated_message(incident: Incident, now: datetime) -> dict[str, Any]:
    """The incident message as it stands after the action (buttons follow the new state)."""
    kind = Kind.paged if incident.state == State.paged else Kind.opened
    if incident.state == State.resolved:
        kind = Kind.resolved
    message = render(Notification(id="", channel="slack", kind=kind, at=now, incident=incident))
    return message | {"replace_original": True}


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def post_response_url(url: str, body: dict[str, Any]) -> None:
    response = await AsyncWebhookClient(url, timeout=10).send_dict(body)
    if response.status_code >= 400:
        log.warning("response_url answered HTTP %s", response.status_code)


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]):
        self._now = now

    def now(self) -> float:
        return self._now()


def action_routes(
    config: Config,
    clock: Callable[[], float] = time.time,
    respond: Respond = post_response_url,
) -> list[Route]:
    """`/slack/actions` (and `/pagerduty/webhook` when configured) for the Slack app, mounted
    beside `/slack/commands`."""
    settings = config.operators.slack_app
    if settings is None:
        return []
    verifier = SignatureVerifier(
        settings.signing_secret.resolve().get_secret_value(), clock=_Clock(clock)
    )
    seen: dict[str, float] = {}
    allowed_users, allowed_channels = set(settings.allowed_users), set(settings.allowed_channels)

    def verified(request: Request, body: bytes) -> str | None:
        """Why the request is refused, or None. Safe to log: no secret, no body."""
        ts = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not ts or not signature or not ts.isdigit():
            return "missing or malformed signature headers"
        if not verifier.is_valid(body, ts, signature):
            return "bad signature or stale timestamp"
        now = clock()
        for old in [s for s, t in seen.items() if abs(now - t) > MAX_AGE_SECONDS]:
            del seen[old]
        if signature in seen:
            return "replayed request"
        seen[signature] = int(ts)
        return None

    async def work(click: Click) -> None:
        now = datetime.fromtimestamp(clock(), UTC)
        try:
            duration = parse_for(click.value) if click.action in ("silence", "snooze") else None
        except ValueError:
            await respond(click.response_url, ephemeral(f"Unknown duration {click.value!r}."))
            return
        outcome: Outcome = await perform(
            config, click.key, click.action, actor=click.actor, via="slack", now=now,
            duration=duration,
        )  # fmt: skip
        log.info(
            "slack %s on %s by %s: %s", click.action, click.key, click.user_id, outcome.message
        )
        if outcome.ok and outcome.incident is not None:
            await respond(click.response_url, updated_message(outcome.incident, now))
        else:
            await respond(click.response_url, ephemeral(outcome.message))

    async def refuse(click: Click) -> None:
        now = datetime.fromtimestamp(clock(), UTC)
        store = Store(config.state)
        try:
            audit.record(
                store, click.key, action=click.action, actor=click.actor, via="slack", now=now,
                outcome="refused: not allowed",
                detail={"user_id": click.user_id, "channel_id": click.channel_id},
            )  # fmt: skip
        finally:
            store.close()
        await respond(
            click.response_url,
            ephemeral(
                "Not allowed: incident actions are limited to the users and channels in config."
            ),
        )

    async def interact(request: Request) -> Response:
        body = await request.body()
        refused = verified(request, body)
        if refused:
            log.warning("refused a Slack action request: %s", refused)
            return PlainTextResponse("invalid request signature", status_code=401)
        try:
            form = parse_qs(body.decode(), strict_parsing=True)
            payload = json.loads(form["payload"][0])
        except (ValueError, KeyError, UnicodeDecodeError):
            return PlainTextResponse("expected a payload form field with JSON", status_code=400)
        click = parse_click(payload) if isinstance(payload, dict) else None
        if click is None or not click.response_url:
            return Response(status_code=200)
        if click.user_id not in allowed_users and click.channel_id not in allowed_channels:
            log.warning(
                "refused %s from user %s in %s", click.action, click.user_id, click.channel_id
            )
            return Response(status_code=200, background=BackgroundTask(refuse, click))
        return Response(status_code=200, background=BackgroundTask(work, click))

    return [Route("/slack/actions", interact, methods=["POST"]), *pagerduty_routes(config, clock)]
