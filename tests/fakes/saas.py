"""Slack incoming webhooks and PagerDuty Events API v2, as their documentation describes them."""

from __future__ import annotations

import json
from collections import Counter

from tests.fakes.http import FakeServer, Request, Response

# Block Kit limits as Slack documents them (a message over any is refused with invalid_blocks)
SECTION_TEXT, SECTION_FIELD, SECTION_FIELDS, CONTEXT_ELEMENTS, BLOCKS = 3000, 2000, 10, 10, 50


def refused_blocks(blocks: object) -> bool:
    """True when Slack would answer `invalid_blocks`: too many blocks, a section text over 3,000
    characters, a section field over 2,000 or more than 10 of them, over 10 context elements."""
    if not isinstance(blocks, list) or len(blocks) > BLOCKS:
        return True
    for block in blocks:
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, dict) and len(text.get("text", "")) > SECTION_TEXT:
            return True
        fields = [f.get("text", "") for f in block.get("fields") or []]
        if len(fields) > SECTION_FIELDS or any(len(f) > SECTION_FIELD for f in fields):
            return True
        if len(block.get("elements") or []) > CONTEXT_ELEMENTS and block.get("type") == "context":
            return True
    return False


class SlackWebhookServer(FakeServer):
    """POST JSON with `text` and/or `blocks` → 200 `ok`. Answers may be forced first (429 with
    Retry-After, 500, 404 channel_not_found...) through `fail_next`."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next: list[Response] = []
        self.messages: list[dict] = []

    def handle(self, request: Request) -> Response:
        if self.fail_next:
            return self.fail_next.pop(0)
        try:
            body = request.json()
        except ValueError:
            return Response(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return Response(400, "no_text")
        if "blocks" in body and refused_blocks(body["blocks"]):
            return Response(400, "invalid_blocks")
        self.messages.append(body)
        return Response(200, "ok")


class PagerDutyServer(FakeServer):
    """POST /v2/enqueue → 202 {status, message, dedup_key}; invalid events → 400. Tracks which
    dedup keys are open, so a test can see a page that was triggered twice, and which of them are
    acknowledged: as PagerDuty documents, a trigger whose dedup_key names an open alert is folded
    into it (acknowledged stays acknowledged, nobody is notified), and only a trigger with no open
    alert of its key opens an incident (`incidents` counts those per key)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next: list[Response] = []
        self.events: list[dict] = []
        self.open: set[str] = set()
        self.triggers_while_open: Counter[str] = Counter()
        self.acknowledged: set[str] = set()
        self.incidents: Counter[str] = Counter()

    def handle(self, request: Request) -> Response:
        if request.path != "/v2/enqueue":
            return Response(404, {"status": "not found"})
        if self.fail_next:
            return self.fail_next.pop(0)
        try:
            event = request.json()
        except ValueError:
            return Response(400, {"status": "invalid event", "message": "Event object is invalid"})
        errors = self._validate(event)
        if errors:
            return Response(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
        key = event["dedup_key"]
        self.events.append(event)
        if event["event_action"] == "trigger":
            if key in self.open:
                self.triggers_while_open[key] += 1
            else:
                self.incidents[key] += 1
            self.open.add(key)
        elif event["event_action"] == "acknowledge" and key in self.open:
            self.acknowledged.add(key)
        elif event["event_action"] == "resolve":
            self.open.discard(key)
            self.acknowledged.discard(key)
        return Response(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    @staticmethod
    def _validate(event: dict) -> list[str]:
        errors = []
        if len(event.get("routing_key", "")) != 32:
            errors.append("'routing_key' must be 32 characters")
        if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if event.get("event_action") != "trigger" and not event.get("dedup_key"):
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if event.get("event_action") == "trigger":
            payload = event.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
            if len(payload.get("summary", "")) > 1024:
                errors.append("'payload.summary' is longer than 1024 characters")
            for name in ("source", "component", "group", "class"):  # held to dedup_key's 255
                if len(str(payload.get(name, ""))) > 255:
                    errors.append(f"'payload.{name}' is longer than 255 characters")
        if len(str(event.get("dedup_key", ""))) > 255:
            errors.append("'dedup_key' is longer than 255 characters")
        if len(json.dumps(event).encode()) > 512 * 1024:
            errors.append("event is larger than 512 KB")
        return errors
