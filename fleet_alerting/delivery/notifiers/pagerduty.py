"""PagerDuty Events API v2: trigger on page, acknowledge on an operator's ack, resolve on clear,
one dedup_key per incident key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.config.secrets import redact
from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.core.mrkdwn import clip, is_web_url
from fleet_alerting.http.errors import AdapterError, excerpt, post_json

MAX_EVENT_BYTES = 512 * 1024
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
MAX_FIELD = 255  # source, component, group, class: held to the dedup_key's documented limit
# a silence (an operator's, by matchers) or maintenance window that begins on a page closes it
# as an acknowledge
_ACTIONS = {
    Kind.resolved: "resolve",
    Kind.acknowledged: "acknowledge",
    Kind.silenced: "acknowledge",
    Kind.muted: "acknowledge",
}
_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def dedup_key(incident_key: str) -> str:
    """The incident key itself when it fits, so operators recognise it in PagerDuty."""
    if len(incident_key) <= MAX_DEDUP_KEY:
        return incident_key
    digest = hashlib.sha256(incident_key.encode()).hexdigest()[:16]
    return f"{incident_key[: MAX_DEDUP_KEY - 17]}#{digest}"


def event(n: Notification, routing_key: str) -> dict[str, Any]:
    incident, signal = n.incident, n.incident.signal
    action = _ACTIONS.get(n.kind, "trigger")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(incident.key),
    }
    if action != "trigger":  # acknowledge and resolve carry only the dedup_key
        return body
    summary = f"[{incident.severity.upper()}] {signal.summary} ({signal.target or incident.key})"
    body["payload"] = {
        # PagerDuty shows the summary as written (its UI, phone calls, SMS): not Slack-escaped;
        # redacted before the cut, so a secret across the cut cannot leave its head behind
        "summary": clip(redact(summary), MAX_SUMMARY),
        "source": _short(signal.target or incident.source),
        "severity": _SEVERITY[incident.severity],
        "timestamp": incident.onset.isoformat(),
        "component": _short(signal.labels.get("instance") or signal.target),
        "group": _short(signal.labels.get("role") or signal.labels.get("job")),
        "class": _short(incident.source),
        "custom_details": {
            "incident_key": incident.key,
            "failing_since": incident.onset.isoformat(),
            "remediation": list(signal.remediation),
            "correlation_ids": list(signal.correlation_ids),
            "labels": signal.labels,
            "evidence": signal.evidence,
        },
    }
    body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    links = ([{"href": signal.runbook_url, "text": "Runbook"}] if signal.runbook_url else []) + [
        {"href": link.url, "text": _short(link.text)} for link in signal.links
    ]
    links = [link for link in links if is_web_url(link["href"])]
    if links:
        body["links"] = links
    body["client"] = "fleet-alerting"
    return _fit(body)


def _short(text: str | None) -> str | None:
    """A short field within MAX_FIELD characters (None when empty)."""
    if not text:
        return None
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"


def _fit(body: dict[str, Any]) -> dict[str, Any]:
    """Stay under PagerDuty's 512 KB event limit by shrinking custom_details, evidence first."""
    details = body["payload"]["custom_details"]
    for key in ("evidence", "labels", "correlation_ids", "remediation"):
        if len(json.dumps(body).encode()) <= MAX_EVENT_BYTES:
            break
        details[key] = "(omitted: event larger than 512 KB)"
    return body


class PagerDutyEvents:
    name = "PagerDuty Events API"

    def __init__(
        self, client: httpx.AsyncClient, routing_key: SecretStr, url: str, timeout: float = 10.0
    ):
        self.client = client
        self.timeout = timeout
        self._routing_key = routing_key
        self.url = url

    async def send(self, n: Notification) -> str:
        body = event(n, self._routing_key.get_secret_value())
        response, answer = await post_json(
            self.client, self.url, body, self.name, timeout=self.timeout
        )
        status = answer.get("status") if isinstance(answer, dict) else None
        if status != "success":  # a 2xx is not enough: the body says whether the event was taken
            said = excerpt(response.text, 200).replace("\n", " ")
            raise AdapterError(
                f"{self.name} answered HTTP {response.status_code}, event not taken: {said}",
                permanent=status == "invalid event",
            )
        return f"{self.name}: {body['event_action']} {status} {answer.get('dedup_key')}"
