"""A Fleet API test server serving the fixture shapes for the operator surfaces' tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.fleet_api import FleetApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "fleet-api"
TOKEN = "fleet-api-token-CANARY-4411"
CORRELATION = "14d6f1fd-4c9f-4e8d-8621-9254cb59aa81"

LOGS = [
    {
        "timestamp": f"2024-03-28T09:{minute:02d}:00Z",
        "level": "error" if minute % 2 else "info",
        "deviceId": "pi-audio-01" if minute < 30 else "pi-audio-02",
        "message": f"playback step {minute}",
        "correlationId": CORRELATION if minute == 7 else None,
    }
    for minute in range(60)
]


def logs_query(query: dict[str, list[str]]) -> dict[str, Any]:
    wanted = {k: v[0] for k, v in query.items() if k in ("deviceId", "level", "correlationId")}
    entries = [e for e in LOGS if all(e.get(k) == v for k, v in wanted.items())]
    return {"entries": entries[: int(query.get("limit", ["100"])[0])], "count": len(entries)}


def fleet_server() -> FleetApiServer:
    server = FleetApiServer(TOKEN, shape="fixture")
    server.events = json.loads((FIXTURES / "events.recent.json").read_text())["items"]
    server.documents = {
        "/health/summary": json.loads((FIXTURES / "health.summary.json").read_text()),
        "/fleet/state": json.loads((FIXTURES / "state.json").read_text()),
        "/logs/query": logs_query,
    }
    return server
