"""One place decides what is worth retrying (timeouts, 5xx, 429) and what is permanent (other 4xx).

Messages never carry URLs or bodies verbatim: webhook URLs and routing keys are secrets, so every
message passes through `redact()`.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from fleet_alerting.config.secrets import redact


class AdapterError(Exception):
    """An external system failed. `permanent` errors will not go away by retrying. `maybe_sent`:
    the request may have been acted on all the same (the answer timed out, a 5xx)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ):
        super().__init__(redact(message))
        self.permanent = permanent
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


MAX_RETRY_AFTER = 3600.0  # seconds: no Retry-After rests a destination longer than an hour


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date, at most MAX_RETRY_AFTER; None (the normal
    backoff) for anything else — other digits than ASCII's, a date without a zone, garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return MAX_RETRY_AFTER if len(value) > 9 else min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
        delay = (when - (now or datetime.now(UTC))).total_seconds()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER)


def excerpt(text: str, limit: int) -> str:
    """At most `limit` characters of `text` for a message, secrets masked *before* the cut (cut
    first, a token spanning the cut would leak its head past `redact`)."""
    shown = redact(text[: limit + 4096]).strip()
    return shown if len(shown) <= limit else shown[:limit] + "…"


def check_response(response: httpx.Response, system: str) -> None:
    """Raise AdapterError for a non-2xx answer from `system` (a name such as 'Slack webhook')."""
    if response.is_success:
        return
    status = response.status_code
    detail = excerpt(response.text, 200).replace("\n", " ")
    message = f"{system} answered HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        raise AdapterError(message, permanent=False, retry_after=retry_after)
    raise AdapterError(
        message, permanent=400 <= status < 500 and status != 408, maybe_sent=status >= 500
    )


def transport_error(exc: httpx.HTTPError, system: str) -> AdapterError:
    """A timeout or connection failure: retryable. Only the URL's scheme, host and port are
    named (its path or query may hold a secret: a Slack webhook's, an OnCall integration's)."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    unsent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # nothing went out
    return AdapterError(
        f"{system} {kind}{_at(exc)} ({type(exc).__name__})",
        permanent=False,
        maybe_sent=not isinstance(exc, unsent),
    )


def _at(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # raised without a request
        return ""
    return f" at {url.scheme}://{url.netloc.decode('ascii')}"  # no userinfo; [::1] bracketed


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    system: str,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[httpx.Response, Any]:
    """POST a JSON body, expect a 2xx JSON answer; every failure as a typed AdapterError.
    `timeout` (seconds) overrides the client's for this request."""
    per_request: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
    try:
        response = await client.post(url, json=body, headers=headers, timeout=per_request)
    except httpx.HTTPError as exc:
        raise transport_error(exc, system) from None
    check_response(response, system)
    try:
        return response, response.json()
    except ValueError:
        raise AdapterError(f"{system} answered non-JSON", permanent=False) from None


def shown_url(url: str) -> str:
    """A URL for messages and reports: no user or password, no query string."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparseable URL)"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else redact(url.split("?")[0])
