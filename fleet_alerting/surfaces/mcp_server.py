"""`fleet-alerting mcp`: Fleet data for MCP-capable assistants (official `mcp` SDK, stdio or HTTP).

Read-only tools always; `trigger_deployment` only when started with the write scope. Over HTTP the
server demands its own bearer token; the Fleet API token stays inside the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import install_log_redaction
from fleet_alerting.sources.fleet_events.client import FleetApi
from fleet_alerting.surfaces.fleet_queries import FleetQueries, LogsQuery
from fleet_alerting.surfaces.http_guard import BODY_TIMEOUT
from fleet_alerting.surfaces.mcp_actions import (
    add_action_tools,
    add_silence_tools,
    list_silence_rows,
)
from fleet_alerting.surfaces.parameters import ParameterError, check_parameters, flow_schema
from fleet_alerting.surfaces.slack_commands import all_devices

# (deployment, parameters, print) → exit code; `deployments.trigger.trigger` in production.
Trigger = Callable[[str, dict[str, Any], Callable[[str], None]], Awaitable[int]]


def build_server(config: Config, *, write: bool, trigger: Trigger | None = None) -> MCPServer:
    if config.fleet_api is None:
        raise ValueError("fleet_api is not configured")
    install_log_redaction()
    fleet_api = config.fleet_api
    token = fleet_api.token.resolve() if fleet_api.token else None
    config_dir = config.source_file.parent if config.source_file else Path.cwd()

    @contextlib.asynccontextmanager
    async def queries() -> AsyncIterator[FleetQueries]:
        async with httpx.AsyncClient(timeout=fleet_api.timeout.total_seconds()) as client:
            yield FleetQueries(
                config, FleetApi(client, fleet_api.url, token, fleet_api.max_answer_bytes)
            )

    server = MCPServer(
        name="fleet-alerting",
        instructions="The Fleet: health, device state, logs, recent events, open incidents.",
    )

    @server.tool(description="Fleet health by module (audio, video, zigbee, camera).")
    async def health_summary() -> dict[str, Any]:
        async with queries() as q:
            return await q.health_summary()

    @server.tool(description="State of every device, or of one device id.")
    async def fleet_state(device: str | None = None) -> dict[str, Any]:
        async with queries() as q:
            state = await q.fleet_state()
        if device is None:
            return state

        return {
            "devices": [d for _m, ds in all_devices(state) for d in ds if d.get("id") == device]
        }

    @server.tool(description="Fleet logs filtered by device, level and/or correlation id.")
    async def logs_query(
        device: str | None = None,
        level: str | None = None,
        correlation_id: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        query = LogsQuery(device, level, correlation_id, max(1, min(limit, 500)))
        async with queries() as q:
            body = await q.logs(query)
            return {"logs": body, "grafana_explore_url": q.logs_url(query)}

    @server.tool(description="Recent Fleet API health events, newest first, with correlation ids.")
    async def recent_events(limit: int = 50) -> list[dict[str, Any]]:
        async with queries() as q:
            return await q.recent_events(max(1, min(limit, 200)))

    @server.tool(description="Incidents fleet-alerting has open now.")
    async def open_incidents() -> list[dict[str, Any]]:
        async with queries() as q:
            return await q.open_incidents()

    @server.tool(description="Silences in force and maintenance windows, with what each mutes.")
    async def list_silences() -> list[dict[str, Any]]:
        return await asyncio.to_thread(list_silence_rows, config)

    if write:
        if trigger is None:
            raise ValueError("the write scope needs a trigger")

        @server.tool(
            description=(
                "Run a Prefect deployment (FLOW/DEPLOYMENT) now. Write scope. Parameters must fit "
                "the flow's parameter schema; paths stay inside the configuration directory."
            )
        )
        async def trigger_deployment(
            deployment: str, parameters: dict[str, Any] | None = None
        ) -> str:
            try:
                schema = await asyncio.to_thread(flow_schema, deployment)
                checked = check_parameters(parameters or {}, schema, config_dir)
            except ParameterError as exc:
                return f"refused, nothing was triggered: {exc}"
            lines: list[str] = []
            code = await trigger(deployment, checked, lines.append)
            return "\n".join(lines) + ("" if code == 0 else f"\n(exit code {code})")

        add_action_tools(server, config)  # acknowledge/silence/unsilence (mcp_actions.py)
        add_silence_tools(server, config)  # silences by matchers (mcp_actions.py)

    return server


MAX_BODY_BYTES = 1024 * 1024  # JSON-RPC messages of these tools are a few KiB


class BearerAuth:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <token>`, and a body of at
    most MAX_BODY_BYTES sent within BODY_TIMEOUT; all are checked before the MCP app sees (or
    reads) anything."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
            await _refuse(
                send, 401, b"missing or wrong bearer token", [(b"www-authenticate", b"Bearer")]
            )
            return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or len(length) > 12):
            await _refuse(send, 400, b"malformed Content-Length")
            return
        if length is not None and int(length) > MAX_BODY_BYTES:
            await _refuse(send, 413, b"request body too large")
            return
        body, size = [], 0  # read (at most the limit, within the deadline) before the app
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    body.append(message.get("body", b""))
                    size += len(body[-1])
                    if size > MAX_BODY_BYTES:
                        await _refuse(send, 413, b"request body too large")
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(send, 408, b"request body too slow")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(body), "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(
    send: Send, status: int, text: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"text/plain"), (b"connection", b"close"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


def http_app(config: Config, server: MCPServer) -> ASGIApp:
    settings = config.operators.mcp
    if settings.token is None:
        raise ValueError("operators.mcp.token is required to serve MCP over HTTP")
    return BearerAuth(server.streamable_http_app(), settings.token.resolve().get_secret_value())
