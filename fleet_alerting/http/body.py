"""Answers of the systems we query (Prometheus, Alertmanager, the Fleet API) are read with a size
cap: the body is streamed and reading stops at the cap, so one huge answer is a warning naming
its source instead of a process that swaps or is killed for memory."""

from __future__ import annotations

from typing import Any

import httpx

from fleet_alerting.config.fields import DEFAULT_MAX_ANSWER_BYTES
from fleet_alerting.http.errors import AdapterError

__all__ = ["DEFAULT_MAX_ANSWER_BYTES", "AnswerTooLarge", "request_capped"]
# headers that describe the body on the wire, not the decoded body kept here
_WIRE_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


class AnswerTooLarge(AdapterError):
    """An answer past the cap; not retried (the next one will be as large)."""


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


async def request_capped(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    system: str,
    max_bytes: int,
    setting: str,
    **kwargs: Any,
) -> httpx.Response:
    """`client.request(...)` whose body (decoded, so a gzip bomb counts at its real size) is
    read up to `max_bytes`; past it AnswerTooLarge names `system` and the `setting` that raises
    the cap. Transport errors are httpx's, as from `client.request`."""
    too_large = AnswerTooLarge(
        f"{system} answered more than {_megabytes(max_bytes)} (the cap, {setting}): "
        "stopped reading; ask for less or raise the cap",
        permanent=True,
    )
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
