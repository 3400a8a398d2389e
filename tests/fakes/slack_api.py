"""Slack Web API `chat.postMessage`, as documented: bearer token, HTTP 200 with `{"ok": true,
"channel", "ts", "message"}` or `{"ok": false, "error"}`; rate limits as HTTP 429 with Retry-After
and `{"ok": false, "error": "ratelimited"}`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tests.fakes.http import FakeServer, Request, Response


@dataclass
class Posted:
    channel: str  # channel id
    ts: str
    body: dict
    at: float  # time.monotonic() on arrival

    @property
    def thread_ts(self) -> str | None:
        return self.body.get("thread_ts")


class SlackApiServer(FakeServer):
    """Channels by name → id; only `token` is accepted. `fail_next` forces answers first."""

    def __init__(self, token: str, channels: dict[str, str] | None = None):
        super().__init__()
        self.token = token
        self.channels = channels or {"#operations": "C0OPS", "#operations-mirror": "C0MIRROR"}
        self.fail_next: list[Response] = []
        self.posted: list[Posted] = []
        self.orphans: list[dict] = []  # replies naming a thread_ts that is no message here
        self._seq = 0
        self._ts_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        if request.path != "/api/chat.postMessage" or request.method != "POST":
            return Response(404, {"ok": False, "error": "unknown_method"})
        if self.fail_next:
            return self.fail_next.pop(0)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        try:
            body = request.json()
        except ValueError:
            return Response(200, {"ok": False, "error": "invalid_json"})
        channel = self.channels.get(body.get("channel", ""), None)
        if channel is None and body.get("channel") in self.channels.values():
            channel = body["channel"]
        if channel is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        blocks = body.get("blocks") or []
        if not body.get("text") and not blocks:
            return Response(200, {"ok": False, "error": "no_text"})
        if len(blocks) > 50 or any(len(_section_text(b)) > 3000 for b in blocks):
            return Response(200, {"ok": False, "error": "invalid_blocks"})
        thread = body.get("thread_ts")
        if thread and not any(p.ts == thread and p.channel == channel for p in self.posted):
            self.orphans.append(body)
        with self._ts_lock:
            self._seq += 1
            ts = f"{1764000000 + self._seq}.{self._seq:06d}"
        self.posted.append(Posted(channel, ts, body, time.monotonic()))
        return Response(200, {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}})

    def top_level(self, channel: str = "C0OPS") -> list[Posted]:
        return [p for p in self.posted if p.channel == channel and not p.thread_ts]

    def replies(self, ts: str) -> list[Posted]:
        return [p for p in self.posted if p.thread_ts == ts]


def _section_text(block: dict) -> str:
    text = block.get("text")
    return text.get("text", "") if isinstance(text, dict) else ""
