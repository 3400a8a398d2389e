"""Slow clients (slowloris): connections that send a request head or body slowly or not at all."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

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


def run_all(clients: dict[str, SlowClient]) -> None:
    """Run the clients at once; each must have been cut (or answered and closed) in time."""
    for client in clients.values():
        client.start()
    for client in clients.values():
        client.thread.join(DEADLINE + 2 * MARGIN)
    late = sorted(name for name, c in clients.items() if c.closed_after is None)
    assert not late, f"still connected past the deadline: {late}"
