"""The Alertmanager client decodes answers with orjson and spells alert keys out by hand: every
answer reads as the standard `json` module read it (what orjson refuses falls back to it), and
every key is `signal_key`'s — checked on a table of odd answers from a fake Alertmanager."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from fleet_alerting.core.keys import signal_key
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alertmanager
from fleet_alerting.sources.alertmanager.judge import SOURCE, alert_key
from fleet_alerting.sources.alertmanager.shapes import parse_alerts
from fleet_alerting.sources.records import text_only
from tests.fakes.http import Response, Scripted

ALERT = (
    '{"fingerprint": "%s", "labels": {"alertname": "HostDown", "n": %s},'
    ' "annotations": {"summary": "%s"}, "startsAt": "2026-12-01T10:00:00Z",'
    ' "endsAt": "2026-12-01T11:00:00Z", "updatedAt": "2026-12-01T10:00:01Z",'
    ' "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},'
    ' "receivers": [{"name": "pd"}], "generatorURL": "http://p/graph"}'
)

# (case, the answer's body): each reads as `json.loads` reads it, or is non-JSON to both
BODIES = [
    ("documented", "[" + ALERT % ("aaaa", '"1"', "down") + "]"),
    ("empty list", "[]"),
    ("NaN (not JSON, the standard module reads it)", "[" + ALERT % ("bbbb", "NaN", "x") + "]"),
    ("an integer past 64 bits", "[" + ALERT % ("cccc", "1" * 30, "x") + "]"),
    ("a lone surrogate", "[" + ALERT % ("dddd", '"1"', "\\ud800 down") + "]"),
    ("a key twice", '[{"fingerprint": "x", "fingerprint": "eeee"}]'),
    ("an object, not a list", '{"alerts": []}'),
    ("not JSON", "<html>502 Bad Gateway</html>"),
    ("truncated", "[" + ALERT % ("ffff", '"1"', "x")[:40]),
    ("UTF-8 BOM", "\ufeff[]"),
]


def read(body: str) -> Any:
    """What the client makes of `body`: the alerts and the malformed ones, or its error."""

    async def go() -> Any:
        with Scripted(Response(200, body.encode("utf-8", "surrogatepass"))) as server:
            async with httpx.AsyncClient() as http:
                try:
                    answer = await Alertmanager(http, server.url).escalation_alerts([])
                except AdapterError as exc:
                    return str(exc)
                return answer.alerts, [str(m) for m in answer.malformed]

    return asyncio.run(go())


def as_standard_json_reads(body: str) -> Any:
    """…with a lone surrogate made U+FFFD (no UTF-8 store could record it)."""
    try:
        decoded = text_only(json.loads(body.encode("utf-8", "surrogatepass")))
    except ValueError:
        return "Alertmanager /api/v2/alerts answered non-JSON"
    if not isinstance(decoded, list):
        return "Alertmanager /api/v2/alerts: expected a JSON list"
    alerts, malformed = parse_alerts(decoded)
    return alerts, [str(m) for m in malformed]


@pytest.mark.parametrize("body", [b for _, b in BODIES], ids=[name for name, _ in BODIES])
def test_an_answer_reads_as_the_standard_json_module_reads_it(body: str) -> None:
    assert read(body) == as_standard_json_reads(body)


@pytest.mark.parametrize(
    "fingerprint", ["a1b2c3d4e5f60718", "", "a,b=c", "ünï:cødé", "x" * 300, "0"]
)
def test_an_alert_key_is_signal_keys(fingerprint: str) -> None:
    body = "[" + ALERT % (fingerprint, '"1"', "x") + "]"
    alerts, _ = parse_alerts(json.loads(body))
    for alert in alerts:
        assert alert_key(alert) == signal_key(SOURCE, fingerprint=fingerprint)
