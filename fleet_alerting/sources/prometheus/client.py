"""Prometheus HTTP API: instant queries (`GET /api/v1/query`), auth by secret reference.

Answers are `{status, data: {resultType, result}, warnings?, errorType?, error?}`. A broken
expression is `bad_data` with HTTP 400 (422 `execution` for one that cannot run): permanent, the
watch's configuration must change. 5xx (503 `timeout`), 429 and transport failures are retryable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.config.secrets import SecretError, register_basic_auth
from fleet_alerting.core.batch import no_gc_pauses
from fleet_alerting.http.body import DEFAULT_MAX_ANSWER_BYTES, AnswerTooLarge, request_capped
from fleet_alerting.http.clients import shared_client
from fleet_alerting.http.errors import (
    NOT_ANSWERING,
    AdapterError,
    excerpt,
    retry_after_seconds,
    transport_error,
)
from fleet_alerting.http.retry import with_retries
from fleet_alerting.sources.prometheus.judge import (
    PRESENCE_DISAGREES,
    Series,
    WatchOutcome,
    disagree,
    presence_query,
)
from fleet_alerting.sources.prometheus.shapes import Data, Envelope, parse_vector
from fleet_alerting.sources.records import Malformed, text_only, why

SYSTEM = "Prometheus"
UNREADABLE = "unreadable answer"  # the cause of an answer not in the query API's shape


class PrometheusError(AdapterError):
    """An error answer of the Prometheus API; `error_type` is its errorType (bad_data, ...)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        error_type: str | None = None,
        retry_after: float | None = None,
        cause: str = "",
    ):
        super().__init__(message, permanent=permanent, retry_after=retry_after, cause=cause)
        self.error_type = error_type


@dataclass(frozen=True)
class QueryResult:
    result_type: str
    samples: list[Series]
    warnings: list[str] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)  # samples not of the documented shape


def auth_for(config: PrometheusConfig) -> httpx.Auth | None:
    """Resolve the configured credentials (SecretError if the reference cannot be read)."""
    if config.bearer_token is not None:
        return _Bearer(config.bearer_token.resolve().get_secret_value())
    if config.basic_auth is not None:
        password = config.basic_auth.password.resolve().get_secret_value()
        register_basic_auth(config.basic_auth.username, password)
        return httpx.BasicAuth(config.basic_auth.username, password)
    return None


class _Bearer(httpx.Auth):
    def __init__(self, token: str):
        self._token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "_Bearer(***)"


class PrometheusClient:
    """Instant queries against one Prometheus. `base_url` is the server root (no /api/v1)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        timeout: float,
        attempts: int = 2,
        max_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        auth: httpx.Auth | None = None,  # per request: the client may be shared
    ):
        self.client = client
        self.auth = auth
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.max_bytes = max_bytes

    async def query(self, expr: str) -> QueryResult:
        """One instant query; retryable failures are tried again (`attempts` in all)."""
        return await with_retries(lambda: self._query_once(expr), self.attempts, max_wait=5.0)

    async def _query_once(self, expr: str) -> QueryResult:
        # Prometheus bounds the evaluation by `timeout`; the client waits a little longer.
        params = {"query": expr, "timeout": prometheus_duration(self.timeout)}
        try:
            response = await request_capped(
                self.client,
                "GET",
                f"{self.base_url}/api/v1/query",
                system=None,  # named by its URL: a watch error says which Prometheus
                max_bytes=self.max_bytes,
                setting="prometheus.max_answer_bytes",
                too_large_hint="the query selects too much: narrow it (more selective labels, an "
                "aggregation) or raise the cap",
                params=params,
                timeout=self.timeout + min(self.timeout, 1.0),
                auth=self.auth or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, SYSTEM) from None
        return parse_response(response)


def prometheus_duration(seconds: float) -> str:
    """Prometheus' duration grammar has integers only: `10s`, `1500ms` (never `1.5s`)."""
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


async def query_watches(
    config: PrometheusConfig, watches: Sequence[WatchConfig]
) -> list[WatchOutcome]:
    """Every watch's expression and presence query, concurrently; one outcome per watch, a
    failing watch carries its error and never stops the others."""
    try:
        auth = auth_for(config)
    except SecretError as exc:
        error, cause = f"credentials: {exc}", "credentials unreadable"
        return [WatchOutcome(w, error=error, permanent=True, cause=cause) for w in watches]
    timeout = config.timeout.total_seconds()
    http = shared_client(config.url or "", timeout + 1)
    client = PrometheusClient(
        http, config.url or "", timeout, max_bytes=config.max_answer_bytes, auth=auth
    )
    return list(await asyncio.gather(*(_one_watch(client, w) for w in watches)))


async def _one_watch(client: PrometheusClient, watch: WatchConfig) -> WatchOutcome:
    presence = presence_query(watch)

    async def run(what: str, expr: str) -> QueryResult:
        try:
            return await client.query(expr)
        except AnswerTooLarge as exc:  # this query's answer: say which
            raise PrometheusError(
                f"{what} {expr!r}: {exc}", permanent=True, cause=exc.cause
            ) from None
        except PrometheusError as exc:
            if exc.error_type not in ("bad_data", "execution") or _other_parameter(str(exc)):
                raise  # not about this expression (auth, outage): one message for all watches
            raise PrometheusError(
                f"{what} {expr!r}: {exc}",
                permanent=exc.permanent,
                error_type=exc.error_type,
                cause=exc.cause,
            ) from None

    try:
        firing, present = await asyncio.gather(
            run("expr", watch.expr), run("metric", presence) if presence else _nothing()
        )
    except AdapterError as exc:
        return WatchOutcome(watch, error=str(exc), permanent=exc.permanent, cause=exc.cause)
    warnings = [*firing.warnings, *(present.warnings if present else [])]
    malformed = [("expr", m) for m in firing.malformed]
    malformed += [("metric", m) for m in (present.malformed if present else [])]
    if present is not None and disagree(firing.samples, present.samples, malformed):
        malformed.append(("metric", Malformed("result", PRESENCE_DISAGREES)))
    return WatchOutcome(
        watch,
        firing=firing.samples,
        present=None if present is None else present.samples,
        warnings=warnings,
        malformed=malformed,
    )


def _other_parameter(error: str) -> bool:
    """Prometheus refused a parameter other than the expression (`invalid parameter "timeout"`)."""
    return 'invalid parameter "' in error and 'invalid parameter "query"' not in error


async def _nothing() -> None:
    return None


def parse_response(response: httpx.Response) -> QueryResult:
    """The answer, typed: the envelope whole, the samples one by one (a bad sample is a
    `Malformed` in the result, the others still count)."""
    with no_gc_pauses():  # an answer of thousands of samples: see core.batch
        return _parse_response(response)


def _parse_response(response: httpx.Response) -> QueryResult:
    body = _json(response)
    status = response.status_code
    try:
        envelope = Envelope.model_validate(body)
    except ValidationError as exc:
        envelope = None
        shape_error = why(exc)
    if not response.is_success or envelope is None or envelope.status != "success":
        if envelope is None and response.is_success:
            raise PrometheusError(
                f"{SYSTEM} answered HTTP {status} without the query API's envelope: {shape_error}",
                permanent=False,
                cause=UNREADABLE,
            )
        error_type = envelope.errorType if envelope else None
        error = (
            excerpt(str((envelope.error if envelope else None) or response.text), 200)
            or "no detail"
        )
        message = f"{SYSTEM} answered HTTP {status}" + (f" {error_type}" if error_type else "")
        message += f": {error or 'no detail'}"
        if status in (401, 403):
            message += " (check prometheus.bearer_token / basic_auth)"
        retryable = status >= 500 or status in (408, 429) or error_type in ("timeout", "canceled")
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        raise PrometheusError(
            message,
            permanent=not retryable,
            error_type=error_type,
            retry_after=retry_after,
            cause=NOT_ANSWERING if retryable else f"HTTP {status}",
        )
    try:
        data = Data.model_validate(envelope.data)
    except ValidationError as exc:
        raise PrometheusError(
            f"{SYSTEM} answer lacks data.resultType: {why(exc)}", permanent=False, cause=UNREADABLE
        ) from None
    samples, malformed = _samples(data)
    return QueryResult(data.resultType, samples, list(envelope.warnings), malformed)


def _json(response: httpx.Response) -> Any:
    try:
        body = orjson.loads(response.content)  # thousands of samples: 2x the standard json
    except orjson.JSONDecodeError:
        try:
            body = text_only(response.json())  # a byte-order mark, another charset: httpx's
        except ValueError:
            body = None
    if isinstance(body, dict):
        return body
    if not response.is_success:
        return {}  # a proxy's error page or a plain-text 401: the status decides
    raise PrometheusError(
        f"{SYSTEM} answered HTTP {response.status_code} with something other than API JSON "
        "(is the URL the Prometheus server root?)",
        permanent=True,
        cause=UNREADABLE,
    )


def _samples(data: Data) -> tuple[list[Series], list[Malformed]]:
    if data.resultType == "vector":
        samples, malformed = parse_vector(data.result)
        return [Series(metric, value) for metric, value in samples], malformed
    # a scalar has no labels: it cannot say which series fail, nor that the others recovered
    raise PrometheusError(
        f"the expression returns a {data.resultType}; a watch needs an instant vector (wrap a "
        "scalar expression in vector())",
        permanent=True,
        error_type="bad_data",
        cause="not an instant vector",
    )
