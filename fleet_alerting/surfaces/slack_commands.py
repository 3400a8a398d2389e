"""Slack slash commands, the pure part: request signatures, parsing `/fleet …`, Block Kit replies.

Slack signs each request: `X-Slack-Signature: v0=HMAC_SHA256(signing_secret, "v0:{ts}:{raw body}")`
with `X-Slack-Request-Timestamp: {ts}` (`sign`; checked by surfaces/http_guard.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from fleet_alerting.core.mrkdwn import MAX_MESSAGE_TEXT, MAX_SECTION_TEXT, escape, fit, link

MAX_BODY_BYTES = 16 * 1024  # a slash command is a short form; Slack's are well under 4 KiB
MAX_LINES = 20
USAGE = (
    "Usage: `/fleet health` · `/fleet state [device]` · `/fleet logs [device] [level] "
    "[correlation-id]` · `/fleet incidents` · `/fleet run <flow/deployment>` · "
    "`/fleet silence add|query|expire …`"
)


def sign(secret: SecretStr, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(secret.get_secret_value().encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass(frozen=True)
class SlashCommand:
    action: str
    args: tuple[str, ...]
    user_id: str
    channel_id: str
    user_name: str = ""

    @property
    def actor(self) -> str:
        """Who acts, as a button click names them: @username when Slack gives one, else the
        user id (allow-lists match the id)."""
        return f"@{self.user_name}" if self.user_name else self.user_id


def deployment_name_problem(name: str) -> str | None:
    """Why `name` is not a FLOW/DEPLOYMENT name (None when it is one)."""
    flow, sep, deployment = name.partition("/")
    if not sep or not flow or not deployment or "/" in deployment:
        return (
            f"{name!r} is not a deployment name: expected FLOW/DEPLOYMENT, "
            "e.g. blackbox-probe/scheduled"
        )
    return None


def parse(form: dict[str, str]) -> SlashCommand:
    words = form.get("text", "").split()
    action = words[0].lower() if words else "help"
    return SlashCommand(
        action, tuple(words[1:]), form.get("user_id", ""), form.get("channel_id", ""),
        form.get("user_name", ""),
    )  # fmt: skip


def reply(title: str, lines: Iterable[str], more_url: str | None = None) -> dict[str, Any]:
    """An ephemeral Block Kit reply; long answers are cut at MAX_LINES with a link to the rest.
    `title` is plain text (escaped here), `lines` are mrkdwn whose outside text is escaped."""
    lines = list(lines)
    shown = lines[:MAX_LINES]
    text = "\n".join(shown) or "_nothing to show_"
    if len(lines) > MAX_LINES:
        rest = link(more_url, f"see all {len(lines)}") if more_url else f"{len(lines)} in all"
        text += f"\n… {len(lines) - MAX_LINES} more ({rest})"
    heading = fit(escape(title), MAX_MESSAGE_TEXT)
    return {
        "response_type": "ephemeral",
        "text": heading,
        "blocks": [
            _section(f"*{heading}*"),
            _section(text),
        ],
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, MAX_SECTION_TEXT)}}


def incident_lines(incidents: Iterable[dict[str, Any]]) -> list[str]:
    """`/fleet incidents`: the short id (what every command takes), severity, state, how long,
    summary and key of each open incident, then who acknowledged, silenced or muted it and
    until when, and a snooze still running."""
    return [
        f"`{escape(str(i.get('id', '?')))}` *{escape(str(i['severity']))}* "
        f"{escape(str(i['state']))} for {i['failing_for']}: "
        f"{escape(str(i['summary']))} (`{escape(str(i['key']))}`){_acts(i)}"
        for i in incidents
    ]


def _acts(incident: dict[str, Any]) -> str:
    said = []
    if incident.get("acked_by"):
        said.append(f":white_check_mark: acked by {escape(str(incident['acked_by']))}")
    if incident.get("silenced_by"):
        until = _until(incident.get("silenced_until")) or " until resolved"
        said.append(f":no_bell: silenced by {escape(str(incident['silenced_by']))}{until}")
    if incident.get("snoozed_until"):
        said.append(f":zzz: snoozed{_until(incident['snoozed_until'])}")
    if incident.get("muted_by"):
        muted = f"{escape(str(incident['muted_by']))}{_until(incident.get('muted_until'))}"
        said.append(f":no_bell: {muted}")
    return "".join(f" · {part}" for part in said)


def _until(iso: str | None) -> str:
    """` until Dec 8 02:00 UTC`, or nothing."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return f" until {moment:%b} {moment.day} {moment:%H:%M} UTC"


def health_lines(summary: dict[str, Any]) -> list[str]:
    """`/health/summary`: modules carry `id` (fixtures) or `module` (live API)."""
    lines = []
    for module in summary.get("modules") or []:
        name = module.get("id") or module.get("module") or "?"
        status = module.get("status", "?")
        icon = ":large_green_circle:" if status == "healthy" else ":red_circle:"
        message = f" — {escape(str(module['message']))}" if module.get("message") else ""
        lines.append(f"{icon} *{escape(str(name))}*: {escape(str(status))}{message}")
    return lines


def state_lines(state: dict[str, Any], device: str | None = None) -> list[str]:
    """`/fleet/state`: every device of every module (audio.devices, video.tv, …), or one."""
    lines = []
    for module, devices in all_devices(state):
        for d in devices:
            ident = str(d.get("id", "?"))
            if device and device not in (ident, d.get("displayName")):
                continue
            online = d.get("online")
            icon = ":large_green_circle:" if online else ":red_circle:" if online is False else "•"
            detail = (
                d.get("playback", {}).get("state") if isinstance(d.get("playback"), dict) else None
            )
            detail = detail or d.get("power") or d.get("state") or ""
            seen = f" (last seen {escape(str(d['lastSeen']))})" if d.get("lastSeen") else ""
            name = escape(str(d.get("displayName") or ident))
            where = f"`{escape(ident)}` {name} [{escape(str(module))}]"
            lines.append(f"{icon} {where} {escape(str(detail))}{seen}")
    return lines


def all_devices(state: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    found = []
    for module, section in state.items():
        if not isinstance(section, dict):
            continue
        if isinstance(section.get("devices"), list):
            found.append((module, [d for d in section["devices"] if isinstance(d, dict)]))
        for value in section.values():
            if isinstance(value, dict) and "id" in value:
                found.append((module, [value]))
    return found


def log_lines(body: dict[str, Any]) -> list[str]:
    """`/logs/query`: entries under `entries`, `items` or `logs`: time, level, message."""
    entries = body.get("entries") or body.get("items") or body.get("logs") or []
    lines = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        when = escape(str(e.get("timestamp") or e.get("ts") or "")[:19])
        level = escape(str(e.get("level") or e.get("severity") or ""))
        correlation = e.get("correlationId") or (e.get("metadata") or {}).get("correlationId")
        cid = f" `{escape(str(correlation))}`" if correlation else ""
        message = escape(str(e.get("message") or e.get("msg") or e.get("title") or ""))
        lines.append(f"`{when}` {level} {message}{cid}")
    return lines
