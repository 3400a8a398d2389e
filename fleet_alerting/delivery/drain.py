"""Draining the outbox in claimed lanes: any number of drainers, each notification sent once.

Every watch run drains (see README, "Delivery"). A drain runs one *lane* per destination (slack,
slack_mirror, pagerduty, oncall) concurrently, so a page never waits behind a slow Slack. A lane
takes the destination's due messages oldest first and *claims* each one in the store (a
compare-and-set with a lease, `store/outbox.py`) before sending it; a message claimed by another
drainer — another flow, another `run`, another host — is left to it. Notifications of one
incident to one channel keep their order: a message waits while an earlier one is queued.

A claim lasts SHORT_LEASE until its send begins and is then extended to the lane's lease; to an
idempotent receiver (PagerDuty, OnCall: a resent page is the same page) it stays short and is
renewed while sending, so a page held by a drainer that died is sent again by the next run within
SHORT_LEASE. No lane waits on another drainer's claim.

Per run each notification gets a few attempts through the one retry loop (`http/retry.py`,
Retry-After honoured); still failing, it stays queued and the *destination* backs off in the store
(Retry-After, consecutive failures), which every drainer honours across runs. Permanent errors
(4xx other than 408/429) are dead letters at once; retryable ones after `give_up_after`. An
unexpected error (an OSError of the local file, "database is locked") never stops the other
lanes: the message is retried later and parked as a dead letter with its reason after
`park_after` such errors.

A message *in doubt* — its claim took over the expired lease of a drainer that may have sent it
before dying, an attempt timed out or got a 5xx, was cut off at 90 % of its claim while sending,
or ended in an unexpected error (after a post, say) — goes to a notifier that can look at its
destination (`Confirms`: Slack's Web API) through `send_in_doubt`, which sends only what is not
there yet;
other notifiers send it again (PagerDuty/OnCall fold it by dedup key; see README, "Delivery").

A Slack "paged" message goes out only once the pager accepted the page: it waits for the
incident's page to each pager; a page that was refused or given up turns it into a loud
"PAGING FAILED via pagerduty: …" message and a warning in the run's report. A page still owed
after STUCK_PAGE_AFTER that this run does not send (or another page of it dead) makes it
"PAGING DELAYED via pagerduty: …", told again ("Paged after all", PAGING FAILED) once the page
ends: the Record stage queues that in the transaction recording the page's end.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from fleet_alerting.config.secrets import redact
from fleet_alerting.core.channels import pager_of
from fleet_alerting.core.incidents import Notification
from fleet_alerting.delivery.channels import (
    CHANNELS,
    Notifier,
    Unavailable,
    build_notifiers,
    lease_for,
)
from fleet_alerting.delivery.stages import (
    CLAIM_SHARE,
    MAX_WAIT,
    DestinationState,
    DrainReport,
    Gate,
    LaneSettings,
    Record,
    Send,
    Stop,
    db,
)
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.outbox import Outbox, OutboxItem

__all__ = [
    "CHANNELS",
    "MAX_WAIT",
    "DrainReport",
    "Notifier",
    "Unavailable",
    "build_notifiers",
    "drain",
    "lease_for",
]

DEFAULT_LEASE = timedelta(minutes=3)
# idempotent receivers (a resent page is the same page): a short claim, renewed while sending
SHORT_LEASE = timedelta(seconds=20)
RENEWALS_PER_LEASE = 4


def drainer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def drain(
    store: Any,
    notifiers: Mapping[str, Notifier],
    now: Callable[[], datetime],
    *,
    attempts_per_run: int = 3,
    give_up_after: timedelta = timedelta(hours=24),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    lease: timedelta | Mapping[str, timedelta] = DEFAULT_LEASE,
    park_after: int = 3,
    paged_wait: float = 30.0,
    owner: str | None = None,
    short_claims: Collection[str] | None = None,
) -> DrainReport:
    """Deliver what is due, every destination in its own lane, concurrently. `store` is a
    fleet_alerting.store.database.Store (its `queue`) or an Outbox. `lease`: how long a send may
    hold its claim, one for every lane or per channel (`lease_for`). A message is claimed for
    SHORT_LEASE at first (a drainer that dies while it only looks at it frees it soon); a send
    extends that to `lease`, except to the `short_claims` channels (idempotent receivers; by
    default every pager channel, named ones too), whose claim is renewed every SHORT_LEASE / 4
    while they send: a drainer that dies frees their messages within SHORT_LEASE."""
    outbox: Outbox = getattr(store, "queue", store)
    report = DrainReport()
    leases = lease if isinstance(lease, Mapping) else {}
    default = lease if isinstance(lease, timedelta) else DEFAULT_LEASE

    def settings_for(channel: str) -> LaneSettings:
        budget = leases.get(channel, default)
        return LaneSettings(
            attempts_per_run, give_up_after, sleep, budget, park_after, paged_wait, now,
            min(budget, SHORT_LEASE), short(channel),
        )  # fmt: skip

    def short(channel: str) -> bool:
        return pager_of(channel) is not None if short_claims is None else channel in short_claims

    owner = owner or drainer_id()
    try:
        channels = await asyncio.to_thread(outbox.channels)
    except sa.exc.OperationalError as exc:
        report.warnings.append(f"outbox unreadable, nothing delivered this run: {_db_error(exc)}")
        report.store_errors.append(_db_error(exc))
        return report
    running = set(channels)  # a Slack "paged" message waits only on a lane still going

    async def lane(channel: str) -> None:
        settings = settings_for(channel)
        try:
            await _Lane(
                outbox, channel, notifiers.get(channel), owner, settings, report, running
            ).run()
        finally:
            running.discard(channel)

    await asyncio.gather(*(lane(channel) for channel in channels))
    return report


class _Lane:
    """One channel's messages in this run: each through the stages (gate → in-doubt check →
    send with retry → record) while its claim is kept."""

    def __init__(
        self,
        outbox: Outbox,
        channel: str,
        notifier: Notifier | None,
        owner: str,
        settings: LaneSettings,
        report: DrainReport,
        running: Collection[str],
    ):
        self.outbox = outbox
        self.channel = channel
        self.notifier = notifier or Unavailable(channel, "no such channel configured")
        self.owner = owner
        self.s = settings
        self.report = report
        self.destination = DestinationState(outbox, channel, settings)
        self.gate = Gate(
            outbox, channel, owner, settings, self.destination, report.held, running,
            report.withdrawn,
        )  # fmt: skip
        self.record = Record(
            outbox, channel, owner, settings, self.notifier.name, self.destination, report
        )

    async def run(self) -> None:
        try:
            while (claimed := await self.gate.next()) is not None:
                await self._deliver(*claimed)
        except Stop:
            pass
        except (sa.exc.OperationalError, StoreError) as exc:  # locked, gone: the others go on
            self.report.warnings.append(f"{self.channel}: lane stopped: {_db_error(exc)}")
            self.report.store_errors.append(_db_error(exc))
            return
        except Exception as exc:  # a bug must not silence the other destinations either
            reason = redact(f"{type(exc).__name__}: {exc}")
            self.report.warnings.append(f"{self.channel}: lane stopped: {reason}")
            return
        try:
            held = await db(self.outbox.held, self.channel, self.s.now(), self.gate.done)
        except (sa.exc.OperationalError, StoreError) as exc:
            self.report.store_errors.append(_db_error(exc))
            return
        self.report.held.extend(held)

    async def _deliver(self, item: OutboxItem, n: Notification) -> None:
        # never sending past the claim: once it runs out another drainer may take it over (a
        # short claim that could not be renewed stops further attempts, see _keep_claim)
        claim = asyncio.timeout(self.s.lease.total_seconds() * CLAIM_SHARE)
        if not await self._extend_claim(item.id):
            return  # taken over meanwhile: the other drainer has it
        going = replace(n, sending_at=self.s.now())  # a text sent late says as of when
        send = Send(self.notifier, going, item, self.s, self.destination.refused)
        short = self.s.renews and self.s.claim < self.s.lease
        keeper = asyncio.create_task(self._keep_claim(item.id, send.claim_lost)) if short else None
        try:
            await self.record(item, await send.run(claim))
        finally:
            if keeper is not None:
                keeper.cancel()
            self._collect_warnings()

    async def _extend_claim(self, item_id: int) -> bool:
        """Before a send: a claim to a receiver that is not idempotent is extended to the whole
        send's lease (a short one is renewed while sending instead). False: it was lost."""
        if self.s.renews or self.s.claim >= self.s.lease:
            return True
        until = self.s.now() + self.s.lease
        return await db(self.outbox.renew, item_id, self.owner, until)

    async def _keep_claim(self, item_id: int, lost: asyncio.Event) -> None:
        """Renew a short claim while its message is being sent (a drainer that dies stops
        renewing: its message is free again within one short claim). A claim that could not be
        renewed sets `lost`: the send makes no further attempt."""
        every = self.s.claim.total_seconds() / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(every)
            try:
                held = await db(self.outbox.renew, item_id, self.owner, self.s.now() + self.s.claim)
            except sa.exc.OperationalError:
                continue  # locked for a moment: the claim still has most of its time
            except Exception:
                held = False  # the store failed: the claim will lapse, another may take it
            if not held:
                lost.set()
                return

    def _collect_warnings(self) -> None:
        notes = getattr(self.notifier, "warnings", None)  # e.g. Slack: history not readable
        if notes:
            self.report.warnings.extend(f"{self.channel}: {note}" for note in notes)
            notes.clear()


def _db_error(exc: sa.exc.OperationalError | StoreError) -> str:
    """A database error in one line (a StoreError says which store, and what to do)."""
    orig = getattr(exc, "orig", None)
    return redact(str(orig) if orig is not None else str(exc))
