"""`fleet-alerting mcp`: Fleet data for MCP-capable assistants (official `mcp` SDK, stdio or HTTP).

Read-only tools always; `trigger_deployment` only when started with the write scope. Over HTTP the
server demands its own bearer token; the Fleet API token stays inside the server.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import install_log_redaction
from fleet_alerting.sources.fleet_events.client import FleetApi
from fleet_alerting.surfaces.fleet_queries import FleetQueries, LogsQuery
from fleet_alerting.surfaces.mcp_actions import add_action_tools
from fleet_alerting.surfaces.slack_commands import all_devices

# (deployment, parameters, print) → exit code; `deployments.trigger.trigger` in production.
Trigger = Callable[[str, dict[str, Any], Callable[[str], None]], Awaitable[int]]


def build_server(config: Config, *, write: bool, trigger: Trigger | None = None) -> MCPServer:
    if config.fleet_api is None:
        raise ValueError("fleet_api is not configured")
    install_log_redaction()
    fleet_api = config.fleet_api
    token = fleet_api.token.resolve() if fleet_api.token else None

    @contextlib.asynccontextmanager
    async def queries() -> AsyncIterator[FleetQueries]:
        async with httpx.AsyncClient(timeout=fleet_api.timeout.total_seconds()) as client:
            yield FleetQueries(config, FleetApi(client, fleet_api.url, token))

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
            return q.open_incidents()

    if write:
        if trigger is None:
            raise ValueError("the write scope needs a trigger")

        @server.tool(description="Run a Prefect deployment (FLOW/DEPLOYMENT) now. Write scope.")
        async def trigger_deployment(
            deployment: str, parameters: dict[str, Any] | None = None
        ) -> str:
            lines: list[str] = []
            code = await trigger(deployment, parameters or {}, lines.append)
            return "\n".join(lines) + ("" if code == 0 else f"\n(exit code {code})")

        add_action_tools(server, config)  # acknowledge/silence/unsilence (mcp_actions.py)

    return server


class BearerAuth:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
                return
        await self.app(scope, receive, send)


def http_app(config: Config, server: MCPServer) -> ASGIApp:
    settings = config.operators.mcp
    if settings.token is None:
        raise ValueError("operators.mcp.token is required to serve MCP over HTTP")
    return BearerAuth(server.streamable_http_app(), settings.token.resolve().get_secret_value())
