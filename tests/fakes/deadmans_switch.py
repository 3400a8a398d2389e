"""A dead man's switch speaking Healthchecks.io's ping API: `GET|POST /ping/<uuid>` is a success,
`/ping/<uuid>/fail` a failure whose body is the reason; `OK` with 200, `not found` with 404 for
any other check. Records each ping with the time it arrived."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from tests.fakes.http import FakeServer, Request, Response


@dataclass(frozen=True)
class Ping:
    at: float  # time.monotonic()
    ok: bool
    body: str


class DeadMansSwitch(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.check = str(uuid.uuid4())
        self.pings: list[Ping] = []
        self.arrived = threading.Condition()
        self.status = 200  # what it answers a ping with

    @property
    def ping_url(self) -> str:
        return f"{self.url}/ping/{self.check}"

    def handle(self, request: Request) -> Response:
        base = f"/ping/{self.check}"
        if request.path.rstrip("/") not in (base, f"{base}/fail"):
            return Response(404, "not found")
        ping = Ping(time.monotonic(), not request.path.endswith("/fail"), request.body.decode())
        with self.arrived:
            self.pings.append(ping)
            self.arrived.notify_all()
        return Response(self.status, "OK" if self.status == 200 else "unavailable")

    def wait_for(self, matches, timeout: float, after: float = 0.0) -> Ping | None:
        """The first ping after `after` (monotonic) for which `matches(ping)`, or None."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [p for p in self.pings if p.at > after and matches(p)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.arrived.wait(left)
