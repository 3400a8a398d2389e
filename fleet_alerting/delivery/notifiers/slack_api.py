"""Slack Web API (`chat.postMessage` with a bot token): one thread per incident.

The first message of an incident starts the thread; its `channel` (id) and `ts` are stored on the
incident, and later updates (paged, reminder, resolved) and the Fleet API event snapshot are
replies with `thread_ts`. Slack answers HTTP 200 `{"ok": false, "error": …}` for most errors:
`ratelimited` (and HTTP 429 with Retry-After) and Slack-side failures are retryable, everything
else (invalid_auth, channel_not_found, not_in_channel, …) is permanent. Posting is paced to about
one message per second per channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.core.incidents import Incident, Kind, Notification
from fleet_alerting.core.signals import Link
from fleet_alerting.delivery.notifiers.slack_webhook import (
    MAX_BLOCKS,
    MAX_SECTION,
    Pacer,
    SlackWebhook,
    escape,
    render,
)
from fleet_alerting.http.errors import (
    AdapterError,
    post_json,
    retry_after_seconds,
)
from fleet_alerting.sources.fleet_events.client import FleetEvent

RETRYABLE = {
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
}
NO_THREAD_NOTE = "no incident thread: no Slack bot token configured"
ONE_OFF_SOURCES = {"fleet-events", "notify-test"}  # a message each, not a thread

# An incident and the moment of the notification → the snapshot message (blocks + text).
Snapshot = Callable[[Incident, datetime], Awaitable[dict[str, Any]]]


def snapshot_message(
    incident: Incident,
    events: list[FleetEvent],
    scope: str,
    link_for: Callable[[FleetEvent], Link | None],
    note: str | None = None,
) -> dict[str, Any]:
    """Blocks listing the events, each with its correlation id and a logs link, within Slack's
    limits (50 blocks, 3000 characters per section)."""
    title = f":mag: *Fleet API events*: {escape(scope)} ({len(events)} shown)"
    if note:
        title += f"\n_{escape(note)}_"
    lines = [_event_line(e, link_for(e)) for e in events] or ["_no events in scope_"]
    sections, current = [], ""
    for line in lines:
        line = line[: MAX_SECTION - 1]
        if current and len(current) + 1 + len(line) > MAX_SECTION:
            sections.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    sections.append(current)
    blocks = [_section(title)] + [_section(s) for s in sections[: MAX_BLOCKS - 1]]
    ids = [e.correlation_id for e in events if e.correlation_id]
    text = f"Fleet API events for {incident.signal.target or incident.key}: {len(events)} ({scope})"
    if ids:
        text += "; correlation ids: " + ", ".join(ids)
    return {"text": text[:MAX_SECTION], "blocks": blocks}


def _event_line(event: FleetEvent, link: Link | None) -> str:
    parts = [
        f"`{event.timestamp:%Y-%m-%d %H:%M:%S}Z`",
        f"*{escape(event.severity)}*",
        f"`{escape(event.type)}`",
    ]
    if event.target:
        parts.append(escape(event.target))
    line = " ".join(parts) + f": {escape(event.message[:300])}"
    if event.correlation_id:
        line += f" · correlation `{escape(event.correlation_id)}`"
    if link:
        line += f" · <{link.url}|{escape(link.text)}>"
    return "• " + line


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_SECTION]}}


ThreadStore = Any  # fleet_alerting.store.Store (incident(), set_thread()); kept loose for tests


class SlackApi:
    def __init__(
        self,
        client: httpx.AsyncClient,
        token: SecretStr,
        channel: str,
        *,
        api_url: str = "https://slack.com/api",
        store: ThreadStore | None = None,
        snapshot: Snapshot | None = None,
        note: str | None = None,
        pacer: Pacer | None = None,
        timeout: float = 10.0,
    ):
        self.client = client
        self.timeout = timeout
        self._token = token
        self.channel = channel
        self.api_url = api_url.rstrip("/")
        self.store = store  # None: no threads (the mirror posts top-level messages)
        self.snapshot = snapshot
        self.note = note
        self.pacer = pacer or Pacer(1.0)
        self.name = f"Slack chat.postMessage {channel}"

    async def send(self, n: Notification) -> str:
        incident = n.incident
        if self.store is None or incident.source in ONE_OFF_SOURCES:
            answer = await self.post(render(n, note=self.note))
            return f"{self.name}: posted ts={answer.get('ts')}"
        thread = self._thread(incident)
        receipts = []
        if thread is None:
            answer = await self.post(render(n, note=self.note))
            thread = (str(answer.get("channel") or self.channel), str(answer["ts"]))
            self.store.set_thread(incident.key, incident.onset, *thread, n.at)
            receipts.append(f"thread started ts={thread[1]}")
        elif n.kind != Kind.opened:  # an opened retried after its snapshot failed: posted already
            body = render(n, note=self.note) | {"thread_ts": thread[1]}
            if n.kind == Kind.resolved:
                body["reply_broadcast"] = True  # the channel sees the resolution too
            answer = await self.post(body, channel=thread[0])
            receipts.append(f"reply ts={answer.get('ts')} in thread {thread[1]}")
        if n.kind == Kind.opened and self.snapshot is not None:
            message = await self.snapshot(incident, n.at)
            answer = await self.post(message | {"thread_ts": thread[1]}, channel=thread[0])
            receipts.append(f"snapshot ts={answer.get('ts')}")
        return f"{self.name}: " + ", ".join(receipts)

    def _thread(self, incident: Incident) -> tuple[str, str] | None:
        stored = self.store.incident(incident.key) if self.store else None
        if stored and stored.thread_ts and stored.onset == incident.onset:
            return (stored.thread_channel or self.channel, stored.thread_ts)
        return None

    async def post(self, body: dict[str, Any], channel: str | None = None) -> dict[str, Any]:
        target = channel or self.channel
        await self.pacer.wait(target)
        headers = {"authorization": f"Bearer {self._token.get_secret_value()}"}
        response, answer = await post_json(
            self.client,
            f"{self.api_url}/chat.postMessage",
            {"channel": target, **body},
            self.name,
            headers,
            timeout=self.timeout,
        )
        if not answer.get("ok"):
            error = str(answer.get("error") or "unknown_error")
            retry = retry_after_seconds(response.headers.get("retry-after"))
            raise AdapterError(
                f"{self.name}: {error}", permanent=error not in RETRYABLE, retry_after=retry
            )
        if "ts" not in answer:
            raise AdapterError(f"{self.name}: answer lacks ts", permanent=False)
        return answer


class SlackWebhookIncident(SlackWebhook):
    """Without a bot token: webhook messages that say no thread exists, with the event snapshot
    appended to the first message of an incident."""

    def __init__(self, *args: Any, snapshot: Snapshot | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.snapshot = snapshot

    async def body(self, n: Notification) -> dict[str, Any]:
        body = render(n, note=self.note)
        if self.snapshot and n.kind == Kind.opened and n.incident.source not in ONE_OFF_SOURCES:
            extra = (await self.snapshot(n.incident, n.at))["blocks"]
            room = MAX_BLOCKS - len(body["blocks"])
            body["blocks"] = body["blocks"] + extra[:room]
        return body
