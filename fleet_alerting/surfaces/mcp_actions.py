"""MCP write tools for incidents (offered only with `--write`): acknowledge, silence, unsilence.

An MCP client has no Slack identity, so each call names who acts (`actor`); it is recorded as
`mcp:<actor>` with `via=mcp` in the audit trail.
"""

from __future__ import annotations

from typing import Any

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.surfaces.incident_actions import parse_for, perform
from fleet_alerting.surfaces.silence_actions import add_silence, expire_silence, query

ACTION_TOOLS = {
    "acknowledge_incident",
    "silence_incident",
    "unsilence_incident",
    "add_silence",
    "expire_silence",
}

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


ADD_SILENCE_HELP = (
    'Silence whatever the Alertmanager matchers select (e.g. ["target=\\"pi-video-03\\""]; '
    "=, !=, =~, !~) for a duration (2h), with a comment; also in Alertmanager when they can "
    "select its alerts. Write scope."
)


def list_silence_rows(config: Config) -> list[dict[str, Any]]:
    return query(config, utcnow())


def add_silence_tools(server: Any, config: Config) -> None:
    @server.tool(name="add_silence", description=ADD_SILENCE_HELP)
    async def add(matchers: list[str], duration: str, comment: str, actor: str) -> str:
        try:
            span = parse_for(duration)
        except ValueError as exc:
            return f"duration: {exc}"
        if span is None:
            return "duration: a silence by matchers needs one, e.g. 2h"
        outcome = await add_silence(
            config,
            matchers,
            span,
            author=f"mcp:{actor}",
            comment=comment,
            via="mcp",
            now=utcnow(),
        )
        return "\n".join([outcome.message, *(f"warning: {w}" for w in outcome.warnings)])

    @server.tool(name="expire_silence", description="End a silence (by id) now. Write scope.")
    async def expire(silence_id: str, actor: str) -> str:
        outcome = await expire_silence(
            config, silence_id, actor=f"mcp:{actor}", via="mcp", now=utcnow()
        )
        return "\n".join([outcome.message, *(f"warning: {w}" for w in outcome.warnings)])
