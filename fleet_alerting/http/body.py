"""Answers of the systems we query (Prometheus, Alertmanager, the Fleet API) are read with a size
cap: the body is streamed and reading stops at the cap, so one huge answer is a warning naming
its source instead of a process that swaps or is killed for memory."""

from __future__ import annotations

from typing import Any

import httpx

from fleet_alerting.config.fields import DEFAULT_MAX_ANSWER_BYTES
from fleet_alerting.http.errors import AdapterError, shown_url

__all__ = ["DEFAULT_MAX_ANSWER_BYTES", "TOO_LARGE", "AnswerTooLarge", "request_capped"]
# headers that describe the body on the wire, not the decoded body kept here
_WIRE_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


TOO_LARGE = "answer too large"  # the cause (AdapterError.cause) of an answer past the cap


class AnswerTooLarge(AdapterError):
    """An answer past the cap; not retried (the next one will be as large). The answering side's
    doing (or the question's), not a configuration error: its cause is TOO_LARGE."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True, cause=TOO_LARGE)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


async def request_capped(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    system: str | None,
    max_bytes: int,
    setting: str,
    too_large_hint: str = "ask for less or raise the cap",
    **kwargs: Any,
) -> httpx.Response:
    """`client.request(...)` whose body (decoded, so a gzip bomb counts at its real size) is
    read up to `max_bytes`; past it AnswerTooLarge names `system` (None: the URL answering), the
    `setting` that raises the cap and what to do (`too_large_hint`). Transport errors are
    httpx's, as from `client.request`."""
    cap = f"{_megabytes(max_bytes)} (the cap, {setting})"
    who = f"{system} answered more than" if system else f"answer from {shown_url(url)} larger than"
    too_large = AnswerTooLarge(f"{who} {cap}: stopped reading; {too_large_hint}")
    async with client.stream(method, url, **kwargs) as response:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes and _identity(response):
            raise too_large
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in _WIRE_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=response.request,
    )


def _identity(response: httpx.Response) -> bool:
    return response.headers.get("content-encoding", "identity") == "identity"
