"""Channels: one notifier per configured destination, each with its configured timeout.

Fail closed: a channel the config does not configure has no notifier (config loading refuses a
policy naming one); the local outbox file is used only with `notify.dry_run: true`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import httpx

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import SecretError, SecretRef
from fleet_alerting.core.channels import Channel
from fleet_alerting.core.incidents import Notification
from fleet_alerting.core.signals import Severity
from fleet_alerting.delivery.notifiers.local_file import LocalOutbox
from fleet_alerting.delivery.notifiers.oncall import OnCallWebhook
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_api import (
    NO_THREAD_NOTE,
    Pacer,
    SlackApi,
    SlackWebhookIncident,
    ThreadStore,
    requests_per_send,
)
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.delivery.snapshot import make_snapshot
from fleet_alerting.http.errors import AdapterError

CHANNELS = tuple(Channel)


class Notifier(Protocol):
    name: str

    async def send(self, n: Notification) -> str: ...


@runtime_checkable
class Confirms(Protocol):
    """A notifier that can look at its destination for a message an earlier attempt may have
    delivered (a drainer killed after sending, a timed-out answer) and sends only what is not
    there. Looking costs a request, so the drain asks only for messages in doubt."""

    async def send_in_doubt(self, n: Notification, since: datetime) -> str: ...


class Unavailable:
    """A channel whose configuration is broken (e.g. missing secret file): keep its messages
    queued and say why, rather than losing them or crashing the run."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    async def send(self, n: Notification) -> str:
        raise AdapterError(f"{self.name}: {self.reason}", permanent=False)


def build_notifiers(
    config: Config, client: httpx.AsyncClient, store: ThreadStore | None = None
) -> dict[str, Notifier]:
    """Channel → notifier, for the channels the config configures (all of them, to the local
    file, in a dry run). With a Slack bot token and a `store`, Slack messages of an incident form
    a thread (chat.postMessage); the mirror uses its webhook, else the bot, unthreaded."""
    notify = config.notify
    if notify.dry_run:
        named = {p for severity in Severity for p in config.policy(severity).pagers()}
        return {c: LocalOutbox(notify.outbox_file, c) for c in (*CHANNELS, *sorted(named))}
    slack = notify.slack
    notifiers: dict[str, Notifier] = {}
    snapshot = make_snapshot(config, client)

    def add(channel: str, ref: SecretRef | None, make: Callable[..., Notifier]) -> None:
        if ref is None:
            return  # not configured: no notifier (the config refuses a policy naming it)
        try:
            notifiers[channel] = make(ref.resolve())
        except SecretError as exc:
            notifiers[channel] = Unavailable(channel, str(exc))

    if slack is not None:
        pacer = Pacer(slack.min_interval.total_seconds())
        timeout = slack.timeout.total_seconds()

        def bot(channel: str, threads: ThreadStore | None, note: str | None = None):
            return lambda token: SlackApi(
                client,
                token,
                channel,
                api_url=slack.api_url,
                store=threads,
                snapshot=snapshot if threads else None,
                note=note,
                pacer=pacer,
                timeout=timeout,
                page_mention=None if note else slack.page_mention,  # the mirror mentions nobody
            )

        if slack.bot_token and (store is not None or not slack.webhook):
            add(Channel.slack, slack.bot_token, bot(slack.channel, store))
        else:
            add(
                Channel.slack,
                slack.webhook,
                lambda url: SlackWebhookIncident(
                    client,
                    url,
                    f"Slack webhook {slack.channel}",
                    note=NO_THREAD_NOTE,
                    snapshot=snapshot,
                    timeout=timeout,
                    pacer=pacer,
                    page_mention=slack.page_mention,
                ),
            )
        mirror_note = f"mirror of {slack.channel}"
        if slack.mirror_webhook:
            add(
                Channel.slack_mirror,
                slack.mirror_webhook,
                lambda url: SlackWebhook(
                    client,
                    url,
                    f"Slack webhook {slack.mirror_channel}",
                    note=mirror_note,
                    timeout=timeout,
                    pacer=pacer,
                ),
            )
        else:
            add(Channel.slack_mirror, slack.bot_token, bot(slack.mirror_channel, None, mirror_note))
    pd = notify.pagerduty
    for channel, routing_key in (pd.secrets() if pd else {}).items():
        add(
            channel,
            routing_key,
            lambda key: PagerDutyEvents(client, key, pd.url, timeout=pd.timeout.total_seconds()),
        )
    oncall = notify.oncall
    for channel, webhook in (oncall.secrets() if oncall else {}).items():
        add(
            channel,
            webhook,
            lambda url: OnCallWebhook(client, url, timeout=oncall.timeout.total_seconds()),
        )
    return notifiers


def lease_for(config: Config, max_wait: float) -> dict[str, timedelta]:
    """Seconds a claim lasts, per channel: every in-run attempt at its worst — each request it
    may make timing out, its pacing, the wait before the next attempt — with a margin. A drainer
    killed while sending leaves its message for this long; a send still going at 90 % of it
    stops and is tried again in doubt (drain.py)."""
    notify = config.notify
    fleet = 5.0 if config.fleet_api is None else config.fleet_api.timeout.total_seconds()

    def lease(requests: int, timeout: float, pacing: float = 0.0) -> float:
        return notify.attempts_per_run * (requests * timeout + pacing + max_wait) + 30.0

    leases = {channel: lease(1, 10.0) for channel in CHANNELS}  # the local file of a dry run
    for pager in (notify.pagerduty, notify.oncall):
        for channel in pager.secrets() if pager is not None else ():
            leases[channel] = lease(1, pager.timeout.total_seconds())
    slack = notify.slack
    if slack is not None and not notify.dry_run:
        timeout, pacing = slack.timeout.total_seconds(), slack.min_interval.total_seconds()
        for channel, (requests, posts) in requests_per_send(slack).items():
            leases[channel] = lease(requests, timeout, posts * pacing)
        leases[Channel.slack] += fleet  # the snapshot's events, fetched once per run
    return {channel: timedelta(seconds=seconds) for channel, seconds in leases.items()}
