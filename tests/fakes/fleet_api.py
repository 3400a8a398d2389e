"""The Fleet API's `/health/events/recent`, in the live shape or the fixture shape.

Bearer auth; `x-correlation-id` echoed (or generated); errors `{code, message, hint,
correlationId}`. Events are served newest first, `limit` of them (1..200). In the fixture shape,
`page_size` splits the answer into pages linked by `nextCursor`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tests.fakes.http import FakeServer, Request, Response


class FleetApiServer(FakeServer):
    def __init__(self, token: str, shape: str = "live"):
        super().__init__()
        self.token = token
        self.shape = shape
        self.events: list[dict[str, Any]] = []  # in the chosen shape, any order
        self.fail_next: list[Response] = []
        self.page_size: int | None = None
        # other GET routes (`/health/summary`, `/fleet/state`, ...) → JSON body, or a function of
        # the query for `/logs/query`
        self.documents: dict[str, Any] = {}

    def error(self, status: int, code: str, message: str, hint: str, cid: str) -> Response:
        body = {"code": code, "message": message, "hint": hint, "correlationId": cid}
        return Response(status, body, {"x-correlation-id": cid})

    def handle(self, request: Request) -> Response:
        cid = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        known = request.path == "/health/events/recent" or request.path in self.documents
        if not known:
            return self.error(404, "NOT_FOUND", "no such route", "check the path", cid)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.error(
                401, "UNAUTHORIZED", "missing or invalid bearer token", "set FLEET_API_TOKEN", cid
            )
        if self.fail_next:
            forced = self.fail_next.pop(0)
            forced.headers.setdefault("x-correlation-id", cid)
            return forced
        if request.path in self.documents:
            document = self.documents[request.path]
            body = document(request.query) if callable(document) else document
            return Response(200, body, {"x-correlation-id": cid})
        try:
            limit = int(request.query.get("limit", ["50"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 200:
            return self.error(400, "BAD_REQUEST", "limit must be 1..200", "use limit=200", cid)
        newest = sorted(self.events, key=lambda e: e["timestamp"], reverse=True)[:limit]
        headers = {"x-correlation-id": cid}
        if self.shape == "live":
            return Response(200, {"events": newest, "count": len(newest)}, headers)
        start = int(request.query.get("cursor", ["0"])[0])
        size = self.page_size or len(newest) or 1
        page = newest[start : start + size]
        more = start + size < len(newest)
        body = {"items": page, "nextCursor": str(start + size) if more else None}
        return Response(200, body, headers)


def live_event(
    ts: datetime,
    i: int,
    type_: str = "command.failed",
    severity: str = "error",
    target: str = "pi-audio-01",
) -> dict[str, Any]:
    """One event in the live API's shape, correlation id `corr-{i}`."""
    return {
        "timestamp": ts.isoformat().replace("+00:00", "Z"),
        "type": type_,
        "target": target,
        "message": f"event {i}",
        "severity": severity,
        "metadata": {"correlationId": f"corr-{i}"},
    }
