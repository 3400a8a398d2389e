"""PagerDuty webhooks (v3): what operators do in PagerDuty comes back to our incident and thread.

Each delivery is signed: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`, possibly
several comma-separated during a secret rotation; one must match. A delivery whose event id was
seen before is a duplicate and changes nothing. `incident.acknowledged` records the ack (reminders
stop, Slack is told "acknowledged in PagerDuty by …"); `incident.resolved` while our check still
fails keeps our incident open and says so in Slack (core.actions.pager_resolved). PagerDuty's
`incident_key` is the dedup_key we sent, so it finds the incident.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleet_alerting.config import Config
from fleet_alerting.core import actions
from fleet_alerting.delivery.notifiers.pagerduty import dedup_key
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.incident_actions import deliver_now

log = logging.getLogger("fleet_alerting.surfaces.pagerduty_webhook")
HANDLED = {
    "incident.acknowledged": actions.pager_acknowledged,
    "incident.resolved": actions.pager_resolved,
}
MAX_SEEN = 10_000


def signature(secret: SecretStr, body: bytes) -> str:
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: SecretStr, header: str | None, body: bytes) -> bool:
    if not header:
        return False
    expected = signature(secret, body)
    return any(hmac.compare_digest(expected, given.strip()) for given in header.split(","))


def pagerduty_routes(config: Config, clock: Callable[[], float]) -> list[Route]:
    settings = config.operators.pagerduty_webhook
    if settings is None:
        return []
    secret = settings.secret.resolve()
    seen: OrderedDict[str, None] = OrderedDict()

    async def webhook(request: Request) -> Response:
        body = await request.body()
        if not verify(secret, request.headers.get("x-pagerduty-signature"), body):
            log.warning("refused a PagerDuty webhook: signature missing or wrong")
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            event = json.loads(body)["event"]
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("expected {event: …}", status_code=400)
        if not isinstance(event, dict):
            return PlainTextResponse("expected {event: …}", status_code=400)
        ident = str(event.get("id") or "")
        if ident and ident in seen:
            return Response(status_code=200)  # a redelivery: done already
        if ident:
            seen[ident] = None
            while len(seen) > MAX_SEEN:
                seen.popitem(last=False)
        if event.get("event_type") not in HANDLED:
            return Response(status_code=200)
        return Response(status_code=200, background=BackgroundTask(handle, event))

    async def handle(event: dict[str, Any]) -> None:
        now = datetime.fromtimestamp(clock(), UTC)
        data = event.get("data") or {}
        agent = (event.get("agent") or {}).get("summary") or "PagerDuty"
        pd_key = str(data.get("incident_key") or "")
        kind = str(event["event_type"])
        store = Store(config.state)
        try:
            key = next(
                (k for k in store.unresolved() if dedup_key(k) == pd_key),
                pd_key,  # resolved or unknown here: recorded against PagerDuty's key
            )
            incident = store.incident(key)
            channels = config.policy(incident.severity).channels() if incident else []
            decide = HANDLED[kind]
            change = audit.apply(
                store, key, lambda i: decide(i, agent, now, channels),
                action=kind.removeprefix("incident."), actor=agent, via="pagerduty", now=now,
                detail={"pagerduty_incident": data.get("id"), "event_id": event.get("id")},
            )  # fmt: skip
            if change is not None and change.notifications:
                async with httpx.AsyncClient(timeout=10) as client:
                    await deliver_now(config, store, client)
        finally:
            store.close()

    return [Route("/pagerduty/webhook", webhook, methods=["POST"])]
