"""Slow clients (slowloris) against the real `fleet-alerting slack-app` process: a request head
that stalls or trickles in, or a body that stalls, is cut within the 10 s deadlines, on every
endpoint and on a kept-alive connection's second request. All clients run at once."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from tests.attacks.app import App, Fakes, click, head, pd_signature

SLACK = {"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=" + "0" * 64}
PAGERDUTY = {"x-pagerduty-signature": pd_signature(b"{}")}
DEADLINE = 10.0  # seconds, for a head and for a body: the README's promise
MARGIN = 5.0  # seconds past a deadline: a busy machine's scheduling, never the deadline itself


@dataclass
class SlowClient:
    """Sends `first`, then `trickle` a byte every half second (if any), and records what the
    server answered and when it closed the connection."""

    port: int
    first: bytes
    trickle: bytes = b""
    answer: bytes = b""
    closed_after: float | None = None
    thread: threading.Thread = field(init=False)

    def start(self) -> SlowClient:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        limit = DEADLINE + MARGIN
        with socket.create_connection(("127.0.0.1", self.port), timeout=limit) as sock:
            sock.sendall(self.first)
            try:
                for byte in self.trickle:
                    sock.sendall(bytes([byte]))
                    if _answered(sock, 0.5):
                        break
                while part := sock.recv(65536):
                    self.answer += part
            except (ConnectionError, TimeoutError):
                pass
        if time.monotonic() - started < limit:
            self.closed_after = time.monotonic() - started


def _answered(sock: socket.socket, wait: float) -> bool:
    """True if the server said something or closed within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK)) or True
    except TimeoutError:
        return False
    finally:
        sock.settimeout(DEADLINE + MARGIN)


def test_slow_heads_and_bodies_are_cut_within_the_deadlines(app: App, world: Fakes) -> None:
    partial_head = b"POST /slack/actions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slack-sig"
    signed = whole(click(world))
    clients = {
        "head that stalls": SlowClient(app.port, partial_head),
        "head that trickles": SlowClient(app.port, partial_head, b"x" * 100),
        "second head on a kept-alive connection": SlowClient(app.port, signed + partial_head),
        "/slack/actions body that stalls": SlowClient(
            app.port, head("/slack/actions", SLACK | {"content-length": "1000"}) + b"payload="
        ),
        "/slack/commands body that stalls": SlowClient(
            app.port, head("/slack/commands", SLACK | {"content-length": "1000"}) + b"text="
        ),
        "/pagerduty/webhook body that stalls": SlowClient(
            app.port,
            head("/pagerduty/webhook", PAGERDUTY | {"transfer-encoding": "chunked"}) + b"5\r\n{",
        ),
    }
    for client in clients.values():
        client.start()
    for client in clients.values():
        client.thread.join(DEADLINE + 2 * MARGIN)
    late = {name: c.closed_after for name, c in clients.items() if c.closed_after is None}
    assert not late, f"still connected past the deadline: {sorted(late)}"
    for name, client in clients.items():
        if "body" in name:
            assert client.answer.startswith(b"HTTP/1.1 408"), (name, client.answer[:100])
    kept_alive = clients["second head on a kept-alive connection"].answer
    assert kept_alive.startswith(b"HTTP/1.1 200"), kept_alive[:100]  # the first request's answer


def whole(request: dict) -> bytes:
    """A whole request as bytes (one that is answered at once)."""
    headers = request["headers"] | {"content-length": str(len(request["content"]))}
    return head("/slack/actions", headers) + request["content"]
