"""Draining the outbox: deliver what is due, retry what may succeed later, keep what never will.

Per run each notification gets a few attempts with backoff (Retry-After honoured); still failing,
it stays queued for the next run, until `give_up_after` turns it into a dead letter. Permanent
errors (4xx other than 408/429) are dead letters at once, with the reason. Notifications of one
incident to one channel keep their order: a later one waits while an earlier one is queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import SecretError, SecretRef, redact
from fleet_alerting.core.incidents import Notification
from fleet_alerting.delivery.notifiers.local_file import LocalOutbox
from fleet_alerting.delivery.notifiers.oncall import OnCallWebhook
from fleet_alerting.delivery.notifiers.pagerduty import PagerDutyEvents
from fleet_alerting.delivery.notifiers.slack_api import (
    NO_THREAD_NOTE,
    Pacer,
    SlackApi,
    SlackWebhookIncident,
)
from fleet_alerting.delivery.notifiers.slack_webhook import SlackWebhook
from fleet_alerting.delivery.snapshot import make_snapshot
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.http.retry import with_retries
from fleet_alerting.store.sqlite import OutboxItem, Store

MAX_WAIT = 30.0  # longest in-run wait, even if Retry-After asks for more


class Notifier(Protocol):
    name: str

    async def send(self, n: Notification) -> str: ...


class Unavailable:
    """A channel whose configuration is broken (e.g. missing secret file): keep its messages
    queued and say why, rather than losing them or crashing the run."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    async def send(self, n: Notification) -> str:
        raise AdapterError(f"{self.name}: {self.reason}", permanent=False)


def build_notifiers(
    config: Config, client: httpx.AsyncClient, store: Store | None = None
) -> dict[str, Notifier]:
    """Channel → notifier. With a Slack bot token and a `store`, Slack messages of an incident
    form a thread (chat.postMessage); the mirror uses its webhook, else the bot, unthreaded."""
    notify = config.notify
    slack = notify.slack
    notifiers: dict[str, Notifier] = {}
    snapshot = make_snapshot(config, client)

    def secret_or_unavailable(
        channel: str, ref: SecretRef | None, make: Callable[..., Notifier]
    ) -> None:
        if ref is None:
            notifiers[channel] = LocalOutbox(notify.outbox_file, channel)
            return
        try:
            notifiers[channel] = make(ref.resolve())
        except SecretError as exc:
            notifiers[channel] = Unavailable(channel, str(exc))

    pacer = Pacer(slack.min_interval.total_seconds()) if slack else None

    def bot(channel: str, threads: Store | None, note: str | None = None):
        return lambda token: SlackApi(
            client,
            token,
            channel,
            api_url=slack.api_url,
            store=threads,
            snapshot=snapshot if threads else None,
            note=note,
            pacer=pacer,
        )

    if slack and slack.bot_token and store is not None:
        secret_or_unavailable("slack", slack.bot_token, bot(slack.channel, store))
    else:
        secret_or_unavailable(
            "slack",
            slack.webhook if slack else None,
            lambda url: SlackWebhookIncident(
                client,
                url,
                f"Slack webhook {slack.channel}",
                note=NO_THREAD_NOTE,
                snapshot=snapshot,
            ),
        )
    mirror_note = f"mirror of {slack.channel}" if slack else None
    if slack and slack.bot_token and not slack.mirror_webhook:
        secret_or_unavailable(
            "slack_mirror", slack.bot_token, bot(slack.mirror_channel, None, mirror_note)
        )
    else:
        secret_or_unavailable(
            "slack_mirror",
            slack.mirror_webhook if slack else None,
            lambda url: SlackWebhook(
                client, url, f"Slack webhook {slack.mirror_channel}", note=mirror_note
            ),
        )
    pd = notify.pagerduty
    secret_or_unavailable(
        "pagerduty",
        pd.routing_key if pd else None,
        lambda key: PagerDutyEvents(client, key, pd.url),
    )
    oncall = notify.oncall
    secret_or_unavailable(
        "oncall", oncall.webhook if oncall else None, lambda url: OnCallWebhook(client, url)
    )
    return notifiers


@dataclass
class DrainReport:
    sent: list[tuple[OutboxItem, str]] = field(default_factory=list)
    retrying: list[tuple[OutboxItem, str]] = field(default_factory=list)
    dead: list[tuple[OutboxItem, str]] = field(default_factory=list)
    held: list[OutboxItem] = field(default_factory=list)  # waiting behind an earlier message


def next_attempt_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 1800))


async def drain(
    store: Store,
    notifiers: Mapping[str, Notifier],
    now: Callable[[], datetime],
    *,
    attempts_per_run: int = 3,
    give_up_after: timedelta = timedelta(hours=24),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DrainReport:
    report = DrainReport()
    blocked: set[tuple[str, str]] = set()
    for item in store.outbox(("queued",)):
        n = item.notification
        lane = (n.incident.key, n.channel)
        if item.next_attempt_at > now():
            blocked.add(lane)
            continue
        if lane in blocked:
            report.held.append(item)
            continue
        notifier = notifiers.get(n.channel) or Unavailable(n.channel, "no such channel configured")
        attempts, error = item.attempts, None

        def counted() -> None:
            nonlocal attempts
            attempts += 1

        try:
            receipt = await with_retries(
                lambda n=n, notifier=notifier: notifier.send(n),
                attempts_per_run,
                max_wait=MAX_WAIT,
                sleep=sleep,
                on_attempt=counted,
            )
        except AdapterError as exc:
            error = exc
        else:
            store.mark_sent(item.id, attempts, receipt)
            report.sent.append((item, receipt))
        if error is None:
            continue
        reason = redact(str(error))
        if error.permanent:
            store.mark_dead(item.id, attempts, f"permanent: {reason}")
            report.dead.append((item, reason))
        elif now() - item.created_at >= give_up_after:
            store.mark_dead(item.id, attempts, f"gave up after {attempts} attempts: {reason}")
            report.dead.append((item, reason))
        else:
            store.mark_retry(item.id, attempts, now() + next_attempt_delay(attempts), reason)
            report.retrying.append((item, reason))
            blocked.add(lane)
    return report
