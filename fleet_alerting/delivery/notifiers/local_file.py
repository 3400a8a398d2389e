"""The local outbox: JSON lines in a file, used only for a dry run (`notify.dry_run: true`).

Each line holds what the real channel would have received (routing keys left out), so an operator
can read exactly what Slack or PagerDuty would have shown.
"""

from __future__ import annotations

import json
from pathlib import Path

from fleet_alerting.core.channels import Channel, pager_of
from fleet_alerting.core.incidents import Notification
from fleet_alerting.delivery.notifiers import oncall, pagerduty
from fleet_alerting.delivery.notifiers import slack_webhook as slack


class LocalOutbox:
    def __init__(self, path: Path, channel: str):
        self.path = path
        self.name = f"local outbox {path} ({channel}, dry run)"
        self.channel = channel

    async def send(self, n: Notification) -> str:
        pager = pager_of(n.channel)
        if pager == Channel.oncall:
            payload = oncall.payload(n)
            text = f"{payload['state']}: {payload['title']}"
        elif pager == Channel.pagerduty:
            payload = pagerduty.event(n, routing_key="(not configured)")
            payload.pop("routing_key")
            text = payload.get("payload", {}).get("summary", f"resolve {payload['dedup_key']}")
        else:
            payload = slack.render(n)
            text = payload["text"]
        line = {
            "at": n.at.isoformat(),
            "channel": n.channel,
            "kind": n.kind,
            "incident": n.incident.key,
            "text": text,
            "payload": payload,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        return f"written to {self.path}"
