"""`notify.oncall`: Grafana OnCall's formatted webhook and named ones (oncall_NAME)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from fleet_alerting.config.fields import FileSecret, PagerName, SendTimeout
from fleet_alerting.core.channels import Channel, named_pager
from fleet_alerting.core.model import Model


class OnCallConfig(Model):
    """Grafana OnCall "Formatted Webhook" integration; its URL embeds a token, so it is a secret."""

    webhook: FileSecret
    webhooks: dict[PagerName, FileSecret] = Field({}, max_length=10)
    timeout: SendTimeout = timedelta(seconds=10)

    def secrets(self) -> dict[str, FileSecret]:
        """Channel → integration URL: `oncall`, and `oncall_NAME` for each named one."""
        return {Channel.oncall: self.webhook} | {
            named_pager(Channel.oncall, name): url for name, url in self.webhooks.items()
        }
