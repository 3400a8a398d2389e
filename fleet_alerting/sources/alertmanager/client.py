"""Alertmanager API v2: the alerts it holds, its running configuration, its silences.

`GET /api/v2/alerts` takes `active`, `silenced`, `inhibited`, `unprocessed` (booleans, all true by
default) and repeated `filter` matchers (ANDed, Alertmanager syntax; a malformed one is a 400).
Alerts whose `endsAt` has passed are resolved and no longer listed, and a firing alert carries a
*future* `endsAt` (Alertmanager's resolve timeout), so `endsAt` alone never means "resolved".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from fleet_alerting.core.batch import no_gc_pauses
from fleet_alerting.http.body import DEFAULT_MAX_ANSWER_BYTES, request_capped
from fleet_alerting.http.errors import AdapterError, check_response, transport_error
from fleet_alerting.sources.alertmanager.shapes import Alert, parse_alerts
from fleet_alerting.sources.records import Malformed, text_only

NAME = "Alertmanager"


@dataclass(frozen=True)
class Status:
    config_original: str
    version: str
    cluster_status: str
    uptime: datetime | None = None  # when this Alertmanager started, by its clock
    answered_at: datetime | None = None  # the answer's Date header: its clock when it answered
    extra: dict[str, Any] = field(default_factory=dict)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _date_header(response: httpx.Response) -> datetime | None:
    try:
        return _aware(parsedate_to_datetime(response.headers.get("date", "")))
    except (TypeError, ValueError):
        return None


def _aware(moment: datetime) -> datetime | None:
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class AlertList:
    """One answer of `/api/v2/alerts`: the alerts of the documented shape, and the others."""

    alerts: list[Alert]
    malformed: list[Malformed] = field(default_factory=list)
    answered_at: datetime | None = None  # its Date header: Alertmanager's clock


class Alertmanager:
    def __init__(
        self, client: httpx.AsyncClient, url: str, max_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    ):
        self.client = client
        self.url = url.rstrip("/")
        self.max_bytes = max_bytes

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await request_capped(
            self.client,
            method,
            f"{self.url}{path}",
            system=f"{NAME} {path}",
            max_bytes=self.max_bytes,
            setting="alertmanager.max_answer_bytes",
            **kwargs,
        )

    async def _get(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        return _json(await self._response(path, params), path)

    async def _response(
        self, path: str, params: list[tuple[str, str]] | None = None
    ) -> httpx.Response:
        try:
            response = await self._request("GET", path, params=params)
        except httpx.HTTPError as exc:
            raise transport_error(exc, NAME) from None
        check_response(response, f"{NAME} {path}")
        return response

    async def alerts(
        self,
        *,
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        unprocessed: bool = True,
        filter: Sequence[str] = (),
        receiver: str | None = None,
    ) -> list[Alert]:
        params = _params(active, silenced, inhibited, unprocessed, filter, receiver)
        return (await self.alert_list(params)).alerts

    async def alert_list(self, params: list[tuple[str, str]]) -> AlertList:
        """The answer alert by alert: one malformed alert is a `Malformed`, not a failure."""
        response = await self._response("/api/v2/alerts", params)
        with no_gc_pauses():  # thousands of alerts: see core.batch
            body = _json(response, "/api/v2/alerts")
            if not isinstance(body, list):
                raise AdapterError(f"{NAME} /api/v2/alerts: expected a JSON list", permanent=False)
            return AlertList(*parse_alerts(body), answered_at=_date_header(response))

    async def escalation_alerts(self, matchers: Sequence[str]) -> AlertList:
        """Every alert the matchers select, silenced and inhibited ones included (and marked)."""
        return await self.alert_list(_params(True, True, True, True, matchers, None))

    async def create_silence(
        self,
        matchers: Sequence[dict[str, object]],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """`POST /api/v2/silences` → the new silence's id."""
        body = {
            "matchers": list(matchers),
            "startsAt": starts_at.isoformat(),
            "endsAt": ends_at.isoformat(),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._send("POST", "/api/v2/silences", body)
        if not isinstance(answer, dict) or not answer.get("silenceID"):
            raise AdapterError(f"{NAME} /api/v2/silences: no silenceID in answer", permanent=False)
        return str(answer["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        """`DELETE /api/v2/silence/{id}`: the silence ends now (already expired: a 500 that
        Alertmanager 0.25 answers with "silence ... already expired" is taken as done)."""
        try:
            await self._send("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")
        except AdapterError as exc:
            if "already expired" not in str(exc):
                raise

    async def silence(self, silence_id: str) -> dict[str, Any]:
        return await self._get(f"/api/v2/silence/{quote(silence_id, safe='')}")

    async def _send(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise transport_error(exc, NAME) from None
        check_response(response, f"{NAME} {method} {path}")  # the detail names the cause
        try:
            return response.json() if response.content else None
        except ValueError:
            return None

    async def status(self) -> Status:
        response = await self._response("/api/v2/status")
        body = _json(response, "/api/v2/status")
        try:
            return Status(
                config_original=body["config"]["original"],
                version=(body.get("versionInfo") or {}).get("version", ""),
                cluster_status=(body.get("cluster") or {}).get("status", ""),
                uptime=_time(body.get("uptime")),
                answered_at=_date_header(response),
            )
        except (KeyError, TypeError):
            raise AdapterError(
                f"{NAME} /api/v2/status: no config.original in the answer", permanent=False
            ) from None


def _params(
    active: bool,
    silenced: bool,
    inhibited: bool,
    unprocessed: bool,
    matchers: Sequence[str],
    receiver: str | None,
) -> list[tuple[str, str]]:
    params = [
        ("active", _flag(active)),
        ("silenced", _flag(silenced)),
        ("inhibited", _flag(inhibited)),
        ("unprocessed", _flag(unprocessed)),
    ] + [("filter", matcher) for matcher in matchers]
    if receiver:
        params.append(("receiver", receiver))
    return params


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _json(response: httpx.Response, path: str) -> Any:
    try:
        return _decoded(response)
    except ValueError:
        raise AdapterError(f"{NAME} {path} answered non-JSON", permanent=False) from None


def _decoded(response: httpx.Response) -> Any:
    """The JSON of an answer: `orjson` (~2x the standard module on 10,000 alerts), or — for what
    it refuses and the standard module reads (NaN, integers past 64 bits, lone surrogates) —
    the standard module, so every answer reads as it always did."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return text_only(response.json())
