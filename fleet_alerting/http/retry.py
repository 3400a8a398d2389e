"""The one retry loop for calls to external systems: the adapters raise typed AdapterErrors,
this decides whether and when to try again (Retry-After honoured, capped; exponential backoff)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fleet_alerting.http.errors import AdapterError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def backoff(attempt: int, *, first: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): 0.5, 1, 2, 4, 8, 8…"""
    return min(first * 2 ** (attempt - 1), cap)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    attempts: int,
    *,
    max_wait: float = 30.0,
    sleep: Sleep = asyncio.sleep,
    on_attempt: Callable[[], None] | None = None,
) -> T:
    """`call()` up to `attempts` times while it fails retryably; the last error is raised.
    `on_attempt` is told of every attempt (the outbox counts them)."""
    for attempt in range(1, attempts + 1):
        if on_attempt is not None:
            on_attempt()
        try:
            return await call()
        except AdapterError as exc:
            if exc.permanent or attempt == attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else backoff(attempt)
            await sleep(min(wait, max_wait))
    raise ValueError("attempts must be at least 1")
