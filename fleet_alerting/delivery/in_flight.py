"""The sends this process is waiting on now: per destination, since when its oldest send in
flight began. serve's heartbeat says them when a late watch's run hangs (`a run in flight for
1m35s); sends in flight: slack for 1m35s`) rather than only the run."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime


class SendsInFlight:
    """Thread-safe: lanes send in each run's event loop, the heartbeat reads from its thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sends: dict[int, tuple[str, datetime]] = {}
        self._ids = itertools.count()

    @contextlib.contextmanager
    def sending(self, destination: str) -> Iterator[None]:
        send = next(self._ids)
        with self._lock:
            self._sends[send] = (destination, datetime.now(UTC))
        try:
            yield
        finally:
            with self._lock:
                del self._sends[send]

    def waiting(self) -> dict[str, datetime]:
        """Each destination a send waits on, with when its oldest send in flight began."""
        with self._lock:
            sends = list(self._sends.values())
        oldest: dict[str, datetime] = {}
        for destination, since in sends:
            oldest[destination] = min(since, oldest.get(destination, since))
        return oldest


SENDS = SendsInFlight()
