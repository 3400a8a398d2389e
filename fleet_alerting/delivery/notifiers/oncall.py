"""Grafana OnCall "Formatted Webhook" integration: a pager beside (or instead of) PagerDuty.

Recognised fields: `alert_uid` (grouping; the incident key, like PagerDuty's dedup_key), `title`,
`state` (`alerting` | `ok`; `ok` auto-resolves), `message`, `link_to_upstream_details`,
`image_url`. The integration URL embeds its token, so it is a secret reference.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from fleet_alerting.config.secrets import redact
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.core.mrkdwn import clip, is_web_url
from fleet_alerting.delivery.notifiers.pagerduty import dedup_key
from fleet_alerting.http.errors import AdapterError, check_response, transport_error

MAX_TITLE = 500
MAX_MESSAGE = 8000


def payload(n: Notification) -> dict[str, Any]:
    incident, signal = n.incident, n.incident.signal
    resolved = n.kind == Kind.resolved
    target = signal.target or incident.key
    title = f"[{incident.severity.upper()}] {signal.summary} ({target})"
    lines = [
        f"Failing since {incident.onset.isoformat()} ({format_duration(incident.duration(n.at))})",
        f"Incident: {incident.key}",
    ]
    if resolved:
        lines.insert(0, f"Resolved: {incident.resolution or 'recovered'}")
        if incident.recovery is not None and incident.recovery.evidence:
            evidence = incident.recovery.evidence.items()
            lines.insert(1, "Recovered: " + ", ".join(f"{k}: {v}" for k, v in evidence))
    if signal.remediation and not resolved:
        lines.append("Remediation:")
        lines += [f"{i}. {step}" for i, step in enumerate(signal.remediation, 1)]
    if signal.correlation_ids:
        lines.append("Correlation ids: " + ", ".join(signal.correlation_ids))
    lines += [f"{link.text}: {link.url}" for link in signal.links]
    body: dict[str, Any] = {
        "alert_uid": dedup_key(incident.key),
        # shown as written; redacted before the cut, so a secret across the cut leaves no head
        "title": clip(redact(title), MAX_TITLE),
        "state": "ok" if resolved else "alerting",
        "message": clip(redact("\n".join(lines)), MAX_MESSAGE),
    }
    urls = [signal.runbook_url or "", *(link.url for link in signal.links)]
    upstream = next((url for url in urls if is_web_url(url)), None)
    if upstream:
        body["link_to_upstream_details"] = upstream
    return body


class OnCallWebhook:
    name = "Grafana OnCall webhook"

    def __init__(self, client: httpx.AsyncClient, url: SecretStr, timeout: float = 10.0):
        self.client = client
        self.timeout = timeout
        self._url = url

    async def send(self, n: Notification) -> str:
        body = payload(n)
        try:
            response = await self.client.post(
                self._url.get_secret_value(), json=body, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        try:
            check_response(response, self.name)
        except AdapterError as exc:  # the answer may quote the URL path, i.e. the token: omit it
            raise AdapterError(
                f"{self.name} answered HTTP {response.status_code}",
                permanent=exc.permanent,
                retry_after=exc.retry_after,
                maybe_sent=exc.maybe_sent,  # a 5xx: the alert may have been taken
            ) from None
        return f"{self.name}: {body['state']} {body['alert_uid']} → HTTP {response.status_code}"
