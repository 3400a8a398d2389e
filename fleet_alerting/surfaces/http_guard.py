"""What every HTTP endpoint of the Slack app and the MCP server does before it believes a request.

A request is refused as early as it can be, and never reads more than it may keep: its headers
within HEADER_TIMEOUT of the connection (or of the previous answer on a kept-alive one; a
uvicorn protocol that cuts the connection), its declared size before a byte of body, the body
chunk by chunk up to its limit and within BODY_TIMEOUT, the signature before the body is parsed.
What is refused gets 400, 401, 408 or 413 with one line of text, never a traceback.

Signed requests are remembered in the store (store/replay.py) for their window, so a replay is
refused by every app process sharing the store, and after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleet_alerting.config import Config
from fleet_alerting.store import replay
from fleet_alerting.store.database import Store

log = logging.getLogger("fleet_alerting.surfaces.http_guard")
HEADER_TIMEOUT = 10.0  # seconds from connecting (or from the last answer) to a complete head
BODY_TIMEOUT = 10.0  # seconds to send the whole body once the head is in
SLACK_WINDOW = timedelta(minutes=5)  # Slack's: older (or newer) timestamps are refused
SLACK_KEEP = 2 * SLACK_WINDOW  # a signature stays valid until its timestamp (≤ now + 5m) + 5m
REPLAY_WAIT = 2.0  # seconds for the store's write lock; Slack gives up on an answer after 3
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII digits only: "²²²" passes str.isdigit
_SLACK_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Refused(Exception):
    """A request refused before it was believed; `text` is safe to log and to answer."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text

    def response(self) -> PlainTextResponse:
        """The answer; the connection is closed after it (a body may be left half sent)."""
        return PlainTextResponse(self.text, self.status, headers={"connection": "close"})


def check_length(length: str | None, limit: int) -> None:
    """400 for a Content-Length that is not a number, 413 for one over `limit` (absent: a
    chunked body, counted while it is read)."""
    if length is None:
        return
    if not _DIGITS.fullmatch(length):
        raise Refused(400, "malformed Content-Length")
    if int(length) > limit:
        raise Refused(413, "request body too large")


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    """The body, read no further than `limit` bytes and for no longer than `timeout` seconds."""
    check_length(request.headers.get("content-length"), limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "request body too large")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, "request body too slow") from None
    except ClientDisconnect:
        raise Refused(400, "request body cut off") from None
    return b"".join(chunks)


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]):
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackSigning:
    """Slack's request signature (`X-Slack-Signature: v0=…` over `v0:{timestamp}:{body}`), checked
    by slack-sdk's SignatureVerifier after the headers are known to be well formed (it raises on
    some malformed ones) and the body to be UTF-8 (it decodes it); then the signature must be
    new (to the store of `config`, or to this process for a request that changes nothing)."""

    def __init__(self, config: Config, clock: Callable[[], float]):
        settings = config.operators.slack_app
        assert settings is not None
        secret = settings.signing_secret.resolve().get_secret_value()
        self.verifier = SignatureVerifier(secret, clock=_Clock(clock))
        self.config = config
        self.clock = clock
        self._seen: dict[str, float] = {}

    def check_headers(self, request: Request) -> tuple[str, str]:
        """What can be refused before the body is read: missing, malformed or stale headers."""
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if not timestamp or not signature:
            raise Refused(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature")
        if not _DIGITS.fullmatch(timestamp) or not _SLACK_SIGNATURE.fullmatch(signature):
            raise Refused(401, "malformed X-Slack-Request-Timestamp or X-Slack-Signature")
        if abs(self.clock() - int(timestamp)) > SLACK_WINDOW.total_seconds():
            raise Refused(401, "stale request: timestamp outside the 5-minute window")
        return timestamp, signature

    async def read(self, request: Request, limit: int) -> tuple[str, str]:
        """The body (decoded) and signature of a request Slack signed: headers checked first,
        the body read to `limit`, then the signature. Not yet checked for a replay."""
        timestamp, signature = self.check_headers(request)
        body = await read_body(request, limit)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise Refused(400, "request body is not UTF-8") from None
        if not self.verifier.is_valid(body, timestamp, signature):
            raise Refused(401, "bad signature or stale timestamp")
        return text, signature

    async def refuse_replay(self, signature: str) -> None:
        """Refused if any process sharing the store has seen `signature` (see first_sight)."""
        now = now_utc(self.clock)
        if not await first_sight(self.config, f"slack:{signature}", now, SLACK_KEEP):
            raise Refused(401, "replayed request")

    def refuse_replay_here(self, signature: str) -> None:
        """Refused if this process has seen `signature`: for requests that change nothing, so
        they never wait for the store's write lock."""
        now = self.clock()
        for old in [s for s, at in self._seen.items() if now - at > SLACK_KEEP.total_seconds()]:
            del self._seen[old]
        if signature in self._seen:
            raise Refused(401, "replayed request")
        self._seen[signature] = now


def now_utc(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


async def first_sight(config: Config, key: str, now: datetime, keep: timedelta) -> bool:
    """False if a process sharing the store has seen `key` within `keep`; else True, and the
    store remembers it. Refused (503: the sender may retry) if the store cannot tell: broken, or
    its write lock held past REPLAY_WAIT."""

    def remember() -> bool:
        with Store(config.state, busy_timeout=REPLAY_WAIT) as store:
            return replay.first_sight(store, key, now, keep)

    try:
        return await asyncio.to_thread(remember)
    except Exception as exc:
        log.warning("cannot check a request is no replay: %s", exc)
        raise Refused(503, f"the incident store failed ({type(exc).__name__})") from None


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, cutting a connection whose request head is not complete within
    HEADER_TIMEOUT of the connection or of the previous answer (uvicorn itself waits forever
    for a head sent a byte at a time)."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()

    def _expired(self) -> None:
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and not self.transport.is_closing():
            log.warning("cut a connection whose request head took over %ss", HEADER_TIMEOUT)
            self.transport.close()


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Run `app` under uvicorn with the head deadline (h11 refuses a head still incomplete past
    16 KiB)."""
    uvicorn.run(app, host=host, port=port, log_level="warning", http=HeaderDeadline)
