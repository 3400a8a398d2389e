"""The documented shape of Alertmanager's `GET /api/v2/alerts` (gettableAlert), as pydantic models.

Each alert: `labels`, `annotations` (string maps), `fingerprint`, `startsAt`, `endsAt`,
`updatedAt` (RFC 3339 date-times, always with a zone), `status: {state: active | suppressed |
unprocessed, silencedBy, inhibitedBy}`, `receivers: [{name}]`, `generatorURL`. The list is parsed
alert by alert: one that does not fit is a `Malformed` named by its fingerprint (or alertname),
and the others are still escalated.

An alert plainly of this shape (JSON types as documented, RFC 3339 times) is read by hand, which
costs a fraction of validating it; anything else is validated by the pydantic models, which
decide — and name what is wrong. The hand reader accepts nothing the models would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from fleet_alerting.sources.records import Malformed, why

ZERO_TIME = "0001-01-01"  # Go's zero time: "not set"
FINGERPRINT = "fingerprint "  # how a malformed alert with a readable fingerprint is named


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AlertStatus(_Shape):
    state: Literal["active", "suppressed", "unprocessed"]
    silenced_by: list[StrictStr] = Field(default_factory=list, alias="silencedBy")
    inhibited_by: list[StrictStr] = Field(default_factory=list, alias="inhibitedBy")


class Receiver(_Shape):
    name: StrictStr


class GettableAlert(_Shape):
    fingerprint: StrictStr = Field(min_length=1)
    labels: dict[StrictStr, StrictStr]
    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(None, alias="endsAt")
    updated_at: AwareDatetime | None = Field(None, alias="updatedAt")
    status: AlertStatus
    receivers: list[Receiver] = Field(default_factory=list)
    generator_url: StrictStr | None = Field(None, alias="generatorURL")


class _Labels(_Shape):
    labels: dict[StrictStr, StrictStr]


def _unset_zero_times(raw: dict[str, object]) -> dict[str, object]:
    """Go's zero time stands for "not set" in endsAt/updatedAt."""
    return {k: (None if k in ("endsAt", "updatedAt") and _zero(v) else v) for k, v in raw.items()}


def _zero(value: object) -> bool:
    return isinstance(value, str) and (not value or value.startswith(ZERO_TIME))


def identity(raw: object, index: int) -> tuple[str, dict[str, str]]:
    """`fingerprint abc…` if it has one, else `alertname X`, else its position in the list."""
    if isinstance(raw, dict):
        try:
            labels = dict(_Labels.model_validate(raw).labels)
        except ValidationError:
            labels = {}  # unreadable labels do not hide a readable fingerprint
        fingerprint = raw.get("fingerprint")
        if isinstance(fingerprint, str) and fingerprint:
            return f"{FINGERPRINT}{fingerprint}", labels
        if labels.get("alertname"):
            return f"alertname {labels['alertname']} (no fingerprint)", labels
    return f"alert [{index}]", {}


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    state: str  # active | suppressed | unprocessed
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    receivers: tuple[str, ...] = ()
    generator_url: str | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.labels.get("alertname", self.fingerprint)

    @property
    def firing(self) -> bool:
        """Not suppressed, as Alertmanager's own state says. Its endsAt is not compared with our
        clock: Alertmanager lists no alert whose endsAt passed by its clock, and ours may run
        ahead of it."""
        return self.state != "suppressed"


def to_alert(shape: GettableAlert) -> Alert:
    return Alert(
        fingerprint=shape.fingerprint,
        labels=dict(shape.labels),
        annotations=dict(shape.annotations),
        starts_at=shape.starts_at,
        ends_at=shape.ends_at,
        state=shape.status.state,
        silenced_by=tuple(shape.status.silenced_by),
        inhibited_by=tuple(shape.status.inhibited_by),
        receivers=tuple(r.name for r in shape.receivers),
        generator_url=shape.generator_url or None,
        updated_at=shape.updated_at,
    )


def parse_alerts(body: list[object]) -> tuple[list[Alert], list[Malformed]]:
    alerts: list[Alert] = []
    malformed: list[Malformed] = []
    times: dict[str, datetime] = {}  # a storm's alerts share their times (one rule evaluation)
    for index, raw in enumerate(body):
        try:
            alerts.append(read_documented(raw, times))
        except (_Odd, LookupError, TypeError, ValueError):
            found = _validated(raw, index)
            (alerts if isinstance(found, Alert) else malformed).append(found)  # type: ignore[arg-type]
    return alerts, malformed


def _validated(raw: object, index: int) -> Alert | Malformed:
    if not isinstance(raw, dict):
        return Malformed(f"alert [{index}]", "an alert is a JSON object")
    try:
        return to_alert(GettableAlert.model_validate(_unset_zero_times(raw)))
    except ValidationError as exc:
        name, labels = identity(raw, index)
        return Malformed(name, why(exc), labels)


class _Odd(Exception):
    """Not plainly of the documented shape: the models decide."""


_STATES = frozenset(("active", "suppressed", "unprocessed"))
# the models also accept their fields' own names (populate_by_name): such an alert is theirs
_BY_NAME = frozenset(("starts_at", "ends_at", "updated_at", "generator_url"))
_STATUS_BY_NAME = frozenset(("silenced_by", "inhibited_by"))
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)", re.ASCII)


def read_documented(raw: Any, times: dict[str, datetime] | None = None) -> Alert:
    """One alert of the documented shape, read without the models; `_Odd` (or a lookup or type
    error) for anything else. `times`: the times read so far, by their text."""
    if type(raw) is not dict or not _BY_NAME.isdisjoint(raw):
        raise _Odd
    status = raw["status"]
    if type(status) is not dict or not _STATUS_BY_NAME.isdisjoint(status):
        raise _Odd
    fingerprint, state = raw["fingerprint"], status["state"]
    if type(fingerprint) is not str or not fingerprint or type(state) is not str:
        raise _Odd
    if state not in _STATES:
        raise _Odd
    receivers = raw.get("receivers", [])
    if type(receivers) is not list:
        raise _Odd
    generator_url = raw.get("generatorURL")
    if generator_url is not None and type(generator_url) is not str:
        raise _Odd
    times = {} if times is None else times
    alert = object.__new__(Alert)  # as Alert(...) would, without a frozen __init__'s setattr
    alert.__dict__.update(
        fingerprint=fingerprint,
        labels=_strings(raw["labels"]),
        annotations=_strings(raw.get("annotations", {})),
        starts_at=_time(raw["startsAt"], times),
        ends_at=_unless_zero(raw.get("endsAt"), times),
        state=state,
        silenced_by=_texts(status.get("silencedBy", [])),
        inhibited_by=_texts(status.get("inhibitedBy", [])),
        receivers=tuple(_text(receiver["name"]) for receiver in receivers),
        generator_url=generator_url or None,
        updated_at=_unless_zero(raw.get("updatedAt"), times),
    )
    return alert


def _strings(value: Any) -> dict[str, str]:
    if type(value) is not dict:
        raise _Odd
    for text in value.values():
        if type(text) is not str:
            raise _Odd
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise _Odd
    return tuple(_text(text) for text in value)


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _Odd
    return value


def _time(value: Any, times: dict[str, datetime]) -> datetime:
    if type(value) is not str:
        raise _Odd
    moment = times.get(value)
    if moment is None:
        if not _RFC3339.fullmatch(value):
            raise _Odd
        moment = times[value] = datetime.fromisoformat(value)  # impossible date: ValueError
    return moment


def _unless_zero(value: Any, times: dict[str, datetime]) -> datetime | None:
    return None if value is None or _zero(value) else _time(value, times)
