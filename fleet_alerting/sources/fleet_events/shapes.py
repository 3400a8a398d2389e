"""The documented shapes of the Fleet API's `/health/events/recent`, as pydantic models.

Live API: `{events: [{timestamp, type, target?, message, severity, metadata{correlationId?}}],
count}`. Recorded fixtures: `{items: [{id, source, title, severity, timestamp, correlationId}],
nextCursor}`. Events are parsed one by one: one that fits neither shape is a `Malformed` named by
its id (or type and timestamp), and every other event is still read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from fleet_alerting.sources.records import Malformed, why


def _text(value: object) -> object:
    if not isinstance(value, str) or not value:
        raise ValueError("an ISO 8601 date-time string")
    return value


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, BeforeValidator(_text), AfterValidator(_utc)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Metadata(_Shape):
    correlation_id: StrictStr | None = Field(None, alias="correlationId")


class LiveEvent(_Shape):
    timestamp: Timestamp
    type: StrictStr = "event"
    target: StrictStr | None = None
    message: StrictStr = ""
    severity: StrictStr = "info"
    metadata: Metadata | None = None


class FixtureEvent(_Shape):
    id: StrictStr | StrictInt | None = None
    source: StrictStr | None = None
    type: StrictStr | None = None
    title: StrictStr | None = None
    message: StrictStr | None = None
    severity: StrictStr = "info"
    timestamp: Timestamp
    target: StrictStr | None = None
    device_id: StrictStr | None = Field(None, alias="deviceId")
    correlation_id: StrictStr | None = Field(None, alias="correlationId")


def is_fixture_shape(raw: dict[str, object]) -> bool:
    return "title" in raw or "source" in raw


def identity(raw: object, index: int) -> str:
    """`event <id>`, else `<type> event at <timestamp>`, else its position in the page."""
    if not isinstance(raw, dict):
        return f"event [{index}]"
    ident = raw.get("id")
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
        return f"event {str(ident)[:80]}"
    kind = next((k for k in (raw.get("type"), raw.get("source")) if isinstance(k, str) and k), "")
    label = f"{kind[:60]} event" if kind else "event"
    stamp = raw.get("timestamp")
    if isinstance(stamp, str) and stamp:
        return f"{label} at {stamp[:40]}"
    return f"{label} [{index}]"


def parse_event(raw: object, index: int = 0) -> LiveEvent | FixtureEvent | Malformed:
    if not isinstance(raw, dict):
        return Malformed(identity(raw, index), "an event is a JSON object")
    model = FixtureEvent if is_fixture_shape(raw) else LiveEvent
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        return Malformed(identity(raw, index), why(exc))


def page_events(body: object) -> tuple[list[object], object]:
    """The raw events of a page and its next cursor (ValueError: neither shape)."""
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return body["events"], None
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return body["items"], body.get("nextCursor")
    raise ValueError("expected a JSON object with `events` or `items`")
