"""`notify.pagerduty`: the Events API v2, its routing key and named ones (pagerduty_NAME)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from fleet_alerting.config.fields import FileSecret, HttpUrl, PagerName, SendTimeout
from fleet_alerting.core.channels import Channel, named_pager
from fleet_alerting.core.model import Model


class PagerDutyConfig(Model):
    routing_key: FileSecret
    routing_keys: dict[PagerName, FileSecret] = Field({}, max_length=10)
    url: HttpUrl = "https://events.pagerduty.com/v2/enqueue"
    timeout: SendTimeout = timedelta(seconds=10)

    def secrets(self) -> dict[str, FileSecret]:
        """Channel → routing key: `pagerduty`, and `pagerduty_NAME` for each named one."""
        return {Channel.pagerduty: self.routing_key} | {
            named_pager(Channel.pagerduty, name): key for name, key in self.routing_keys.items()
        }
