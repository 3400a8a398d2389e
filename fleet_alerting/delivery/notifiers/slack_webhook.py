"""Slack: Block Kit messages with a plain `text` fallback, sent to an incoming webhook.

Every outside text is escaped and every block fits Slack's limits (core.mrkdwn). A message Slack
still refuses for its content (`invalid_blocks`, `msg_too_long`) is sent again as its `text` alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.core import escalation
from fleet_alerting.core.actions import ALERTMANAGER_SOURCE, PAGED_AGAIN
from fleet_alerting.core.channels import Channel
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.mrkdwn import (
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_CONTEXT_ELEMENTS,
    MAX_CONTEXT_TEXT,
    MAX_MESSAGE_TEXT,
    MAX_OPTION_TEXT,
    MAX_PLACEHOLDER_TEXT,
    MAX_SECTION_FIELD,
    MAX_SECTION_FIELDS,
    MAX_SECTION_TEXT,
    escape,
    fit,
    link,
    mention,
    safe_url,
)
from fleet_alerting.core.short_ids import SHORT, full_id
from fleet_alerting.http.errors import AdapterError, check_response, excerpt, transport_error

MAX_SECTION = MAX_SECTION_TEXT
# Slack's answers to a message it refuses for its content: sent again as plain text
REFUSED_CONTENT = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long"})

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
    Kind.escalated: ":arrow_double_up:",
}
SILENCE_CHOICES = (("1 h", "1h"), ("4 h", "4h"), ("24 h", "24h"), ("until resolved", "resolved"))
SNOOZE_CHOICES = (("1 h", "1h"), ("4 h", "4h"), ("24 h", "24h"))
ACTIONS_BLOCK = "fleet-incident:"  # block_id prefix; the rest is the incident key
MAX_BLOCK_ID = 255


AFTER_ALL = ":paged-after-all@"  # in the id of a "paged" message told again after a requeue
PAGING_ENDED = ":paging-ended"  # ends the id of a PAGING DELAYED message's follow-up
# ends the id a Slack "paged" message is sent with while it says PAGING DELAYED (its metadata in
# Slack): a retry in doubt finds that post only if it would say PAGING DELAYED again
PAGING_DELAYED = ":paging-delayed"
# a message going out later than this after it was decided says as of when its "failing for" was
# true: sent behind a later one, it would read backwards
LATE = timedelta(minutes=1)


def paged_after_all(told: Notification, now: datetime) -> Notification:
    """A Slack "paged" message told again once its dead page was requeued: it waits for the
    page as the first did, and says "Paged after all" once a pager took it (PAGING FAILED if it
    did not)."""
    again = f"{told.id}{AFTER_ALL}{now.isoformat()}"
    return replace(told, id=again, at=now, paging_failed="", paging_delayed="", paging_ended="")


def headline(n: Notification) -> str:
    incident = n.incident
    severity = incident.severity.upper()
    summary = incident.signal.summary
    if n.kind == Kind.opened:
        return f"[{severity}] {summary}"
    if n.kind == Kind.paged:
        pagers = ", ".join(incident.paged_via)
        lasted = _lasted(n)
        if n.paging_ended:
            return _paging_ended(n, severity, lasted)
        if n.paging_delayed:
            paged = f"Paged {pagers}; " if pagers else ""
            nobody = "not paged by it yet" if pagers else "nobody was paged yet"
            if n.paging_failed:
                paged += f"PAGING FAILED via {n.paging_failed} — nobody was paged by it; "
            return (
                f"[{severity}] {paged}PAGING DELAYED via {n.paging_delayed}; {nobody}: "
                f"failing for {lasted}: {summary}"
            )
        if n.paging_failed:
            paged = f"Paged {pagers}; " if pagers else ""
            return (
                f"[{severity}] {paged}PAGING FAILED via {n.paging_failed} — nobody was paged "
                f"by it: failing for {lasted}: {summary}"
            )
        pagers = ", ".join(escalation.current_pages(incident)) or pagers
        if AFTER_ALL in n.id:
            took = f"{pagers} took the page"
            return f"[{severity}] Paged after all: {took}, failing for {lasted}: {summary}"
        if n.marked(PAGED_AGAIN):  # a mute ended: its summary says which
            again = f"Silence ended, still failing after {lasted}; paged {pagers} again"
            return f"[{severity}] {again}: {summary}"
        return f"[{severity}] Paged {pagers}: failing for {lasted}: {summary}"
    if n.kind == Kind.escalated:
        lasted = _lasted(n)
        why = incident.escalation.why or f"escalation step {incident.escalation.step}"
        return f"[{severity}] {why[:1].upper()}{why[1:]}: failing for {lasted}: {summary}"
    if n.kind == Kind.reminder:
        lasted = _lasted(n)
        return f"[{severity}] Still failing after {lasted}: {summary}"
    acts = incident.acts
    if n.kind == Kind.acknowledged:
        return f"[{severity}] Acknowledged by {acts.acked_by} {_hhmm(acts.acked_at)}: {summary}"
    if n.kind == Kind.pager_acknowledged:
        return f"[{severity}] Acknowledged in PagerDuty by {acts.acked_by}: {summary}"
    if n.kind == Kind.pager_resolved:
        lasted = _lasted(n)
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
        lasted = _lasted(n)
        return f"[{severity}] {how}, still failing after {lasted}: {summary}"
    lasted = format_duration(incident.duration(n.at))
    now_ok = f" — now: {incident.resolution}" if incident.resolution else ""
    return f"[RESOLVED after {lasted}] {summary}{now_ok}"


def _lasted(n: Notification) -> str:
    """How long the incident had been failing when `n` was decided, and as of when if `n` goes
    out late."""
    lasted = format_duration(n.at - n.incident.onset)
    if n.sending_at is not None and n.sending_at - n.at > LATE:
        return f"{lasted} as of {n.at:%H:%M:%S} UTC"
    return lasted


def _paging_ended(n: Notification, severity: str, lasted: str) -> str:
    """The follow-up of a PAGING DELAYED message: no "failing for" once its incident resolved."""
    incident = n.incident
    if incident.state == State.resolved and incident.resolved_at is not None:
        lasted = format_duration(incident.duration(n.at))
        return f"[{severity}] {n.paging_ended}; resolved after {lasted}: {incident.signal.summary}"
    if incident.state == State.resolved:
        return f"[{severity}] {n.paging_ended}; resolved since: {incident.signal.summary}"
    failing = ": " if n.paging_failed else ", "
    return f"[{severity}] {n.paging_ended}{failing}failing for {lasted}: {incident.signal.summary}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lead(n: Notification, page_mention: str | None) -> str:
    """The one mention a message carries: the user group of an escalation step on that step's
    message, else the configured on-call on a "paged" message; none in the mirror, nor on a
    follow-up telling only an operator's drop (`quiet`)."""
    if n.channel == Channel.slack_mirror or n.incident.state == State.resolved or n.quiet:
        return ""
    step = n.incident.escalation.mention if n.kind in (Kind.paged, Kind.escalated) else None
    who = step or (page_mention if n.kind == Kind.paged else None)
    return f"{mention(who)} " if who else ""


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
        "text": {"type": "plain_text", "text": fit(text, MAX_BUTTON_TEXT)},
        "value": action,
    }
    return button | ({"style": style} if style else {})


def _select(text: str, action: str, choices: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": action,
        "placeholder": {"type": "plain_text", "text": fit(text, MAX_PLACEHOLDER_TEXT)},
        "options": [
            {"text": {"type": "plain_text", "text": fit(label, MAX_OPTION_TEXT)}, "value": value}
            for label, value in choices
        ],
    }


def render(
    n: Notification, *, note: str | None = None, page_mention: str | None = None
) -> dict[str, Any]:
    """The webhook / chat.postMessage body for one notification (without channel or thread).
    `page_mention` (config: who is on call) leads a "paged" message: its only mention (an
    escalation step's own `mention` takes its place on that step's message)."""
    incident, signal = n.incident, n.incident.signal
    icon = _ICONS[n.kind]
    if isinstance(icon, dict):
        icon = icon.get(incident.severity, ":warning:")
    title = headline(n)
    lead = _lead(n, page_mention)
    since = int(incident.onset.timestamp())
    fields = [
        f"*Target*\n{escape(signal.target or incident.key)}",
        f"*Severity*\n{incident.severity}",
        f"*Since*\n<!date^{since}^{{date_short_pretty}} {{time}}|{incident.onset.isoformat()}>",
        f"*Source*\n{escape(incident.source)}",
    ]
    blocks: list[dict[str, Any]] = [
        _section(f"{lead}{icon} *{escape(title)}*"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": fit(f, MAX_SECTION_FIELD)}
                for f in fields[:MAX_SECTION_FIELDS]
            ],
        },
    ]
    if signal.remediation and n.kind != Kind.resolved:
        steps = "\n".join(f"{i}. {escape(step)}" for i, step in enumerate(signal.remediation, 1))
        blocks.append(_section(f"*Remediation*\n{steps}"))
    links = ([("Runbook", signal.runbook_url)] if signal.runbook_url else []) + [
        (item.text, item.url) for item in signal.links
    ]
    if links:
        blocks.append(_section(" · ".join(link(url, text) for text, url in links)))
    blocks.append(_context(n, note))
    actions = buttons(incident) if n.kind != Kind.resolved else None
    if actions:
        blocks.append(actions)
    return {"text": fallback_text(n, lead), "blocks": blocks[:MAX_BLOCKS]}


def _context(n: Notification, note: str | None) -> dict[str, Any]:
    incident, signal = n.incident, n.incident.signal
    context = []
    if signal.correlation_ids:
        ids = ", ".join(f"`{escape(c)}`" for c in signal.correlation_ids)
        context.append(f"Correlation id: {ids}")
    # a resolved message shows what recovered (status 200), not the old failure (status 503)
    recovery = incident.recovery if n.kind == Kind.resolved else None
    evidence = recovery.evidence if recovery is not None else signal.evidence
    if evidence:
        label = "Recovered: " if recovery is not None else ""
        context.append(label + " · ".join(escape(f"{k}: {v}") for k, v in evidence.items()))
    context.extend(escape(line) for line in action_lines(incident))
    context.extend(escape(line) for line in escalation.lines(incident))
    context.append(f"incident `{escape(incident.key)}` (id `{full_id(incident.key)[:SHORT]}`)")
    if note:
        context.append(escape(note))
    elements = [{"type": "mrkdwn", "text": fit(c, MAX_CONTEXT_TEXT)} for c in context]
    return {"type": "context", "elements": elements[-MAX_CONTEXT_ELEMENTS:]}


def fallback_text(n: Notification, lead: str = "") -> str:
    """The top-level `text`: Slack's notification line, and the whole message when Slack refuses
    its blocks — severity, summary, target, since, runbook; after `lead` (a configured mention)."""
    incident, signal = n.incident, n.incident.signal
    target = signal.target or incident.key
    text = f"{headline(n)} | target {target} | since {incident.onset:%Y-%m-%d %H:%M} UTC"
    if n.kind == Kind.resolved:
        text += f" | severity {incident.severity}"
    runbook = safe_url(signal.runbook_url or "")
    text = lead + escape(text)
    return fit(text + (f" | runbook {runbook}" if runbook else ""), MAX_MESSAGE_TEXT)


def as_plain_text(body: dict[str, Any]) -> dict[str, Any]:
    """A body Slack refused for its blocks, as its `text` alone."""
    return {k: v for k, v in body.items() if k != "blocks"}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, MAX_SECTION)}}


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
        page_mention: str | None = None,
    ):
        self.client = client
        self.timeout = timeout
        self.pacer = pacer  # Slack accepts about one message per second per webhook
        self._url = url
        self.name = name
        self.note = note
        self.page_mention = page_mention

    async def body(self, n: Notification) -> dict[str, Any]:
        return render(n, note=self.note, page_mention=self.page_mention)

    async def send(self, n: Notification) -> str:
        body = await self.body(n)
        response = await self._post(body)
        if response.status_code == 400 and response.text.strip() in REFUSED_CONTENT:
            refused = response.text.strip()
            response = await self._post(as_plain_text(body))
            check_response(response, self.name)
            return f"{self.name}: {response.status_code} as plain text (blocks refused: {refused})"
        check_response(response, self.name)
        if response.text.strip() not in ("ok", ""):
            answer = excerpt(response.text, 100)
            raise AdapterError(f"{self.name} answered {answer!r}", permanent=True)
        return f"{self.name}: {response.status_code} {response.text.strip()}"

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        if self.pacer is not None:
            await self.pacer.wait(self.name)
        try:
            return await self.client.post(
                self._url.get_secret_value(), json=body, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
