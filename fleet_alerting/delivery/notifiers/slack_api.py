"""Slack Web API (`chat.postMessage` with a bot token): one thread per incident.

The first message of an incident starts the thread; its `channel` (id) and `ts` are stored on the
incident, and later updates (paged, reminder, resolved) and the Fleet API event snapshot are
replies with `thread_ts`. Slack answers HTTP 200 `{"ok": false, "error": …}` for most errors:
`ratelimited` (and HTTP 429 with Retry-After) and Slack-side failures are retryable, everything
else (invalid_auth, channel_not_found, not_in_channel, …) is permanent. Posting is paced to about
one message per second per channel.

Every message carries message metadata (`event_type` fleet_alerting_notification, the
notification id in `event_payload`), so a message that a killed drainer may have posted is found
in the channel (conversations.history / conversations.replies with `include_all_metadata`) and
not posted twice; see `SlackApi`. That needs the bot scopes channels:history (groups:history for
a private channel).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from fleet_alerting.config.notifiers.slack import SLACK_CHANNEL_ID, SlackConfig
from fleet_alerting.core.channels import Channel
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.core.mrkdwn import MAX_MESSAGE_TEXT, escape, fit, link
from fleet_alerting.core.signals import Link
from fleet_alerting.delivery.notifiers.slack_webhook import (
    MAX_BLOCKS,
    MAX_SECTION,
    REFUSED_CONTENT,
    Pacer,
    SlackWebhook,
    as_plain_text,
    render,
)
from fleet_alerting.http.errors import (
    AdapterError,
    check_response,
    post_json,
    retry_after_seconds,
    transport_error,
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
# Slack errors after which the message may have been posted all the same: look before reposting
MAYBE_POSTED = {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
NO_THREAD_NOTE = "no incident thread: no Slack bot token configured"
EVENT_TYPE = "fleet_alerting_notification"  # message metadata: which notification, which part
MESSAGE, SNAPSHOT = "message", "snapshot"
LOOK_BACK_MARGIN = timedelta(minutes=5)  # Slack's clock against ours
LOOK_PAGE, LOOK_PAGES = 200, 5  # a bounded look: past 1,000 newer messages it posts anyway
_learned_ids: dict[tuple[str, str], str] = {}  # (api url, channel name) → id, from answers
_warned: set[tuple[str, str, str]] = set()  # each look-up problem is reported once per process


def requests_per_send(slack: SlackConfig) -> dict[Channel, tuple[int, int]]:
    """The most requests, and of them paced posts, one attempt makes per Slack channel (a claim's
    lease counts them): a bot's message in doubt reads pages of the channel's history and of its
    thread and posts twice (the message, the Fleet API snapshot as its reply); a webhook's posts
    twice; the mirror has no thread and no snapshot."""
    bot = slack.bot_token is not None
    return {
        Channel.slack: (2 * LOOK_PAGES + 2 if bot else 2, 2),
        Channel.slack_mirror: (LOOK_PAGES + 1 if bot and not slack.mirror_webhook else 1, 1),
    }


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
        line = fit(line, MAX_SECTION - 1)
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
    return {"text": fit(escape(text), MAX_MESSAGE_TEXT), "blocks": blocks}


def unrelated_message(incident: Incident) -> dict[str, Any]:
    """The snapshot of an incident no Fleet API event can be about: said plainly, nothing
    listed."""
    what = incident.signal.target or incident.key
    text = escape(f"No Fleet API event can concern {what}: it names no device or host.")
    return {"text": fit(text, MAX_MESSAGE_TEXT), "blocks": [_section(f":mag: _{text}_")]}


def _event_line(event: FleetEvent, logs: Link | None) -> str:
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
    if logs:
        line += " · " + link(logs.url, logs.text)
    return "• " + line


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, MAX_SECTION)}}


class ThreadStore(Protocol):
    """Where an incident's Slack thread is kept (fleet_alerting.store.database.Store); delivery
    sits beside the store in the layers, so it names what it needs rather than importing it."""

    def incident(self, key: str) -> Incident | None: ...

    def set_thread(
        self, key: str, onset: datetime, channel: str, ts: str, now: datetime
    ) -> bool: ...


class SlackApi:
    """`send_in_doubt` (see delivery.channels.Confirms): every post carries message metadata
    naming the notification (and the part: the message, or an opened incident's snapshot
    reply); a message an earlier drainer may have posted is first looked for in the channel
    (conversations.history, or conversations.replies in its thread) and only what is missing is
    posted. A look that fails — an error, a timeout, a missing `channels:history` scope, a
    channel given by name that this process has not posted to yet — posts anyway: at least
    once stays the floor."""

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
        page_mention: str | None = None,
    ):
        self.client = client
        self.page_mention = page_mention
        self.timeout = timeout
        self._token = token
        self.channel = channel
        self.api_url = api_url.rstrip("/")
        self.store = store  # None: no threads (the mirror posts top-level messages)
        self.snapshot = snapshot
        self.note = note
        self.pacer = pacer or Pacer(1.0)
        self.name = f"Slack chat.postMessage {channel}"
        self.warnings: list[str] = []  # for the run's report (the drain collects them)

    def _render(self, n: Notification) -> dict[str, Any]:
        return render(n, note=self.note, page_mention=self.page_mention)

    async def send(self, n: Notification) -> str:
        return await self._send(n, None)

    async def send_in_doubt(self, n: Notification, since: datetime) -> str:
        """`n` may be in Slack already (queued at `since`): post only the parts not found."""
        return await self._send(n, since)

    async def _send(self, n: Notification, since: datetime | None) -> str:
        incident = n.incident
        if self.store is None or n.one_off:
            found = await self._look(since, n, MESSAGE, self._channel_id())
            if found:
                return f"{self.name}: found ts={found} (posted before, not again)"
            answer = await self.post(self._render(n), n=n)
            return f"{self.name}: posted ts={answer.get('ts')}"
        thread = self._thread(incident)
        receipts = []
        if thread is None:
            channel_id = self._channel_id()
            found = await self._look(since, n, MESSAGE, channel_id)
            if found and channel_id:  # posted, but killed before the thread was recorded
                thread = (channel_id, found)
                receipts.append(f"thread found ts={found} (posted before, not again)")
            else:
                answer = await self.post(self._render(n), n=n)
                thread = (str(answer.get("channel") or self.channel), str(answer["ts"]))
                receipts.append(f"thread started ts={thread[1]}")
            # recorded before any reply is posted: replies always go to this one thread
            self.store.set_thread(incident.key, incident.onset, *thread, n.at)
        elif n.kind != Kind.opened:  # an opened retried after its snapshot failed: posted already
            found = await self._look(since, n, MESSAGE, thread[0], thread[1])
            if found:
                receipts.append(f"reply found ts={found} in thread {thread[1]} (not again)")
            else:
                body = self._render(n) | {"thread_ts": thread[1]}
                if n.kind == Kind.resolved:
                    body["reply_broadcast"] = True  # the channel sees the resolution too
                answer = await self.post(body, channel=thread[0], n=n)
                receipts.append(f"reply ts={answer.get('ts')} in thread {thread[1]}")
            receipts += await self._update_top(n, thread)
        if n.kind == Kind.opened and self.snapshot is not None:
            found = await self._look(since, n, SNAPSHOT, thread[0], thread[1])
            if found:
                receipts.append(f"snapshot found ts={found} (not again)")
            else:
                message = await self.snapshot(incident, n.at)
                body = message | {"thread_ts": thread[1]}
                answer = await self.post(body, channel=thread[0], n=n, part=SNAPSHOT)
                receipts.append(f"snapshot ts={answer.get('ts')}")
        return f"{self.name}: " + ", ".join(receipts)

    def _thread(self, incident: Incident) -> tuple[str, str] | None:
        stored = self.store.incident(incident.key) if self.store else None
        if stored and stored.thread_ts and stored.onset == incident.onset:
            return (stored.thread_channel or self.channel, stored.thread_ts)
        return None

    def _channel_id(self) -> str | None:
        """Slack's history methods take a channel id, not a name: the configured channel if it
        is an id, else the id Slack answered with when this process last posted to it."""
        if SLACK_CHANNEL_ID.fullmatch(self.channel):
            return self.channel
        return _learned_ids.get((self.api_url, self.channel))

    async def _look(
        self,
        since: datetime | None,
        n: Notification,
        part: str,
        channel_id: str | None,
        thread_ts: str | None = None,
    ) -> str | None:
        """The ts of the message carrying `n`'s metadata (and `part`), posted since `since`;
        None when not in doubt, not found, or the look failed (then a warning: post anyway)."""
        if since is None:
            return None
        if channel_id is None:
            self._warn_once(
                "name",
                f"cannot look in {self.channel} for a message sent before a crash: Slack's "
                "history methods need the channel id (C…) in the config; posting it again",
            )
            return None
        try:
            return await self._find(channel_id, n.id, part, since, thread_ts)
        except AdapterError as exc:
            if isinstance(exc, _Refused) and exc.error == "missing_scope":
                self._warn_once(
                    "scope",
                    f"{exc}: the bot token lacks the scope to read {self.channel}'s history "
                    "(channels:history, groups:history for a private channel), so a message "
                    "sent just before a crash is sent again; add the scope",
                )
            else:
                self.warnings.append(f"could not check for an earlier copy, posting: {exc}")
            return None

    async def _find(
        self, channel_id: str, notification_id: str, part: str, since: datetime,
        thread_ts: str | None,
    ) -> str | None:  # fmt: skip
        method = "conversations.replies" if thread_ts else "conversations.history"
        oldest = (since - LOOK_BACK_MARGIN).timestamp()
        params = {
            "channel": channel_id,
            "oldest": f"{oldest:.6f}",
            "include_all_metadata": "true",
            "limit": str(LOOK_PAGE),
        }
        if thread_ts:
            params["ts"] = thread_ts
        for _page in range(LOOK_PAGES):
            answer = await self._call(method, params)
            for message in answer.get("messages") or []:
                if _carries(message, notification_id, part):
                    return str(message.get("ts"))
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return None
            params["cursor"] = cursor
        raise AdapterError(
            f"Slack {method} {channel_id}: more than {LOOK_PAGES * LOOK_PAGE} messages since "
            "the notification was queued",
            permanent=False,
        )

    async def _call(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        name = f"Slack {method} {params['channel']}"
        headers = {"authorization": f"Bearer {self._token.get_secret_value()}"}
        try:
            response = await self.client.get(
                f"{self.api_url}/{method}", params=params, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, name) from None
        check_response(response, name)
        try:
            answer = response.json()
        except ValueError:
            raise AdapterError(f"{name} answered non-JSON", permanent=False) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = str(answer.get("error") if isinstance(answer, dict) else "") or "unknown_error"
            raise _Refused(f"{name}: {error}", error)
        return answer

    def _warn_once(self, what: str, message: str) -> None:
        if (self.api_url, self.channel, what) not in _warned:
            _warned.add((self.api_url, self.channel, what))
            self.warnings.append(message)

    async def post(
        self,
        body: dict[str, Any],
        channel: str | None = None,
        n: Notification | None = None,
        part: str = MESSAGE,
    ) -> dict[str, Any]:
        target = channel or self.channel
        if n is not None:  # what a later look for this notification finds
            payload = {"notification_id": n.id, "part": part}
            body = body | {"metadata": {"event_type": EVENT_TYPE, "event_payload": payload}}
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
        if not answer.get("ok") and answer.get("error") in REFUSED_CONTENT and "blocks" in body:
            return await self.post(as_plain_text(body), channel, n, part)
        if not answer.get("ok"):
            error = str(answer.get("error") or "unknown_error")
            retry = retry_after_seconds(response.headers.get("retry-after"))
            raise AdapterError(
                f"{self.name}: {error}",
                permanent=error not in RETRYABLE,
                retry_after=retry,
                maybe_sent=error in MAYBE_POSTED,
            )
        if "ts" not in answer:
            raise AdapterError(f"{self.name}: answer lacks ts", permanent=False, maybe_sent=True)
        if answer.get("channel") and not SLACK_CHANNEL_ID.fullmatch(target):
            _learned_ids[(self.api_url, target)] = str(answer["channel"])
        return answer

    async def _update_top(self, n: Notification, thread: tuple[str, str]) -> list[str]:
        """Edit the thread's top-level message to the incident's current state (a failed edit
        is a warning: the reply carries the news)."""
        body = {"channel": thread[0], "ts": thread[1], **top_message(n, self.note)}
        headers = {"authorization": f"Bearer {self._token.get_secret_value()}"}
        name = f"Slack chat.update {thread[0]}"
        try:
            _response, answer = await post_json(
                self.client,
                f"{self.api_url}/chat.update",
                body,
                name,
                headers,
                timeout=self.timeout,
            )
        except AdapterError as exc:
            self.warnings.append(f"could not update the incident's first message: {exc}")
            return []
        if not answer.get("ok"):
            error = answer.get("error") or "unknown_error"
            self.warnings.append(f"could not update the incident's first message: {name}: {error}")
            return []
        return [f"top message updated ts={thread[1]}"]


def top_message(n: Notification, note: str | None = None) -> dict[str, Any]:
    """The incident's first message as it is now: the values it fired with (its failing
    observation, never the recovery's), under a headline that says where it stands —
    resolved after X, acknowledged by, silenced until, muted by a window."""
    incident = n.incident
    body = render(replace(n, kind=Kind.opened), note=note)
    status = current_status(n)
    icon = STATUS_ICONS.get(status.split(" ", 1)[0], ":red_circle:")
    title = f"[{incident.severity.upper()}] {incident.signal.summary}"
    first = fit(f"{icon} *{escape(status)}*: {escape(title)}", MAX_SECTION)
    body["blocks"][0] = {"type": "section", "text": {"type": "mrkdwn", "text": first}}
    body["text"] = fit(f"{escape(status)}: {body['text']}", MAX_MESSAGE_TEXT)
    return body


STATUS_ICONS = {
    "Resolved": ":white_check_mark:",
    "Acknowledged": ":eyes:",
    "Silenced": ":no_bell:",
    "Muted": ":no_bell:",
    "Inhibited": ":no_bell:",
}


def current_status(n: Notification) -> str:
    incident = n.incident
    if incident.state == State.resolved:
        return f"Resolved after {format_duration(incident.duration(n.at))}"
    acts = incident.acts
    if acts.silenced_by and (acts.silenced_until is None or n.at < acts.silenced_until):
        until = f"{acts.silenced_until:%H:%M} UTC" if acts.silenced_until else "resolved"
        return f"Silenced by {acts.silenced_by} until {until}"
    if acts.muted_by:
        until = f" until {acts.muted_until:%H:%M} UTC" if acts.muted_until else ""
        return f"{acts.muted_by[:1].upper()}{acts.muted_by[1:]}{until}"
    if incident.inhibited_by:
        return f"Inhibited by {incident.inhibited_by}"
    if acts.acked_by:
        return f"Acknowledged by {acts.acked_by}"
    if incident.state == State.paged and (n.paging_delayed or n.paging_failed):
        return "Paging failed" if n.paging_failed else "Paging delayed"
    if incident.state == State.paged:
        return f"Paged {', '.join(incident.paged_via)}"
    return "Firing"


class _Refused(AdapterError):
    """Slack answered `{"ok": false, "error": …}` to a look-up."""

    def __init__(self, message: str, error: str):
        super().__init__(message, permanent=error not in RETRYABLE)
        self.error = error


def _carries(message: Any, notification_id: str, part: str) -> bool:
    if not isinstance(message, dict):
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    return (
        isinstance(payload, dict)
        and payload.get("notification_id") == notification_id
        and payload.get("part", MESSAGE) == part
    )


class SlackWebhookIncident(SlackWebhook):
    """Without a bot token: webhook messages that say no thread exists, with the event snapshot
    appended to the first message of an incident."""

    def __init__(self, *args: Any, snapshot: Snapshot | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.snapshot = snapshot

    async def body(self, n: Notification) -> dict[str, Any]:
        body = await super().body(n)
        if self.snapshot and n.kind == Kind.opened and not n.one_off:
            extra = (await self.snapshot(n.incident, n.at))["blocks"]
            room = MAX_BLOCKS - len(body["blocks"])
            body["blocks"] = body["blocks"] + extra[:room]
        return body
