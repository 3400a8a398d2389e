"""Slack Web API `chat.postMessage`, `conversations.history` and `conversations.replies`, as
documented: bearer token, HTTP 200 with `{"ok": true, …}` or `{"ok": false, "error"}`; rate
limits as HTTP 429 with Retry-After and `{"ok": false, "error": "ratelimited"}`.

Posted messages keep their message metadata (`event_type`, `event_payload`), returned by the
history methods only with `include_all_metadata=true`. History is newest first and holds
top-level messages (and replies broadcast to the channel); replies are the parent, then its
replies oldest first. Both take `oldest`/`latest` (exclusive unless `inclusive`), `limit` and a
`cursor`, and answer `has_more` and `response_metadata.next_cursor`. Without the history scope
they answer `missing_scope` with `needed` and `provided`, as Slack does."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import refused_blocks

BOT_USER, BOT_ID, APP_ID = "U0BOT", "B0BOT", "A0FLEET"


@dataclass
class Posted:
    channel: str  # channel id
    ts: str
    body: dict
    at: float  # time.monotonic() on arrival
    original: dict | None = None  # the body as first posted, once chat.update changed it

    @property
    def thread_ts(self) -> str | None:
        return self.body.get("thread_ts")


class SlackApiServer(FakeServer):
    """Channels by name → id; only `token` is accepted, with `scopes`. `fail_next` forces
    answers to chat.postMessage first, `fail_history` to the history methods."""

    def __init__(
        self,
        token: str,
        channels: dict[str, str] | None = None,
        scopes: frozenset[str] = frozenset({"chat:write", "channels:history"}),
    ):
        super().__init__()
        self.token = token
        self.channels = channels or {"#operations": "C0OPS", "#operations-mirror": "C0MIRROR"}
        self.scopes = scopes
        self.fail_next: list[Response] = []
        self.fail_history: list[Response] = []
        self.delay = 0.0  # seconds chat.postMessage takes to answer once it has posted
        self.fail_after_post: list[Response] = []  # answers given although the post landed
        self.posted: list[Posted] = []
        self.looked: list[Request] = []  # history and replies requests
        self.orphans: list[dict] = []  # replies naming a thread_ts that is no message here
        self.updates: list[Posted] = []  # chat.update calls that edited a message
        self._last_ts = 0.0
        self._ts_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        method = request.path.removeprefix("/api/")
        if method in ("conversations.history", "conversations.replies"):
            return self._history(method, request)
        if method == "chat.update" and request.method == "POST":
            return self._update(request)
        if method != "chat.postMessage" or request.method != "POST":
            return Response(404, {"ok": False, "error": "unknown_method"})
        if self.fail_next:
            return self.fail_next.pop(0)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        try:
            body = request.json()
        except ValueError:
            return Response(200, {"ok": False, "error": "invalid_json"})
        metadata = body.get("metadata")
        if metadata is not None and not _valid_metadata(metadata):
            return Response(200, {"ok": False, "error": "invalid_metadata_format"})
        channel = self.channels.get(body.get("channel", ""), None)
        if channel is None and body.get("channel") in self.channels.values():
            channel = body["channel"]
        if channel is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        refused = _refused_content(body)
        if refused is not None:
            return refused
        thread = body.get("thread_ts")
        if thread and not any(p.ts == thread and p.channel == channel for p in self.posted):
            self.orphans.append(body)
        with self._ts_lock:  # Slack's ts: the epoch time of the post, unique in the channel
            self._last_ts = max(time.time(), self._last_ts + 0.000001)
            ts = f"{self._last_ts:.6f}"
        self.posted.append(Posted(channel, ts, body, time.monotonic()))
        if self.fail_after_post:
            return self.fail_after_post.pop(0)
        answer = {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}}
        return Response(200, answer, delay=self.delay)

    def _update(self, request: Request) -> Response:
        """chat.update: the message (channel id and ts) gets the new text and blocks; its
        metadata stays unless given. Only the bot's own messages exist here."""
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        body = request.json()
        channel, ts = body.get("channel", ""), body.get("ts", "")
        if channel not in self.channels.values():
            return Response(200, {"ok": False, "error": "channel_not_found"})
        found = [p for p in self.posted if p.channel == channel and p.ts == ts]
        if not found:
            return Response(200, {"ok": False, "error": "message_not_found"})
        refused = _refused_content(body)
        if refused is not None:
            return refused
        message = found[0]
        message.original = message.original or dict(message.body)
        kept = {k: v for k, v in message.body.items() if k in ("metadata", "thread_ts", "channel")}
        message.body = kept | {k: v for k, v in body.items() if k not in ("channel", "ts")}
        self.updates.append(Posted(channel, ts, dict(message.body), time.monotonic()))
        return Response(200, {"ok": True, "channel": channel, "ts": ts, "text": body.get("text")})

    def _history(self, method: str, request: Request) -> Response:
        self.looked.append(request)
        if self.fail_history:
            return self.fail_history.pop(0)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        args = {k: v[-1] for k, v in request.query.items()}
        if request.body:  # POST: form-encoded or JSON
            if request.headers.get("content-type", "").startswith("application/json"):
                args |= {k: str(v) for k, v in request.json().items()}
            else:
                args |= {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if "channels:history" not in self.scopes:
            provided = ",".join(sorted(self.scopes))
            answer = {"ok": False, "error": "missing_scope", "needed": "channels:history"}
            return Response(200, answer | {"provided": provided})
        channel = args.get("channel", "")
        if channel not in self.channels.values():  # ids only: names are chat.postMessage's
            return Response(200, {"ok": False, "error": "channel_not_found"})
        with_metadata = args.get("include_all_metadata") in ("true", "1")
        if method == "conversations.history":
            found = [p for p in self.posted if p.channel == channel and _in_channel(p)]
            found.reverse()  # newest first
            limit = min(int(args.get("limit") or 100), 999)
        else:
            thread = args.get("ts", "")
            parent = [p for p in self.posted if p.channel == channel and p.ts == thread]
            if not parent or parent[0].thread_ts:
                return Response(200, {"ok": False, "error": "thread_not_found"})
            found = parent + [p for p in self.posted if p.thread_ts == thread]
            limit = min(int(args.get("limit") or 1000), 1000)
        found = [p for p in found if _within(p.ts, args)]
        start = int(base64.b64decode(args["cursor"]).decode()) if args.get("cursor") else 0
        page = found[start : start + limit]
        more = start + limit < len(found)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        answer = {
            "ok": True,
            "messages": [self._message(p, with_metadata) for p in page],
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }
        if method == "conversations.history":
            answer["pin_count"] = 0
        return Response(200, answer)

    def _message(self, p: Posted, with_metadata: bool) -> dict:
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": p.body.get("text", ""),
            "ts": p.ts,
        }
        if p.thread_ts:
            message["thread_ts"] = p.thread_ts
            if p.body.get("reply_broadcast"):
                message["subtype"] = "thread_broadcast"
        else:
            replies = [r for r in self.posted if r.thread_ts == p.ts]
            if replies:
                message |= {"thread_ts": p.ts, "reply_count": len(replies)}
        if with_metadata and p.body.get("metadata"):
            message["metadata"] = p.body["metadata"]
        return message

    def top_level(self, channel: str = "C0OPS") -> list[Posted]:
        return [p for p in self.posted if p.channel == channel and not p.thread_ts]

    def replies(self, ts: str) -> list[Posted]:
        return [p for p in self.posted if p.thread_ts == ts]


def _refused_content(body: dict) -> Response | None:
    """Slack's answer to a message without text or blocks, or with blocks beyond its limits."""
    blocks = body.get("blocks") or []
    if not body.get("text") and not blocks:
        return Response(200, {"ok": False, "error": "no_text"})
    if refused_blocks(blocks):
        return Response(200, {"ok": False, "error": "invalid_blocks"})
    return None


def _in_channel(p: Posted) -> bool:
    return not p.thread_ts or bool(p.body.get("reply_broadcast"))


def _within(ts: str, args: dict[str, str]) -> bool:
    inclusive = args.get("inclusive") in ("true", "1")
    value = float(ts)
    if args.get("oldest"):
        oldest = float(args["oldest"])
        if value < oldest or (value == oldest and not inclusive):
            return False
    if args.get("latest"):
        latest = float(args["latest"])
        if value > latest or (value == latest and not inclusive):
            return False
    return True


def _valid_metadata(metadata: object) -> bool:
    if isinstance(metadata, str):  # Slack takes it as a JSON string too
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return False
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    )
