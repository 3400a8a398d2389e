"""The destinations a notification goes to: Slack, its mirror, and the pagers with their named
services (`pagerduty_secondary` is `notify.pagerduty.routing_keys.secondary`).

A channel is a plain string in the store and in config; `Channel` names the fixed ones, and
`named_pager` builds a named pager's. Compare and key with either: a member equals its value.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field


class Channel(StrEnum):
    slack = "slack"
    slack_mirror = "slack_mirror"
    pagerduty = "pagerduty"
    oncall = "oncall"

    def __repr__(self) -> str:  # quoted like the plain channel string it stands for
        return repr(self.value)


PAGERS = (Channel.pagerduty, Channel.oncall)
SLACK_CHANNELS = (Channel.slack, Channel.slack_mirror)
# a configured pager by name: pagerduty_secondary is notify.pagerduty.routing_keys.secondary
PAGER_NAME = r"[a-z0-9][a-z0-9_]{0,39}"
DESTINATION = re.compile(rf"slack|slack_mirror|(?:pagerduty|oncall)(?:_{PAGER_NAME})?")
DESTINATION_PATTERN = rf"^(?:{DESTINATION.pattern})$"
Destination = Annotated[str, Field(pattern=DESTINATION_PATTERN)]


def named_pager(pager: Channel, name: str) -> str:
    """The channel of a pager's service configured as `name` (pagerduty, secondary →
    pagerduty_secondary)."""
    return f"{pager}_{name}"


def pager_of(channel: str) -> Channel | None:
    """The pager a channel pages (pagerduty_secondary → pagerduty), None for Slack."""
    for pager in PAGERS:
        if channel == pager or channel.startswith(pager + "_"):
            return pager
    return None


def pager_key(channel: str) -> str | None:
    """The configured name of a named pager channel (pagerduty_secondary → secondary); None for
    the pager's own `routing_key` / `webhook`."""
    pager = pager_of(channel)
    return None if pager is None or channel == pager else channel.removeprefix(pager + "_")
