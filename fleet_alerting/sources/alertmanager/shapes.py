"""The documented shape of Alertmanager's `GET /api/v2/alerts` (gettableAlert), as pydantic models.

Each alert: `labels`, `annotations` (string maps), `fingerprint`, `startsAt`, `endsAt`,
`updatedAt` (RFC 3339 date-times, always with a zone), `status: {state: active | suppressed |
unprocessed, silencedBy, inhibitedBy}`, `receivers: [{name}]`, `generatorURL`. The list is parsed
alert by alert: one that does not fit is a `Malformed` named by its fingerprint (or alertname),
and the others are still escalated.
"""

from __future__ import annotations

from typing import Literal

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


def parse_alerts(body: list[object]) -> tuple[list[GettableAlert], list[Malformed]]:
    alerts, malformed = [], []
    for index, raw in enumerate(body):
        try:
            if not isinstance(raw, dict):
                raise TypeError
            alerts.append(GettableAlert.model_validate(_unset_zero_times(raw)))
        except TypeError:
            malformed.append(Malformed(f"alert [{index}]", "an alert is a JSON object"))
        except ValidationError as exc:
            name, labels = identity(raw, index)
            malformed.append(Malformed(name, why(exc), labels))
    return alerts, malformed
