"""`fleet-alerting notify-test`: the path to a human, tested the way the Fleet tests its Slack flow
with `amtool alert add TestNotification`.

A clearly marked test message goes through the real outbox and the real delivery to each chosen,
configured destination (PagerDuty and Grafana OnCall: a trigger, then a resolve at once), and each
destination's outcome is reported: delivered (receipt), retrying (why) or refused (why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from fleet_alerting.config import Config
from fleet_alerting.config.checks import destination
from fleet_alerting.core.channels import Channel, pager_of
from fleet_alerting.core.incidents import (
    NOTIFY_TEST_SOURCE,
    Incident,
    Kind,
    Notification,
    State,
)
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.wording import count
from fleet_alerting.delivery.deliver import deliver
from fleet_alerting.store.database import OutboxItem, Store
from fleet_alerting.store.outbox import Destination

SOURCE = NOTIFY_TEST_SOURCE
SUMMARY = "TEST notification from fleet-alerting notify-test: no action needed"
# --to NAME → the outbox channel
DESTINATIONS = {
    "slack": Channel.slack,
    "mirror": Channel.slack_mirror,
    "pagerduty": Channel.pagerduty,
    "oncall": Channel.oncall,
}


def configured(config: Config, channel: str) -> bool:
    slack = config.notify.slack
    if channel == Channel.slack:
        return bool(slack and (slack.webhook or slack.bot_token))
    if channel == Channel.slack_mirror:
        return bool(slack and (slack.mirror_webhook or slack.bot_token))
    return getattr(config.notify, channel) is not None


def make_test_notifications(channels: Iterable[str], now: datetime) -> list[Notification]:
    """One test incident; Slack channels get an "opened", pagers a "paged" then a "resolved"."""
    key = f"{SOURCE}|{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
    signal = Signal(
        key=key,
        source=SOURCE,
        firing=True,
        severity=Severity.critical,
        summary=SUMMARY,
        target="fleet-alerting notify-test",
        evidence={"test": "yes"},
    )
    opened = Incident(
        key=key,
        source=SOURCE,
        severity=Severity.critical,
        state=State.firing,
        onset=now,
        changed_at=now,
        signal=signal,
        opened_at=now,
    )
    out = []
    for channel in channels:
        if pager_of(channel):
            paged = replace(opened, state=State.paged, paged_at=now, paged_via=(channel,))
            done = replace(
                paged,
                state=State.resolved,
                resolved_at=now,
                recovered_at=now,
                resolution="test finished",
            )
            out.append(_note(paged, channel, Kind.paged, now))
            out.append(_note(done, channel, Kind.resolved, now))
        else:
            out.append(_note(opened, channel, Kind.opened, now))
    return out


def _note(incident: Incident, channel: str, kind: Kind, now: datetime) -> Notification:
    ident = f"{incident.key}|{kind}|{channel}"
    return Notification(
        id=ident, channel=channel, kind=kind, at=now, incident=incident, one_off=True
    )


class _Only:
    """The outbox as the drain sees it, limited to the test's own messages: a test never sends
    what real runs queued (they deliver it themselves). The drain claims through the store's
    `queue`, so the real messages are excluded there, by row id."""

    def __init__(self, store: Store, ids: set[str]):
        self.outbox = store.queue  # not `queue`: drain() would take that for the outbox
        self.others = {i.id for i in store.outbox(("queued",)) if i.notification.id not in ids}

    def claim_next(
        self,
        channel: str,
        owner: str,
        now: datetime,
        lease: timedelta,
        exclude: Iterable[int] = (),
        longest: timedelta | None = None,
    ) -> OutboxItem | None:
        """Outbox.claim_next without the real runs' messages."""
        others = {*exclude, *self.others}
        return self.outbox.claim_next(channel, owner, now, lease, others, longest)

    def held(self, channel: str, now: datetime, exclude: Iterable[int] = ()) -> list[OutboxItem]:
        return self.outbox.held(channel, now, {*exclude, *self.others})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outbox, name)


@dataclass(frozen=True)
class Outcome:
    channel: str
    kind: Kind
    result: str  # delivered | retrying | refused | held
    detail: str


async def send_test(
    config: Config, channels: list[str], now: Callable[[], datetime]
) -> list[Outcome]:
    notifications = make_test_notifications(channels, now())
    with Store(config.state) as store:
        store.record(Evaluation([], notifications), now())
        async with httpx.AsyncClient(timeout=10) as client:
            only = _Only(store, {n.id for n in notifications})
            report = await deliver(
                config,
                store,
                client,
                now=now,
                attempts_per_run=1,
                outbox=only,  # type: ignore[arg-type]
            )
        retrying = {i.notification.channel for i, _ in report.retrying}
        waiting = [
            (i, why_held(config, store.queue.destination(i.notification.channel), i, now()))
            if i.notification.channel not in retrying
            else (i, "waits for the trigger")
            for i in report.held
        ]
    outcomes = [
        Outcome(i.notification.channel, i.notification.kind, "delivered", r) for i, r in report.sent
    ]
    outcomes += [
        Outcome(i.notification.channel, i.notification.kind, "retrying", why)
        for i, why in report.retrying
    ]
    outcomes += [
        Outcome(i.notification.channel, i.notification.kind, "refused", why)
        for i, why in report.dead
    ]
    outcomes += [Outcome(i.notification.channel, i.notification.kind, "held", why)
                 for i, why in waiting]  # fmt: skip
    order = {n.id: k for k, n in enumerate(notifications)}
    ids = {(n.channel, n.kind): n.id for n in notifications}
    return sorted(outcomes, key=lambda o: order[ids[(o.channel, o.kind)]])


def why_held(config: Config, backoff: Destination, item: OutboxItem, now: datetime) -> str:
    """Why a test message was not sent: its destination backs off after an earlier failure
    (this test's or another's), or it waits for the trigger before it."""
    until = backoff.blocked_until
    if until is None or until <= now:
        return "waits for the trigger"
    failures = f" after {count(backoff.failures, 'failure')} in a row" if backoff.failures else ""
    last = f" (last: {backoff.last_error})" if backoff.last_error else ""
    return (
        f"{destination(config, backoff.name)} backs off until {until:%H:%M:%S}Z{failures}{last}; "
        f"outbox #{item.id}, sent by the first run after then — "
        f"run notify-test again after {until:%H:%M:%S}Z"
    )


def describe(config: Config, outcome: Outcome) -> str:
    name = next(k for k, v in DESTINATIONS.items() if v == outcome.channel)
    step = {Kind.paged: " trigger", Kind.resolved: " resolve"}.get(outcome.kind, "")
    where = destination(config, outcome.channel)
    if outcome.result == "delivered":
        text = f"delivered ({outcome.detail})"
    elif outcome.result == "retrying":
        text = f"retrying ({outcome.detail}); stays queued, the next run retries it"
    elif outcome.result == "refused":
        text = f"refused ({outcome.detail})"
    else:
        text = f"not sent yet ({outcome.detail}); stays queued"
    return f"{name}{step} → {where}: {text}"
