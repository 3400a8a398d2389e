"""PagerDuty webhooks (v3): what operators do in PagerDuty comes back to our incident and thread.

Each delivery is signed: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`, possibly
several comma-separated during a secret rotation; one must match. The body is read up to 1 MiB
and checked before it is parsed; an event not shaped as PagerDuty documents is a 400. A delivery
whose event id the store has seen in the last 24 hours (any app process, before a restart too) is
a duplicate and changes nothing; an event that occurred more than 24 hours ago (its id may be
forgotten) or more than 10 minutes before the current episode of its incident began (a copy of
yesterday's ack) is ignored. `incident.acknowledged` records the ack (reminders
stop, Slack is told "acknowledged in PagerDuty by …"); `incident.resolved` while our check still
fails keeps our incident open and says so in Slack (core.actions.pager_resolved). PagerDuty's
`incident_key` is the dedup_key we sent, so it finds the incident.

Only what a person did counts: `event.agent` (documented as who or what initiated the event) must
be a `user_reference`. Our own Events API acknowledge (a mute begins) and resolve (a re-page)
come back with a service/integration agent or none; acting on them would record an ack no
operator gave, so they are answered 200 and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictStr,
    ValidationError,
)
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleet_alerting.config import Config
from fleet_alerting.core import actions
from fleet_alerting.delivery.deliver import deliver
from fleet_alerting.delivery.notifiers.pagerduty import dedup_key
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.http_guard import Refused, first_sight, now_utc, read_body

log = logging.getLogger("fleet_alerting.surfaces.pagerduty_webhook")
HANDLED = {
    "incident.acknowledged": actions.pager_acknowledged,
    "incident.resolved": actions.pager_resolved,
}
MAX_BODY_BYTES = 1024 * 1024  # an event is a few KiB
KEEP_EVENT_IDS = timedelta(hours=24)  # PagerDuty retries a delivery for minutes, not days
USER_AGENT = "user_reference"
# An event this long before its incident's onset is of an earlier episode: PagerDuty's clock and
# ours may differ by minutes (one minute would lose a real ack from a clock 3 minutes ahead).
EPISODES_APART = timedelta(minutes=10)


def signature(secret: SecretStr, body: bytes) -> str:
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: SecretStr, header: str | None, body: bytes) -> bool:
    """True if one of the header's comma-separated `v1=<hex>` signatures is the body's."""
    if not header or not header.isascii():
        return False
    expected = signature(secret, body).encode()
    return any(hmac.compare_digest(expected, given.strip().encode()) for given in header.split(","))


class _Shape(BaseModel):
    """The part of an event we read, with the types PagerDuty documents (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _Agent(_Shape):
    summary: StrictStr | None = None
    type: StrictStr | None = None


class _Data(_Shape):
    id: StrictStr | None = None
    incident_key: StrictStr | None = None


class Event(_Shape):
    id: StrictStr = Field(min_length=1, max_length=200)
    event_type: StrictStr
    occurred_at: AwareDatetime | None = None
    agent: _Agent | None = None
    data: _Data = _Data()


def not_by_a_person(event: Event) -> str | None:
    """Why the event is not an operator's doing (an echo of our own Events API call), or None."""
    if event.agent is None:
        return "no agent"
    if event.agent.type != USER_AGENT:
        return "agent is not a user_reference (a service, an integration or PagerDuty)"
    return None


class _Delivery(_Shape):
    event: Event


class EventError(ValueError):
    """Why a signed delivery was refused; safe to log (none of the body)."""


def parse_event(body: bytes) -> Event:
    """The event of a signed delivery; EventError for one not shaped as PagerDuty documents."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, a 5,000-digit number, deep nesting
        raise EventError(f"not JSON we read ({type(exc).__name__})") from None
    try:
        return _Delivery.model_validate(document).event
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise EventError(
            f"{where or 'the body'} is missing or not of the documented type"
        ) from None


def pagerduty_routes(config: Config, clock: Callable[[], float]) -> list[Route]:
    settings = config.operators.pagerduty_webhook
    if settings is None:
        return []
    secret = settings.secret.resolve()

    async def webhook(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY_BYTES)
            if not verify(secret, request.headers.get("x-pagerduty-signature"), body):
                raise Refused(401, "invalid signature")
            event = parse_event(body)
            now = now_utc(clock)
            new = await first_sight(config, f"pagerduty:{event.id}", now, KEEP_EVENT_IDS)
        except Refused as exc:
            log.warning("refused a PagerDuty webhook: %s", exc.text)
            return exc.response()
        except EventError as exc:
            log.warning("refused a PagerDuty webhook: %s", exc)
            return PlainTextResponse("expected {event: …} as PagerDuty documents", 400)
        if not new:
            return Response(status_code=200)  # a redelivery: done already
        if event.occurred_at and event.occurred_at < now - KEEP_EVENT_IDS:
            # its id may be forgotten: a replayed copy cannot be told from a delivery
            log.warning("ignored PagerDuty %s %s: older than 24 hours", event.event_type, event.id)
            return Response(status_code=200)
        if event.event_type not in HANDLED:
            return Response(status_code=200)
        if reason := not_by_a_person(event):
            log.info("ignored PagerDuty %s %s: %s", event.event_type, event.id, reason)
            return Response(status_code=200)
        return Response(status_code=200, background=BackgroundTask(handle, event))

    async def handle(event: Event) -> None:
        now = datetime.fromtimestamp(clock(), UTC)
        agent = (event.agent.summary if event.agent else None) or "PagerDuty"
        pd_key = event.data.incident_key or ""
        kind = event.event_type
        with Store(config.state) as store:
            key = next(
                (k for k in store.unresolved() if dedup_key(k) == pd_key),
                pd_key,  # resolved or unknown here: recorded against PagerDuty's key
            )
            incident = store.incident(key)
            if (
                incident
                and event.occurred_at
                and event.occurred_at < incident.onset - EPISODES_APART
            ):
                log.warning(
                    "ignored PagerDuty %s %s: it happened before this episode of %s began",
                    kind, event.id, key,
                )  # fmt: skip
                return
            channels = config.policy(incident.severity).channels() if incident else []
            decide = HANDLED[kind]
            change = audit.apply(
                store, key, lambda i: decide(i, agent, now, channels),
                action=kind.removeprefix("incident."), actor=agent, via="pagerduty", now=now,
                detail={"pagerduty_incident": event.data.id, "event_id": event.id},
            )  # fmt: skip
            if change is not None and change.notifications:
                async with httpx.AsyncClient(timeout=10) as client:
                    await deliver(config, store, client)

    return [Route("/pagerduty/webhook", webhook, methods=["POST"])]
