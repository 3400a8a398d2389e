"""`/fleet silence add MATCHERS… for 2h [-- comment]`, `/fleet silence query`, `/fleet silence
expire ID`: silences by matchers from Slack (surfaces/silence_actions.py does the work). Adding
and expiring are limited to the allow-listed users and channels, as `/fleet run` is; the actor
is the Slack user."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.mrkdwn import escape
from fleet_alerting.surfaces.incident_actions import parse_for
from fleet_alerting.surfaces.silence_actions import add_silence, expire_silence, query
from fleet_alerting.surfaces.slack_commands import SlashCommand, reply

log = logging.getLogger(__name__)
USAGE = (
    'Usage: `/fleet silence add target="pi-video-03" for 2h -- re-imaging` · '
    "`/fleet silence query` · `/fleet silence expire ID`"
)


async def silence(cmd: SlashCommand, config: Config) -> dict[str, Any]:
    verb = cmd.args[0].lower() if cmd.args else "query"
    if verb == "query":
        return await asyncio.to_thread(_query, config)  # reads every open incident: off the loop
    if verb not in ("add", "expire"):
        return reply("fleet silence", [USAGE])
    settings = config.operators.slack_app
    assert settings is not None
    if (
        cmd.user_id not in settings.allowed_users
        and cmd.channel_id not in settings.allowed_channels
    ):
        log.warning("refused /fleet silence %s from user %s", verb, cmd.user_id)
        return reply(
            "Not allowed",
            ["`/fleet silence` changes are limited to the users and channels in config."],
        )
    actor = cmd.actor
    if verb == "expire":
        if len(cmd.args) != 2:
            return reply("fleet silence", [USAGE])
        outcome = await expire_silence(config, cmd.args[1], actor=actor, via="slack", now=utcnow())
    else:
        parsed = _add_words(cmd.args[1:])
        if isinstance(parsed, str):
            return reply("fleet silence", [escape(parsed), USAGE])
        matchers, duration, comment = parsed
        outcome = await add_silence(
            config, matchers, duration, author=actor, comment=comment, via="slack", now=utcnow()
        )
    lines = [escape(outcome.message), *(f"warning: {escape(w)}" for w in outcome.warnings)]
    return reply("Silence" if outcome.ok or outcome.warnings else "Silence refused", lines)


def _add_words(words: tuple[str, ...]) -> tuple[list[str], timedelta, str] | str:
    """`MATCHERS… for DURATION [-- COMMENT…]` → (matchers, duration, comment), or why not."""
    before, _, comment = " ".join(words).partition(" -- ")
    parts = before.split()
    if "for" not in parts:
        return "say for how long: `for 2h`"
    at = parts.index("for")
    if at + 1 >= len(parts):
        return "say for how long: `for 2h`"
    try:
        duration = parse_for(parts[at + 1])
    except ValueError as exc:
        return f"for: {exc}"
    if duration is None:
        return "a silence by matchers needs a duration, e.g. `for 2h`"
    return parts[:at] + parts[at + 2 :], duration, comment.strip()


def _query(config: Config) -> dict[str, Any]:
    rows = query(config, utcnow())
    lines = []
    for row in rows:
        mutes = ", ".join(f"`{escape(k)}`" for k in row["mutes_now"]) or "nothing now"
        matchers = escape(" ".join(row["matchers"]))
        if row["kind"] == "silence":
            until = row["ends_at"][:16].replace("T", " ")
            note = f" — {escape(row['comment'])}" if row["comment"] else ""
            lines.append(
                f":no_bell: `{row['id'][:8]}` {row['state']} until {until} UTC by "
                f"{escape(row['author'])}: `{matchers}`{note} · mutes {mutes}"
            )
        else:
            lines.append(
                f":calendar: window `{escape(row['id'])}` ({row['state']}): `{matchers}` · "
                f"mutes {mutes} · {escape(row['when'])}"
            )
    return reply("Silences and maintenance windows", lines or ["No silences, no windows."])
