"""Slack interactivity: the buttons on incident messages (Acknowledge, Silence, Snooze, Unsilence).

Slack POSTs a `block_actions` payload (JSON in the `payload` form field) to `/slack/actions`, signed
like slash commands. Size, signature (slack-sdk's `SignatureVerifier`) and its 5-minute window are
checked before the body is parsed, and a signature seen before — by any app process sharing the
store, before a restart too — is a replay and refused (surfaces/http_guard.py). A payload whose
fields are not of the types Slack documents is a 400. Slack wants an answer within 3 s and ignores
its body for `block_actions`, so we answer 200 at once and do the work after (Starlette background
task): the action through `incident_actions.perform`, then the original message is replaced
through `response_url` (slack-sdk's webhook client) with its new state — "Acknowledged by @ana
10:42 UTC", Unsilence instead of Silence.
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
from typing import Any, Literal, cast
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleet_alerting.config import Config
from fleet_alerting.core.actions import ACTIONS, Action
from fleet_alerting.core.channels import Channel
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.delivery.notifiers.slack_webhook import ACTIONS_BLOCK, render
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.http_guard import Refused, SlackSigning
from fleet_alerting.surfaces.incident_actions import Outcome, parse_for, perform
from fleet_alerting.surfaces.pagerduty_webhook import pagerduty_routes

log = logging.getLogger("fleet_alerting.surfaces.slack_actions")
MAX_BODY_BYTES = 1024 * 1024  # a block_actions payload carries the message: a few KiB to ~100 KiB
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


class _Shape(BaseModel):
    """The part of a payload we read, with the types Slack documents (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _User(_Shape):
    id: StrictStr = ""
    username: StrictStr | None = None
    name: StrictStr | None = None


class _Channel(_Shape):
    id: StrictStr = ""


class _Container(_Shape):
    channel_id: StrictStr = ""


class _Option(_Shape):
    value: StrictStr = ""


class _Item(_Shape):
    action_id: StrictStr = ""
    block_id: StrictStr = ""
    value: StrictStr = ""
    selected_option: _Option | None = None


class _BlockActions(_Shape):
    type: Literal["block_actions"]
    user: _User = _User()
    channel: _Channel | None = None
    container: _Container = _Container()
    actions: list[_Item] = Field(default_factory=list, max_length=100)
    response_url: StrictStr = ""


class PayloadError(ValueError):
    """Why a signed request's payload was refused; safe to log (none of the payload)."""


def parse_form(body: str) -> Click | None:
    """The click of a signed request's body (a form whose `payload` field is JSON)."""
    try:
        form = parse_qs(body, strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (ValueError, KeyError, RecursionError) as exc:  # a 5,000-digit number, deep nesting
        raise PayloadError(
            f"expected a payload form field with JSON ({type(exc).__name__})"
        ) from None
    return parse_click(payload)


def parse_click(payload: object) -> Click | None:
    """The first of our actions in the payload, or None (another app's block, another kind of
    interaction). PayloadError for a block_actions payload of the wrong shape."""
    if not isinstance(payload, dict):
        raise PayloadError("the payload is not a JSON object")
    if payload.get("type") != "block_actions":
        return None
    try:
        shaped = _BlockActions.model_validate(payload)
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise PayloadError(
            f"block_actions payload: {where} is not of the documented type"
        ) from None
    user = shaped.user
    for item in shaped.actions:
        if not item.block_id.startswith(ACTIONS_BLOCK) or item.action_id not in ACTIONS:
            continue
        value = (item.selected_option.value if item.selected_option else "") or item.value
        username = user.username or user.name
        channel = shaped.channel.id if shaped.channel else ""
        return Click(
            action=cast(Action, item.action_id),
            key=item.block_id[len(ACTIONS_BLOCK) :],
            value=value,
            user_id=user.id,
            actor=f"@{username}" if username else user.id,
            channel_id=channel or shaped.container.channel_id,
            response_url=shaped.response_url,
        )
    return None


def updated_message(incident: Incident, now: datetime) -> dict[str, Any]:
    """The incident message as it stands after the action (buttons follow the new state)."""
    kind = Kind.paged if incident.state == State.paged else Kind.opened
    if incident.state == State.resolved:
        kind = Kind.resolved
    message = render(
        Notification(id="", channel=Channel.slack, kind=kind, at=now, incident=incident)
    )
    return message | {"replace_original": True}


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def post_response_url(url: str, body: dict[str, Any]) -> None:
    response = await AsyncWebhookClient(url, timeout=10).send_dict(body)
    if response.status_code >= 400:
        log.warning("response_url answered HTTP %s", response.status_code)


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
    signing = SlackSigning(config, clock)
    allowed_users, allowed_channels = set(settings.allowed_users), set(settings.allowed_channels)

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
            "slack %s%s on incident %s by %s (%s) in %s: %s",
            click.action,
            f" {click.value}" if duration else "",
            click.key,
            click.actor,
            click.user_id,
            click.channel_id,
            outcome.message,
        )
        if outcome.ok and outcome.incident is not None:
            await respond(click.response_url, updated_message(outcome.incident, now))
        else:
            await respond(click.response_url, ephemeral(outcome.message))

    async def refuse(click: Click) -> None:
        now = datetime.fromtimestamp(clock(), UTC)
        with Store(config.state) as store:
            audit.record(
                store, click.key, action=click.action, actor=click.actor, via="slack", now=now,
                outcome="refused: not allowed",
                detail={"user_id": click.user_id, "channel_id": click.channel_id},
            )  # fmt: skip
        await respond(
            click.response_url,
            ephemeral(
                "Not allowed: incident actions are limited to the users and channels in config."
            ),
        )

    async def interact(request: Request) -> Response:
        try:
            body, signature = await signing.read(request, MAX_BODY_BYTES)
            await signing.refuse_replay(signature)
        except Refused as exc:
            log.warning("refused a Slack action request: %s", exc.text)
            return exc.response()
        try:
            click = parse_form(body)
        except PayloadError as exc:
            log.warning("refused a Slack action request: %s", exc)
            return PlainTextResponse(str(exc), status_code=400)
        if click is None or not click.response_url:
            return Response(status_code=200)
        if click.user_id not in allowed_users and click.channel_id not in allowed_channels:
            log.warning(
                "refused %s from user %s in %s", click.action, click.user_id, click.channel_id
            )
            return Response(status_code=200, background=BackgroundTask(refuse, click))
        return Response(status_code=200, background=BackgroundTask(work, click))

    return [Route("/slack/actions", interact, methods=["POST"]), *pagerduty_routes(config, clock)]
