"""`notify.slack`: Slack by incoming webhook or by bot token (threads), and its mirror channel."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator

from fleet_alerting.config.fields import FileSecret, HttpUrl, SendTimeout, at_most
from fleet_alerting.core.model import Duration, Model
from fleet_alerting.core.mrkdwn import MENTIONABLE

# a Slack channel id (C… public, G… private, D… direct), as the history methods need it
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")


def _slack_mention(value: str) -> str:
    if not MENTIONABLE.fullmatch(value):
        raise ValueError("expected a Slack user group id (S…), a user id (U…, W…), here or channel")
    return value


class SlackConfig(Model):
    webhook: FileSecret | None = None
    channel: str = "#operations"
    mirror_webhook: FileSecret | None = None
    mirror_channel: str = "#operations-mirror"
    timeout: SendTimeout = timedelta(seconds=10)
    # With a bot token (chat:write), incidents get a thread: first message via chat.postMessage,
    # later updates and the Fleet API event snapshot as replies. `channel`/`mirror_channel` are
    # then channel names or ids the bot is a member of; ids (C0…) with the channels:history
    # scope let a message a crashed drainer may have posted be found instead of posted twice.
    bot_token: FileSecret | None = None
    api_url: HttpUrl = "https://slack.com/api"
    # Slack allows ~1 message/s per channel; the pacing counts in every Slack claim (lease_for)
    min_interval: Annotated[Duration, at_most(timedelta(minutes=1))] = timedelta(seconds=1)
    # who the "paged" message in `channel` mentions (the on-call user group): the only mention
    # a message carries — none is ever taken from alert text
    page_mention: Annotated[str, AfterValidator(_slack_mention)] | None = None
