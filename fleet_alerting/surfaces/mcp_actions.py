"""MCP write tools for incidents (offered only with `--write`): acknowledge, silence, unsilence.

An MCP client has no Slack identity, so each call names who acts (`actor`); it is recorded as
`mcp:<actor>` with `via=mcp` in the audit trail.
"""

from __future__ import annotations

from typing import Any

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.surfaces.incident_actions import parse_for, perform

ACTION_TOOLS = {"acknowledge_incident", "silence_incident", "unsilence_incident"}

ACK_HELP = (
    "Acknowledge an incident (by key): reminders stop, the page is held or PagerDuty is "
    "acknowledged. Write scope."
)
SILENCE_HELP = (
    "Silence an incident for a duration (1h, 4h, 24h) or `resolved`: an Alertmanager silence, "
    "or a local mute for our own sources. Write scope."
)


def add_action_tools(server: Any, config: Config) -> None:
    async def act(key: str, action: Any, actor: str, duration: str | None = None) -> str:
        try:
            span = parse_for(duration)
        except ValueError as exc:
            return f"duration: {exc}"
        outcome = await perform(
            config, key, action, actor=f"mcp:{actor}", via="mcp", now=utcnow(), duration=span
        )
        return outcome.message

    @server.tool(description=ACK_HELP)
    async def acknowledge_incident(key: str, actor: str) -> str:
        return await act(key, "ack", actor)

    @server.tool(description=SILENCE_HELP)
    async def silence_incident(key: str, actor: str, duration: str = "resolved") -> str:
        return await act(key, "silence", actor, duration)

    @server.tool(description="End an incident's silence or mute now. Write scope.")
    async def unsilence_incident(key: str, actor: str) -> str:
        return await act(key, "unsilence", actor)
