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
"PAGING FAILED via pagerduty: …" message and a warning in the run's report.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from fleet_alerting.config.secrets import redact
from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.escalation import current_pages
from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.delivery.channels import (
    CHANNELS,
    Confirms,
    Notifier,
    Unavailable,
    build_notifiers,
    lease_for,
)
from fleet_alerting.http.errors import MAX_RETRY_AFTER, AdapterError
from fleet_alerting.http.retry import with_retries
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.outbox import Outbox, OutboxItem, Page

__all__ = [
    "CHANNELS",
    "DrainReport",
    "Notifier",
    "Unavailable",
    "build_notifiers",
    "drain",
    "lease_for",
]

log = logging.getLogger("fleet_alerting.delivery")
MAX_WAIT = 30.0  # longest in-run wait, even if Retry-After asks for more
DEFAULT_LEASE = timedelta(minutes=3)
# idempotent receivers (a resent page is the same page): a short claim, renewed while sending
SHORT_LEASE = timedelta(seconds=20)
RENEWALS_PER_LEASE = 4
CLAIM_SHARE = 0.9  # a send stops (in doubt, tried again) once this share of its lease passed
DESTINATION_RECHECK = 0.5  # seconds
PAGE_POLL = 0.02  # seconds between looks at a page a Slack "paged" message waits for
MAX_SKIPPED_PER_RUN = 5000  # a lane's run ends after this many messages (bounds `done`)
T = TypeVar("T")


@dataclass
class DrainReport:
    sent: list[tuple[OutboxItem, str]] = field(default_factory=list)
    retrying: list[tuple[OutboxItem, str]] = field(default_factory=list)
    dead: list[tuple[OutboxItem, str]] = field(default_factory=list)
    held: list[OutboxItem] = field(default_factory=list)  # waiting: earlier message, backoff, pager
    warnings: list[str] = field(default_factory=list)  # for the run's artifact (paging failed…)
    store_errors: list[str] = field(default_factory=list)  # the store failed: lanes stopped
    owed_pages: list[OutboxItem] = field(default_factory=list)  # queued pages that failed before


def next_attempt_delay(attempts: int) -> timedelta:
    """When a message that failed `attempts` times is due again."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 1800))


def destination_backoff(failures: int, retry_after: float | None) -> timedelta:
    """How long a destination rests after its `failures`-th consecutive failure: what it asked
    for (Retry-After), else 30 s doubling up to 10 min."""
    if retry_after is not None:
        return timedelta(seconds=retry_after)
    return timedelta(seconds=min(30 * 2 ** max(failures - 1, 0), 600))


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

    def settings_for(channel: str) -> _Settings:
        budget = leases.get(channel, default)
        return _Settings(
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
    lanes = [
        _Lane(outbox, channel, notifiers.get(channel), owner, settings_for(channel), report)
        for channel in channels
    ]
    await asyncio.gather(*(lane.run() for lane in lanes))
    return report


@dataclass(frozen=True)
class _Settings:
    attempts_per_run: int
    give_up_after: timedelta
    sleep: Callable[[float], Awaitable[None]]
    lease: timedelta
    park_after: int
    paged_wait: float
    now: Callable[[], datetime]
    claim: timedelta  # what a claim holds at first (and each renewal of a short one)
    renews: bool  # an idempotent receiver: the claim stays short, renewed while sending


class _Stop(Exception):
    """The lane stops for this run (its destination backs off)."""


class _TakenOver(Exception):
    """The message's short claim was lost while it was being sent: another drainer has it, so
    this one tries no more (a retried trigger could otherwise follow the other's resolve)."""


class _Later(Exception):
    """The destination asked for a pause longer than a run waits: no more tries in this run."""

    def __init__(self, error: AdapterError):
        super().__init__(str(error))
        self.error = error


class _Lane:
    def __init__(
        self,
        outbox: Outbox,
        channel: str,
        notifier: Notifier | None,
        owner: str,
        settings: _Settings,
        report: DrainReport,
    ):
        self.outbox = outbox
        self.channel = channel
        self.notifier = notifier or Unavailable(channel, "no such channel configured")
        self.owner = owner
        self.s = settings
        self.report = report
        self.done: set[int] = set()  # handled (or deliberately left) by this lane in this run
        self.troubled = True  # the destination may have backoff state to clear after a success
        self.checked_at = -DESTINATION_RECHECK
        self.deferred: set[int] = set()  # Slack "paged" messages whose page is being sent
        self.deferred_until = time.monotonic() + settings.paged_wait

    async def db(self, call: Callable[..., T], *args: Any) -> T:
        """A store call off the event loop, so one lane waiting on a lock never stalls another."""
        return await asyncio.to_thread(call, *args)

    async def run(self) -> None:
        try:
            await self._run()
        except _Stop:
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
            held = await self.db(self.outbox.held, self.channel, self.s.now(), self.done)
        except (sa.exc.OperationalError, StoreError) as exc:
            self.report.store_errors.append(_db_error(exc))
            return
        self.report.held.extend(held)

    async def _run(self) -> None:
        while len(self.done) < MAX_SKIPPED_PER_RUN:
            await self._wait_for_destination()
            item = await self.db(
                self.outbox.claim_next,
                self.channel,
                self.owner,
                self.s.now(),
                self.s.claim,
                self.done,
            )
            if item is None and self.deferred:  # "paged" messages waiting for their pages
                await asyncio.sleep(PAGE_POLL)
                self.done -= self.deferred
                self.deferred.clear()
                continue
            if item is None:
                return  # nothing claimable: done, or the rest is another drainer's
            self.done.add(item.id)
            await self._deliver(item)

    async def _wait_for_destination(self) -> None:
        """Honour the destination's backoff, whichever drainer set it. Read again at most every
        DESTINATION_RECHECK seconds while all goes well (one read per message is wasted work)."""
        if not self.troubled and time.monotonic() < self.checked_at + DESTINATION_RECHECK:
            return
        self.checked_at = time.monotonic()
        destination = await self.db(self.outbox.destination, self.channel)
        self.troubled = destination.failures > 0 or destination.blocked_until is not None
        if destination.blocked_until is None:
            return
        rest = (destination.blocked_until - self.s.now()).total_seconds()
        if rest <= 0 or rest > MAX_RETRY_AFTER:  # further off than any capped Retry-After: stale
            return
        if rest > MAX_WAIT or destination.failures > 0:
            raise _Stop  # backing off: the next run (or drainer) takes it up
        await self.s.sleep(rest)  # a short Retry-After another drainer was given

    async def _deliver(self, item: OutboxItem) -> None:
        n = item.notification
        if n.kind == Kind.paged and self.channel in SLACK_CHANNELS and n.incident.paged_via:
            outcome = await self._page_outcome(item)
            if not isinstance(outcome, Notification):  # say "paged" only once the pager answered
                await self.db(self.outbox.release, item.id, self.owner)
                if outcome == "wait" and time.monotonic() < self.deferred_until:
                    self.deferred.add(item.id)  # the pager lane is on it: back after the others
                else:
                    self.report.held.append(item)
                return
            n = outcome
        attempts = item.attempts
        doubt = item.in_doubt  # an earlier attempt may have delivered it: ask, where one can

        def counted() -> None:
            nonlocal attempts
            attempts += 1

        # a request may be on its way (cleared by an answer: a cut-off request keeps it set)
        sending = False
        last: AdapterError | None = None

        claim_lost = asyncio.Event()

        async def attempt() -> str:
            nonlocal doubt, sending, last
            if claim_lost.is_set():
                raise _TakenOver
            try:
                sending = True
                if doubt and isinstance(self.notifier, Confirms):
                    return await self.notifier.send_in_doubt(n, item.created_at)
                return await self.notifier.send(n)
            except AdapterError as exc:
                sending, last = False, exc
                doubt = doubt or exc.maybe_sent
                self.troubled = True
                if exc.retry_after is not None:  # tell every drainer at once
                    until = self.s.now() + timedelta(seconds=exc.retry_after)
                    await self.db(
                        self.outbox.destination_blocked,
                        self.channel,
                        self.s.now(),
                        until,
                        str(exc),
                    )
                    if exc.retry_after > MAX_WAIT:
                        raise _Later(exc) from None
                raise

        # never sending past the claim: once it runs out another drainer may take it over (a
        # short claim that could not be renewed stops further attempts, see _keep_claim)
        claim = asyncio.timeout(self.s.lease.total_seconds() * CLAIM_SHARE)
        if not await self._extend_claim(item.id):
            return  # taken over meanwhile: the other drainer has it
        short = self.s.renews and self.s.claim < self.s.lease
        keeper = asyncio.create_task(self._keep_claim(item.id, claim_lost)) if short else None
        try:
            async with claim:
                receipt = await with_retries(
                    attempt,
                    self.s.attempts_per_run,
                    max_wait=MAX_WAIT,
                    sleep=self.s.sleep,
                    on_attempt=counted,
                )
        except TimeoutError as exc:
            if not claim.expired():  # not the claim's: unexpected, like any other error
                await self._unexpected(item, attempts, exc, True)
            elif sending or last is None:  # cut off in the middle of a send: it may have arrived
                cut = f"still sending when {CLAIM_SHARE:.0%} of its claim had passed: tried again"
                cut_off = AdapterError(cut, permanent=False, maybe_sent=True)
                await self._failed(item, attempts, cut_off, True)
            else:  # cut off while waiting to retry: the last answer stands
                await self._failed(item, attempts, last, doubt)
        except AdapterError as exc:
            await self._failed(item, attempts, exc, doubt)
        except _TakenOver:
            return  # the drainer that holds it now delivers it
        except _Later as later:
            await self._failed(item, attempts, later.error, doubt)
        except Exception as exc:  # anything else: retry later, then park it
            # in doubt: it may have come after a post (the thread could not be recorded)
            await self._unexpected(item, attempts, exc, True)
        else:
            await self._sent(item, attempts, receipt)
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
        return await self.db(self.outbox.renew, item_id, self.owner, until)

    async def _keep_claim(self, item_id: int, lost: asyncio.Event) -> None:
        """Renew a short claim while its message is being sent (a drainer that dies stops
        renewing: its message is free again within one short claim). A claim that could not be
        renewed sets `lost`: the send makes no further attempt."""
        every = self.s.claim.total_seconds() / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(every)
            try:
                held = await self.db(
                    self.outbox.renew, item_id, self.owner, self.s.now() + self.s.claim
                )
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

    async def _sent(self, item: OutboxItem, attempts: int, receipt: str) -> None:
        # The crash window: the destination has the message, the store does not know yet. Marked
        # on the event loop itself, in the same step as the answer arrived (no hand-over to a
        # thread, no await in between): one small UPDATE commit.
        for pause in (0.05, 0.2, 1.0, None):
            try:
                self.outbox.mark_sent(item.id, self.owner, attempts, receipt)
                break
            except sa.exc.OperationalError:
                if pause is None:
                    raise
                await asyncio.sleep(pause)
        self.report.sent.append((item, receipt))
        if self.troubled:
            await self.db(self.outbox.destination_ok, self.channel, self.s.now())
            self.troubled = False

    async def _failed(
        self, item: OutboxItem, attempts: int, error: AdapterError, doubt: bool
    ) -> None:
        reason = redact(str(error))
        now = self.s.now()
        if error.permanent:
            await self._dead(item, attempts, f"permanent: {reason}", reason)
            return
        destination = await self.db(
            self.outbox.destination_failed,
            self.channel,
            now,
            now + destination_backoff(1, error.retry_after),
            reason,
        )
        if destination.failures > 1 and error.retry_after is None:  # consecutive: back off more
            until = now + destination_backoff(destination.failures, None)
            await self.db(self.outbox.destination_blocked, self.channel, now, until, reason)
        if now - item.created_at >= self.s.give_up_after:
            await self._dead(item, attempts, f"gave up after {attempts} attempts: {reason}", reason)
        else:
            next_at = now + next_attempt_delay(attempts)
            await self.db(
                self.outbox.mark_retry, item.id, self.owner, attempts, next_at, reason, None, doubt
            )
            self.report.retrying.append((item, reason))
        raise _Stop

    async def _unexpected(
        self, item: OutboxItem, attempts: int, error: Exception, doubt: bool
    ) -> None:
        reason = redact(f"{type(error).__name__}: {error}")
        errors = item.errors + 1
        if errors >= self.s.park_after:
            why = f"parked after {errors} unexpected errors: {reason}"
            await self.db(self.outbox.mark_dead, item.id, self.owner, attempts, why, errors)
            log.error("dead letter: %s (%s): %s", self.channel, self.notifier.name, why)
            self.report.dead.append((item, why))
            self._page_warning(item, why)
            return
        next_at = self.s.now() + next_attempt_delay(errors)
        await self.db(
            self.outbox.mark_retry, item.id, self.owner, attempts, next_at, reason, errors, doubt
        )
        self.report.retrying.append((item, reason))

    async def _dead(self, item: OutboxItem, attempts: int, why: str, reason: str) -> None:
        await self.db(self.outbox.mark_dead, item.id, self.owner, attempts, why)
        log.error(
            "dead letter: %s (%s) refused %s of incident %s: %s",
            self.channel, self.notifier.name, item.notification.kind,
            item.notification.incident.key, why,
        )  # fmt: skip
        self.report.dead.append((item, reason))
        self._page_warning(item, reason)

    def _page_warning(self, item: OutboxItem, reason: str) -> None:
        n = item.notification
        if pager_of(self.channel) is not None and n.kind == Kind.paged:
            self.report.warnings.append(
                f"PAGING FAILED via {self.channel}: {reason} (incident {n.incident.key})"
            )

    async def _page_outcome(self, item: OutboxItem) -> Notification | str:
        """The Slack "paged" message as it may go out now; else "wait" while its page is due
        and its pager not backing off (a pager lane, here or in another drainer, is sending it:
        the lane comes back to it after its other messages, for up to `paged_wait` seconds), or
        "hold" (the page is retrying in a later run).

        The pages are the incident's latest `paged` rows to each pager of the step it is on
        (not earlier steps' pagers) queued before this one (the same evaluation queues pagers
        first)."""
        n = item.notification
        pagers = list(current_pages(n.incident) or n.incident.paged_via)
        pages = await self.db(self.outbox.pages_before, n.incident.key, pagers, item.id)
        pending = [p for p in pages if p.status == "queued"]
        if pending:
            return "wait" if await self._worth_waiting(pending) else "hold"
        failed = [f"{p.channel}: {_short(p.last_error)}" for p in pages if p.status == "dead"]
        if not failed:
            return n
        accepted = tuple(p.channel for p in pages if p.status == "sent")
        esc = n.incident.escalation
        pages = tuple(p for p in esc.pages if p.step != esc.step or p.channel in accepted)
        incident = replace(n.incident, paged_via=accepted, escalation=replace(esc, pages=pages))
        return replace(n, incident=incident, paging_failed="; ".join(failed))

    async def _worth_waiting(self, pending: list[Page]) -> bool:
        now = self.s.now()
        for page in pending:
            if page.next_attempt_at > now:
                return False  # retrying in a later run
            if page.held_by_other(self.owner, now):
                return False  # its drainer sends it (or died: the next run does); not waited on
            destination = await self.db(self.outbox.destination, page.channel)
            if destination.blocked_until and destination.blocked_until > now:
                return False
        return True


def _short(error: str | None) -> str:
    return (error or "unknown error").removeprefix("permanent: ")


def _db_error(exc: sa.exc.OperationalError | StoreError) -> str:
    """A database error in one line (a StoreError says which store, and what to do)."""
    orig = getattr(exc, "orig", None)
    return redact(str(orig) if orig is not None else str(exc))
