"""The Fleet API: recent health events, with bearer auth and correlation ids.

Facts of the live API: `Authorization: Bearer …` (except /healthz, /readyz); each request may carry
`x-correlation-id`, which the API echoes; errors are `{code, message, hint, correlationId}`;
`/health/events/recent?limit=1..200` → `{events: [{timestamp, type, target?, message, severity
("info"|"warn"|"error"), metadata{correlationId?}}], count}`. The recorded fixtures use another
shape, `{items: [{id, source, title, severity, timestamp, correlationId}], nextCursor}`; both are
parsed into the same `FleetEvent`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.http.body import DEFAULT_MAX_ANSWER_BYTES, request_capped
from fleet_alerting.http.errors import (
    AdapterError,
    excerpt,
    retry_after_seconds,
    transport_error,
)
from fleet_alerting.sources.fleet_events import shapes
from fleet_alerting.sources.fleet_events.shapes import FixtureEvent, LiveEvent
from fleet_alerting.sources.records import Malformed, text_only

NAME = "Fleet API"
EVENTS_PATH = "/health/events/recent"
MAX_PAGES = 10

# Fleet severities, in order; the fixtures say "warning" where the live API says "warn".
SEVERITY_RANK = {"debug": 0, "info": 1, "warn": 2, "warning": 2, "error": 3, "critical": 4}


@dataclass(frozen=True)
class FleetEvent:
    id: str
    timestamp: datetime
    type: str
    severity: str  # normalised: info | warn | error
    message: str
    target: str = ""
    correlation_id: str | None = None
    given_id: bool = False  # the API's own id, which it may hand out again (its counter restarted)

    @property
    def rank(self) -> int:
        return SEVERITY_RANK.get(self.severity, 1)

    @property
    def identity(self) -> str:
        """What tells one event from another: an id the API gave, with its time — an id handed
        out again is another event; a digest of the event (no id given) holds the time already."""
        return f"{self.id}@{self.timestamp.isoformat()}" if self.given_id else self.id


@dataclass(frozen=True)
class EventPage:
    events: list[FleetEvent]
    next_cursor: str | None
    correlation_id: str | None  # of the request, as the API echoed it


# Other loggers' words for the three (pino's, syslog's, .NET's and Serilog's, their short
# forms): an event is judged by what it means.
_SEVERITY_WORDS = {
    **dict.fromkeys(("trace", "verbose", "vrb", "dbg"), "debug"),
    **dict.fromkeys(("notice", "information", "informational", "inf"), "info"),
    **dict.fromkeys(("warning", "wrn"), "warn"),
    **dict.fromkeys(
        ("critical", "err", "eror", "crit", "crt", "fatal", "ftl", "alert", "emerg", "emergency"),
        "error",
    ),
    "panic": "error",
}


def _normal_severity(value: object) -> str:
    """info | warn | error (debug below them). A word no logger uses is taken as error: an
    event of a severity nobody foresaw is told, not dropped as if it were info."""
    text = str(value or "info").strip().lower() or "info"
    text = _SEVERITY_WORDS.get(text, text)
    return text if text in SEVERITY_RANK else "error"


def _synthetic_id(*parts: object) -> str:
    """The live shape has no id: a digest of what identifies the event, stable across polls."""
    return "sha1:" + hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


def to_event(raw: dict[str, Any], shape: LiveEvent | FixtureEvent) -> FleetEvent:
    """A parsed event of either shape as one `FleetEvent`."""
    if isinstance(shape, FixtureEvent):
        correlation = shape.correlation_id
        event_type = shape.type or shape.source or "event"
        message = shape.title or shape.message or ""
        target = shape.target or shape.device_id or ""
        given_id = "" if shape.id is None else str(shape.id)
    else:
        correlation = shape.metadata.correlation_id if shape.metadata else None
        event_type, message, target = shape.type or "event", shape.message, shape.target or ""
        given_id = ""
    ident = given_id or _synthetic_id(
        raw.get("timestamp"), event_type, target, message, correlation
    )
    return FleetEvent(
        id=ident,
        timestamp=shape.timestamp,
        type=event_type,
        severity=_normal_severity(shape.severity),
        message=message,
        target=target,
        correlation_id=correlation or None,
        given_id=bool(given_id),
    )


def parse_event(raw: object, index: int = 0) -> FleetEvent:
    """One event in either shape; ValueError says what is wrong with it."""
    parsed = shapes.parse_event(raw, index)
    if isinstance(parsed, Malformed):
        raise ValueError(str(parsed))
    assert isinstance(raw, dict)
    return to_event(raw, parsed)


def parse_events(body: object) -> tuple[list[FleetEvent], str | None, list[Malformed]]:
    """Events of either shape, the next cursor, and one `Malformed` per event of neither."""
    raws, cursor = shapes.page_events(body)
    events, problems = [], []
    for index, raw in enumerate(raws):
        parsed = shapes.parse_event(raw, index)
        if isinstance(parsed, Malformed):
            problems.append(parsed)
        else:
            assert isinstance(raw, dict)
            events.append(to_event(raw, parsed))
    return events, (str(cursor) if cursor else None), problems


class FleetApi:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        token: SecretStr | None = None,
        max_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ):
        self.client = client
        self.url = url.rstrip("/")
        self._token = token
        self.max_bytes = max_bytes

    def _headers(self, correlation_id: str) -> dict[str, str]:
        headers = {"x-correlation-id": correlation_id, "accept": "application/json"}
        if self._token is not None:
            headers["authorization"] = f"Bearer {self._token.get_secret_value()}"
        return headers

    async def get_json(self, path: str, params: dict[str, Any]) -> tuple[Any, str]:
        sent = str(uuid.uuid4())
        try:
            response = await request_capped(
                self.client,
                "GET",
                f"{self.url}{path}",
                system=f"{NAME} {path}",
                max_bytes=self.max_bytes,
                setting="fleet_api.max_answer_bytes",
                params=params,
                headers=self._headers(sent),
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, f"{NAME} {path}") from None
        echoed = response.headers.get("x-correlation-id") or sent
        if not response.is_success:
            raise api_error(response, path, echoed)
        try:
            return text_only(response.json()), echoed
        except ValueError:
            raise AdapterError(
                f"{NAME} {path} answered non-JSON (correlation id {echoed})", permanent=False
            ) from None

    async def recent_events(self, limit: int = 200) -> tuple[EventPage, list[Malformed]]:
        """The newest events; follows `nextCursor` (fixture shape) for at most MAX_PAGES pages."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 200))}
        events: list[FleetEvent] = []
        problems: list[Malformed] = []
        first_correlation = None
        cursor = None
        for _ in range(MAX_PAGES):
            body, correlation = await self.get_json(EVENTS_PATH, params)
            first_correlation = first_correlation or correlation
            try:
                page, cursor, bad = parse_events(body)
            except ValueError as exc:
                raise AdapterError(
                    f"{NAME} {EVENTS_PATH}: {exc} (correlation id {correlation})", permanent=False
                ) from None
            events += page
            problems += bad
            if not cursor:
                break
            params["cursor"] = cursor
        return EventPage(events, cursor, first_correlation), problems


def api_error(response: httpx.Response, path: str, correlation_id: str) -> AdapterError:
    """`{code, message, hint, correlationId}` → a message an operator can act on."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("code") or f"HTTP {status}"
    text = f"{NAME} {path}: {code}"
    if body.get("message"):
        text += f": {excerpt(str(body['message']), 200)}"
    if body.get("hint"):
        text += f" (hint: {excerpt(str(body['hint']), 200)})"
    text += f" [HTTP {status}, correlation id {body.get('correlationId') or correlation_id}]"
    if status == 429:
        retry = retry_after_seconds(response.headers.get("retry-after"))
        return AdapterError(text, permanent=False, retry_after=retry)
    return AdapterError(text, permanent=400 <= status < 500 and status != 408)
