"""Slack: Block Kit messages with a plain `text` fallback, sent to an incoming webhook.

Limits respected: 50 blocks per message, 3000 characters per section text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.core.actions import ALERTMANAGER_SOURCE
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.http.errors import AdapterError, check_response, excerpt, transport_error

MAX_BLOCKS = 50
MAX_SECTION = 3000

_ICONS = {
    Kind.opened: {
        "critical": ":red_circle:",
        "warning": ":warning:",
        "info": ":information_source:",
    },
    Kind.paged: ":rotating_light:",
    Kind.reminder: ":repeat:",
    Kind.resolved: ":white_check_mark:",
    Kind.acknowledged: ":eyes:",
    Kind.silenced: ":no_bell:",
    Kind.unsilenced: ":bell:",
    Kind.silence_expired: ":bell:",
    Kind.muted: ":no_bell:",
    Kind.pager_acknowledged: ":eyes:",
    Kind.pager_resolved: ":warning:",
}
SILENCE_CHOICES = (("1 h", "1h"), ("4 h", "4h"), ("24 h", "24h"), ("until resolved", "resolved"))
SNOOZE_CHOICES = (("1 h", "1h"), ("4 h", "4h"), ("24 h", "24h"))
ACTIONS_BLOCK = "fleet-incident:"  # block_id prefix; the rest is the incident key
MAX_BLOCK_ID = 255


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(n: Notification) -> str:
    incident = n.incident
    severity = incident.severity.upper()
    summary = incident.signal.summary
    if n.kind == Kind.opened:
        return f"[{severity}] {summary}"
    if n.kind == Kind.paged:
        pagers = ", ".join(incident.paged_via)
        lasted = format_duration(n.at - incident.onset)
        if n.paging_failed:
            paged = f"Paged {pagers}; " if pagers else ""
            return (
                f"[{severity}] {paged}PAGING FAILED via {n.paging_failed} — nobody was paged "
                f"by it: failing for {lasted}: {summary}"
            )
        return f"[{severity}] Paged {pagers}: failing for {lasted}: {summary}"
    if n.kind == Kind.reminder:
        lasted = format_duration(n.at - incident.onset)
        return f"[{severity}] Still failing after {lasted}: {summary}"
    acts = incident.acts
    if n.kind == Kind.acknowledged:
        return f"[{severity}] Acknowledged by {acts.acked_by} {_hhmm(acts.acked_at)}: {summary}"
    if n.kind == Kind.pager_acknowledged:
        return f"[{severity}] Acknowledged in PagerDuty by {acts.acked_by}: {summary}"
    if n.kind == Kind.pager_resolved:
        lasted = format_duration(n.at - incident.onset)
        return (
            f"[{severity}] Resolved in PagerDuty, but still failing after {lasted}: {summary} "
            "(stays open here until the check passes)"
        )
    if n.kind == Kind.silenced:
        until = f"until {_hhmm(acts.silenced_until)}" if acts.silenced_until else "until resolved"
        return f"[{severity}] Silenced by {acts.silenced_by} {until}: {summary}"
    if n.kind == Kind.muted and not acts.muted_by and incident.inhibited_by:
        return f"[{severity}] Inhibited by {incident.inhibited_by}: {summary}"
    if n.kind == Kind.muted:
        until = f" until {_hhmm(acts.muted_until)}" if acts.muted_until else ""
        return f"[{severity}] {_capital(acts.muted_by or 'muted')}{until}: {summary}"
    if n.kind in (Kind.unsilenced, Kind.silence_expired):
        how = "Silence lifted" if n.kind == Kind.unsilenced else "Silence ended"
        lasted = format_duration(n.at - incident.onset)
        return f"[{severity}] {how}, still failing after {lasted}: {summary}"
    lasted = format_duration(incident.duration(n.at))
    now_ok = f" — now: {incident.resolution}" if incident.resolution else ""
    return f"[RESOLVED after {lasted}] {summary}{now_ok}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _hhmm(moment: datetime | None) -> str:
    return f"{moment:%H:%M} UTC" if moment else ""


def action_lines(incident: Incident) -> list[str]:
    acts, lines = incident.acts, []
    if acts.acked_by:
        lines.append(f"Acknowledged by {acts.acked_by} at {_hhmm(acts.acked_at)}")
    if acts.silenced_by:
        until = f"until {_hhmm(acts.silenced_until)}" if acts.silenced_until else "until resolved"
        where = f" (Alertmanager silence {acts.silence_id})" if acts.silence_id else ""
        lines.append(f"Silenced by {acts.silenced_by} {until}{where}")
    if acts.snoozed_until:
        lines.append(f"Reminders snoozed until {_hhmm(acts.snoozed_until)}")
    if acts.muted_by:
        until = f" until {_hhmm(acts.muted_until)}" if acts.muted_until else ""
        lines.append(f"{_capital(acts.muted_by)}{until}")
    return lines


def buttons(incident: Incident) -> dict[str, Any] | None:
    """Acknowledge, Silence (a choice), Snooze for our own sources, Unsilence while silenced; the
    incident key rides in the block_id (selects carry only their option's value)."""
    block_id = ACTIONS_BLOCK + incident.key
    if incident.state == State.resolved or len(block_id) > MAX_BLOCK_ID:
        return None
    acts, elements = incident.acts, []
    if not acts.acked_by:
        elements.append(_button("Acknowledge", "ack", "primary"))
    if acts.silenced_by:
        elements.append(_button("Unsilence", "unsilence"))
    else:
        elements.append(_select("Silence…", "silence", SILENCE_CHOICES))
    if incident.source != ALERTMANAGER_SOURCE:
        elements.append(_select("Snooze reminders…", "snooze", SNOOZE_CHOICES))
    return {"type": "actions", "block_id": block_id, "elements": elements}


def _button(text: str, action: str, style: str | None = None) -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": text},
        "value": action,
    }
    return button | ({"style": style} if style else {})


def _select(text: str, action: str, choices: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": action,
        "placeholder": {"type": "plain_text", "text": text},
        "options": [
            {"text": {"type": "plain_text", "text": label}, "value": value}
            for label, value in choices
        ],
    }


def render(n: Notification, *, note: str | None = None) -> dict[str, Any]:
    """The webhook / chat.postMessage body for one notification (without channel or thread)."""
    incident, signal = n.incident, n.incident.signal
    icon = _ICONS[n.kind]
    if isinstance(icon, dict):
        icon = icon.get(incident.severity, ":warning:")
    title = headline(n)
    since = int(incident.onset.timestamp())
    fields = [
        f"*Target*\n{escape(signal.target or incident.key)}",
        f"*Severity*\n{incident.severity}",
        f"*Since*\n<!date^{since}^{{date_short_pretty}} {{time}}|{incident.onset.isoformat()}>",
        f"*Source*\n{escape(incident.source)}",
    ]
    blocks: list[dict[str, Any]] = [
        _section(f"{icon} *{escape(title)}*"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if signal.remediation and n.kind != Kind.resolved:
        steps = "\n".join(f"{i}. {escape(step)}" for i, step in enumerate(signal.remediation, 1))
        blocks.append(_section(f"*Remediation*\n{steps}"))
    links = ([("Runbook", signal.runbook_url)] if signal.runbook_url else []) + [
        (link.text, link.url) for link in signal.links
    ]
    if links:
        blocks.append(_section(" · ".join(f"<{url}|{escape(text)}>" for text, url in links)))
    context = []
    if signal.correlation_ids:
        context.append("Correlation id: " + ", ".join(f"`{c}`" for c in signal.correlation_ids))
    # a resolved message shows what recovered (status 200), not the old failure (status 503)
    recovery = incident.recovery if n.kind == Kind.resolved else None
    evidence = recovery.evidence if recovery is not None else signal.evidence
    if evidence:
        label = "Recovered: " if recovery is not None else ""
        context.append(label + " · ".join(f"{k}: {v}" for k, v in evidence.items()))
    context.extend(escape(line) for line in action_lines(incident))
    context.append(f"incident `{escape(incident.key)}` (id `{full_id(incident.key)[:SHORT]}`)")
    if note:
        context.append(escape(note))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(c)} for c in context]}
    )
    actions = buttons(incident) if n.kind != Kind.resolved else None
    if actions:
        blocks.append(actions)
    target = signal.target or incident.key
    text = f"{title} | target {target} | since {incident.onset:%Y-%m-%d %H:%M} UTC"
    if signal.runbook_url:
        text += f" | runbook {signal.runbook_url}"
    return {"text": _cut(text), "blocks": blocks[:MAX_BLOCKS]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text)}}


def _cut(text: str, limit: int = MAX_SECTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Pacer:
    """At most one post per `interval` seconds per channel, within this process."""

    def __init__(
        self,
        interval: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.interval = interval
        self.sleep = sleep
        self.clock = clock
        self.last: dict[str, float] = {}

    async def wait(self, channel: str) -> None:
        if channel in self.last:
            wait = self.last[channel] + self.interval - self.clock()
            if wait > 0:
                await self.sleep(wait)
        self.last[channel] = self.clock()


class SlackWebhook:
    """An incoming webhook. Answers `ok` with 200; errors are plain-text codes (invalid_payload,
    channel_not_found, ...) with 4xx, rate limits are 429 with Retry-After."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: SecretStr,
        name: str,
        note: str | None = None,
        timeout: float = 10.0,
        pacer: Pacer | None = None,
    ):
        self.client = client
        self.timeout = timeout
        self.pacer = pacer  # Slack accepts about one message per second per webhook
        self._url = url
        self.name = name
        self.note = note

    async def body(self, n: Notification) -> dict[str, Any]:
        return render(n, note=self.note)

    async def send(self, n: Notification) -> str:
        body = await self.body(n)
        if self.pacer is not None:
            await self.pacer.wait(self.name)
        try:
            response = await self.client.post(
                self._url.get_secret_value(), json=body, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        check_response(response, self.name)
        if response.text.strip() not in ("ok", ""):
            answer = excerpt(response.text, 100)
            raise AdapterError(f"{self.name} answered {answer!r}", permanent=True)
        return f"{self.name}: {response.status_code} {response.text.strip()}"
