"""One lane's delivery of a message, stage by stage (drain.py runs them, one lane per channel):

1. `Gate`: the next message that may go now — its destination not resting, the message due,
   claimed by this drainer, behind no earlier message of its incident, not a page whose
   episode resolved before its pager took it (withdrawn, `Outbox.withdraw_resolved_page`), and
   a Slack "paged" message only once its page was answered, or saying PAGING DELAYED once the
   page (or its pager, failing) has been owed for STUCK_PAGE_AFTER and is not sent in this run
   (`page_outcome`);
2. `send_once`: the in-doubt check — a message an earlier attempt may have delivered goes to a
   notifier that can look (`Confirms`) as `send_in_doubt`;
3. `Send`: the attempts of this run, through the one retry loop, within the message's claim;
4. `Record`: what came of it, in the outbox and the run's report; a page's end queues, in the
   same transaction, the follow-up of its PAGING DELAYED messages (`paging_ended`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Literal, TypeVar

import sqlalchemy as sa

from fleet_alerting.config.secrets import redact
from fleet_alerting.core.channels import SLACK_CHANNELS, pager_of
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.heartbeat import STUCK_PAGE_AFTER
from fleet_alerting.core.incidents import Incident, Kind, Notification, State
from fleet_alerting.delivery.channels import Confirms, Notifier
from fleet_alerting.delivery.in_flight import SENDS
from fleet_alerting.delivery.notifiers.slack_webhook import PAGING_DELAYED, PAGING_ENDED
from fleet_alerting.http.errors import MAX_RETRY_AFTER, AdapterError
from fleet_alerting.http.retry import with_retries
from fleet_alerting.store.outbox import (
    LONGEST_RETRY,
    WITHDRAWN,
    Destination,
    Outbox,
    OutboxItem,
    Page,
    pagers_waited_for,
)
from fleet_alerting.store.outbox import (
    dropped as dropped_by_operator,
)

log = logging.getLogger("fleet_alerting.delivery")
MAX_WAIT = 30.0  # longest in-run wait, even if Retry-After asks for more
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
    # a page whose incident resolved before its pager took it, and what followed it: not sent
    withdrawn: list[tuple[OutboxItem, str]] = field(default_factory=list)
    held: list[OutboxItem] = field(default_factory=list)  # waiting: earlier message, backoff, pager
    warnings: list[str] = field(default_factory=list)  # for the run's artifact (paging failed…)
    store_errors: list[str] = field(default_factory=list)  # the store failed: lanes stopped
    owed_pages: list[OutboxItem] = field(default_factory=list)  # queued pages that failed before


@dataclass(frozen=True)
class LaneSettings:
    attempts_per_run: int
    give_up_after: timedelta
    sleep: Callable[[float], Awaitable[None]]
    lease: timedelta
    park_after: int
    paged_wait: float
    now: Callable[[], datetime]
    claim: timedelta  # what a claim holds at first (and each renewal of a short one)
    renews: bool  # an idempotent receiver: the claim stays short, renewed while sending


class Stop(Exception):
    """The lane stops for this run (its destination backs off)."""


async def db(call: Callable[..., T], *args: object) -> T:
    """A store call off the event loop, so one lane waiting on a lock never stalls another."""
    return await asyncio.to_thread(call, *args)


def next_attempt_delay(attempts: int) -> timedelta:
    """When a message that failed `attempts` times is due again."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), LONGEST_RETRY.total_seconds()))


def destination_backoff(failures: int, retry_after: float | None) -> timedelta:
    """How long a destination rests after its `failures`-th consecutive failure: what it asked
    for (Retry-After), else 30 s doubling up to 10 min."""
    if retry_after is not None:
        return timedelta(seconds=retry_after)
    return timedelta(seconds=min(30 * 2 ** max(failures - 1, 0), 600))


def error_line(error: AdapterError) -> str:
    """The error as recorded, with the rest its destination asked for (Retry-After, capped:
    `outbox` and the destination's last error show why it rests so long)."""
    said = redact(str(error))
    if error.retry_after is None:
        return said
    rest = format_duration(timedelta(seconds=error.retry_after))
    capped = ", the longest we rest" if error.retry_after >= MAX_RETRY_AFTER else ""
    return f"{said} (Retry-After: {rest}{capped})"


class DestinationState:
    """A channel's destination as every drainer sees it: resting after failures or Retry-After
    (in the store), and whether this lane may have such state to clear after a success."""

    def __init__(self, outbox: Outbox, channel: str, settings: LaneSettings):
        self.outbox = outbox
        self.channel = channel
        self.s = settings
        self.troubled = True  # the destination may have backoff state to clear after a success
        self.checked_at = -DESTINATION_RECHECK

    async def wait(self) -> None:
        """Honour the destination's backoff, whichever drainer set it (Stop: it rests past this
        run). Read again at most every DESTINATION_RECHECK seconds while all goes well (one read
        per message is wasted work)."""
        if not self.troubled and time.monotonic() < self.checked_at + DESTINATION_RECHECK:
            return
        self.checked_at = time.monotonic()
        destination = await db(self.outbox.destination, self.channel, self.s.now())
        self.troubled = destination.failures > 0 or destination.blocked_until is not None
        if destination.blocked_until is None:
            return
        rest = (destination.blocked_until - self.s.now()).total_seconds()
        if rest <= 0 or rest > MAX_RETRY_AFTER:  # further off than any capped Retry-After: stale
            return
        if rest > MAX_WAIT or destination.failures > 0:
            raise Stop  # backing off: the next run (or drainer) takes it up
        await self.s.sleep(rest)  # a short Retry-After another drainer was given

    async def refused(self, error: AdapterError) -> None:
        """An attempt failed: a Retry-After is told to every drainer at once."""
        self.troubled = True
        if error.retry_after is not None:
            now = self.s.now()
            until = now + timedelta(seconds=error.retry_after)
            await db(self.outbox.destination_blocked, self.channel, now, until, error_line(error))

    async def accepted(self) -> None:
        if self.troubled:
            await db(self.outbox.destination_ok, self.channel, self.s.now())
            self.troubled = False


PageOutcome = Notification | Literal["wait", "hold"]


def waits_for_page(channel: str, n: Notification) -> bool:
    """A Slack "paged" message says "paged" only once the pager answered (the follow-up of one
    told PAGING DELAYED says how its pages ended: it waits for none)."""
    paged = n.kind == Kind.paged and channel in SLACK_CHANNELS and bool(n.incident.paged_via)
    return paged and not n.paging_ended


async def page_outcome(
    outbox: Outbox, item: OutboxItem, owner: str, now: datetime, running: Collection[str]
) -> PageOutcome:
    """The Slack "paged" message as it may go out now; else "wait" while its page is due, its
    pager not backing off and this drainer's lane to that pager (`running`: the channels whose
    lanes are still going) sending it or yet to: the lane comes back to it after its other
    messages, for up to `paged_wait` seconds; or "hold" (the page goes in a later run, or with
    the drainer that holds it) — unless a page held so has been owed for STUCK_PAGE_AFTER (its
    pager's failures in a row count: `_stuck`), or another of its pages is a dead letter: then
    the message goes out now saying PAGING DELAYED (and PAGING FAILED), the incident's later
    messages queue behind it, and Slack is told how paging ended once it does (`paging_ended`,
    queued as the page's end is recorded). A page withdrawn (its incident resolved first) makes
    it say so, as that follow-up would: about the resolved episode, mentioning nobody, before
    the RESOLVED message queued behind it.

    The pages are the incident's latest `paged` rows to each pager of the step it is on (not
    earlier steps' pagers) queued before this one (the same evaluation queues pagers first)."""
    n = item.notification
    pages = await db(outbox.pages_before, n.incident.key, pagers_waited_for(n), item.id)
    pending = [p for p in pages if p.status == "queued"]
    failed = "; ".join(f"{p.channel}: {dead_page(p.id, p.last_error)}" for p in _dead(pages))
    if not pending and any(p.status == WITHDRAWN for p in pages):  # this message, told so
        ended = paging_ended(n, pages, await db(outbox.episode, n.incident, item.id), now)
        return replace(ended, id=n.id)
    if pending:
        if await _worth_waiting(outbox, pending, owner, now, running):
            return "wait"
        if not failed and not any([await _stuck(outbox, p, now) for p in pending]):
            return "hold"
        delayed = "; ".join([f"{p.channel}: {await _retrying(outbox, p, now)}" for p in pending])
        sent_as = f"{n.id}{PAGING_DELAYED}"
        told = replace(n, id=sent_as, at=now, paging_delayed=delayed, paging_failed=failed)
        return _as_accepted(told, pages)
    if not failed:
        return n
    return _as_accepted(replace(n, paging_failed=failed), pages)


async def _stuck(outbox: Outbox, page: Page, now: datetime) -> bool:
    """Owed for STUCK_PAGE_AFTER: since it was queued, or since its pager began failing if that
    was earlier — a pager already known down (a later step's page) is told at once, a healthy
    pager's short blip is not."""
    pager = await db(outbox.destination, page.channel, now)
    owed_since = min(page.created_at or now, _down_since(pager, now) or now)
    return now - owed_since >= STUCK_PAGE_AFTER


def _down_since(pager: Destination, now: datetime) -> datetime | None:
    """When the pager's failures in a row began, while that trouble is current: it rests now,
    or failed (or asked to wait) within LONGEST_RETRY, the longest a failed page waits for its
    next try — a blip hours ago that no success cleared (its page withdrawn, say) makes no
    pager known down."""
    resting = pager.blocked_until is not None and pager.blocked_until > now
    recent = pager.troubled_at is not None and now - pager.troubled_at <= LONGEST_RETRY
    return pager.failing_since if resting or recent else None


def _dead(pages: list[Page]) -> list[Page]:
    return [p for p in pages if p.status == "dead"]


def _as_accepted(n: Notification, pages: list[Page]) -> Notification:
    """The "paged" message naming only the pagers that accepted their page."""
    accepted = tuple(p.channel for p in pages if p.status == "sent")
    esc = n.incident.escalation
    kept = tuple(p for p in esc.pages if p.step != esc.step or p.channel in accepted)
    incident = replace(n.incident, paged_via=accepted, escalation=replace(esc, pages=kept))
    return replace(n, incident=incident)


async def _retrying(outbox: Outbox, page: Page, now: datetime) -> str:
    """Why a page is still owed and when it is tried next: its own retry, its pager's rest or
    the next attempt of what its incident queued to that pager before it (sent first),
    whichever is later, and never before now."""
    pager = await db(outbox.destination, page.channel, now)
    ahead = await db(outbox.due_ahead, page)
    next_at = max(page.next_attempt_at, pager.blocked_until or now, ahead or now, now)
    if page.last_error:
        why = _short(page.last_error)
    elif pager.last_error:
        why = f"not sent yet, {page.channel} resting after: {_short(pager.last_error)}"
    else:
        why = "not sent yet"
    return f"{why} — retrying (next {next_at:%H:%M:%S}Z, outbox #{page.id})"


def paging_ended(
    told: Notification, pages: list[Page], episode: Incident | None, now: datetime
) -> Notification:
    """The follow-up of a Slack "paged" message told PAGING DELAYED, once all its pages ended:
    "Paged after all" (the pages taken), PAGING FAILED for the dead letters it did not tell
    yet, or "Not paged" for the pages withdrawn (resolved first) — about its own episode as
    stored now (`episode`; None: over, nothing more known), so a resolved incident's follow-up
    is told as resolved; an open one still on that step names only the pagers that took the
    page (as the thread's top message then does); one whose only failures are an operator's
    drops (`outbox drop`: their choice) mentions nobody. Sent as it is, waiting for no page."""
    incident = episode or replace(told.incident, state=State.resolved)
    accepted = ", ".join(p.channel for p in pages if p.status == "sent")
    untold = [p for p in _dead(pages) if f"(dead letter #{p.id}:" not in told.paging_failed]
    failed = "; ".join(f"{p.channel}: {dead_page(p.id, p.last_error)}" for p in untold)
    dropped = bool(untold) and all(dropped_by_operator(p.last_error) for p in untold)
    withdrawn = ", ".join(p.channel for p in pages if p.status == WITHDRAWN)
    if failed:
        paged = f"Paged {accepted}; " if accepted else ""
        ended = f"{paged}PAGING FAILED via {failed} — nobody was paged by it"
    elif withdrawn and accepted:
        ended = f"Paged {accepted}; not paged via {withdrawn}: resolved before it answered"
    elif withdrawn:
        ended = f"Not paged: resolved before {withdrawn} answered"
    else:
        ended = f"Paged after all: {accepted} took the page"
    follow_up = replace(
        told, id=f"{told.id}{PAGING_ENDED}", at=now, incident=incident, paging_delayed="",
        paging_failed=failed, paging_ended=ended, quiet=dropped,
    )  # fmt: skip
    now_on, told_on = incident.escalation, told.incident.escalation
    same_step = (now_on.step, now_on.rounds) == (told_on.step, told_on.rounds)
    if incident.state == State.resolved or not same_step:
        return follow_up  # over, or escalated (again, after an ack timed out) since
    return _as_accepted(follow_up, pages)


async def _worth_waiting(
    outbox: Outbox, pending: list[Page], owner: str, now: datetime, running: Collection[str]
) -> bool:
    for page in pending:
        if page.next_attempt_at > now:
            return False  # retrying in a later run
        if page.held_by_other(owner, now):
            return False  # its drainer sends it (or died: the next run does); not waited on
        if page.channel not in running:
            return False  # this run's lane to the pager is done (a dead drainer's claim ran
            # out after it looked): the next run sends it
        destination = await db(outbox.destination, page.channel, now)
        rest = destination.blocked_until
        if rest and (rest - now).total_seconds() > MAX_WAIT:
            return False  # resting past what the lane waits in a run (a shorter rest it waits)
    return True


def _short(error: str | None) -> str:
    return (error or "unknown error").removeprefix("permanent: ")


def dead_page(number: int, error: str | None) -> str:
    """Why a page is a dead letter (outbox row `number`), and what the operator can do (one
    dropped by an operator: no advice to page by hand, they chose it)."""
    if dropped_by_operator(error):
        again = f"`fleet-alerting outbox requeue {number}` sends it after all"
        return f"{error} (dead letter #{number}: {again})"
    return f"{_short(error)} (dead letter #{number}: {dead_page_advice(number)})"


def dead_page_advice(number: int) -> str:
    return (
        "page the on-call by hand; once the cause is fixed, "
        f"`fleet-alerting outbox requeue {number}` sends the page again"
    )


class Gate:
    """Stage 1: the lane's next message that may go now, claimed (SHORT_LEASE at first), with
    the notification to send; None when nothing more is claimable in this run."""

    def __init__(
        self,
        outbox: Outbox,
        channel: str,
        owner: str,
        settings: LaneSettings,
        destination: DestinationState,
        held: list[OutboxItem],
        running: Collection[str],
        withdrawn: list[tuple[OutboxItem, str]],
    ):
        self.outbox = outbox
        self.channel = channel
        self.owner = owner
        self.s = settings
        self.destination = destination
        self.held = held  # the report's: messages left waiting
        self.running = running  # the channels whose lanes in this drain are still going
        self.withdrawn = withdrawn  # the report's: pages of resolved incidents, not sent
        self.done: set[int] = set()  # handled (or deliberately left) by this lane in this run
        self.deferred: set[int] = set()  # Slack "paged" messages whose page is being sent
        self.deferred_until = time.monotonic() + settings.paged_wait

    async def next(self) -> tuple[OutboxItem, Notification] | None:
        while len(self.done) < MAX_SKIPPED_PER_RUN:
            await self.destination.wait()
            item = await db(
                self.outbox.claim_next, self.channel, self.owner, self.s.now(), self.s.claim,
                self.done, self.s.lease,
            )  # fmt: skip
            if item is None and self.deferred:  # "paged" messages waiting for their pages
                await asyncio.sleep(PAGE_POLL)
                self.done -= self.deferred
                self.deferred.clear()
                continue
            if item is None:
                return None  # nothing claimable: done, or the rest is another drainer's
            self.done.add(item.id)
            if await self._withdrawn(item):
                continue
            n = await self._ready(item)
            if n is not None and n.paging_delayed:  # kept with the message: told again later
                told = replace(item.notification, paging_delayed=n.paging_delayed)
                told = replace(told, paging_failed=n.paging_failed)
                return replace(item, notification=told), n
            if n is not None:
                return item, n
        return None

    async def _withdrawn(self, item: OutboxItem) -> bool:
        """A page whose incident resolved before its pager took it is not sent (an alert that
        resolved before its firing notification went out is not notified as firing)."""
        if pager_of(self.channel) is None or item.notification.kind != Kind.paged:
            return False
        return await self._withdraw(item.id, self.owner)

    async def _withdraw(self, page_id: int, owner: str | None) -> bool:
        now = self.s.now()
        tell = partial(paging_ended, now=now)
        ended = await db(self.outbox.withdraw_resolved_page, page_id, owner, tell, now)
        self.withdrawn.extend((w, w.last_error or "") for w in ended)
        return bool(ended)

    async def _withdraw_owed(self, item: OutboxItem) -> bool:
        """The pages a Slack "paged" message is held for, or would be told PAGING DELAYED
        about, that nobody is sending while their incident resolved meanwhile: withdrawn now,
        not once their pager answers again, so Slack says "Not paged" before RESOLVED."""
        n, now = item.notification, self.s.now()
        pages = await db(self.outbox.pages_before, n.incident.key, pagers_waited_for(n), item.id)
        owed = [p for p in pages if p.status == "queued" and not p.held_by_other(self.owner, now)]
        return any([await self._withdraw(p.id, None) for p in owed])

    async def _ready(self, item: OutboxItem) -> Notification | None:
        if not waits_for_page(self.channel, item.notification):
            return item.notification
        outcome = await page_outcome(self.outbox, item, self.owner, self.s.now(), self.running)
        owed = outcome == "hold" or (isinstance(outcome, Notification) and outcome.paging_delayed)
        if owed and await self._withdraw_owed(item):
            outcome = await page_outcome(self.outbox, item, self.owner, self.s.now(), self.running)
        if isinstance(outcome, Notification):
            return outcome
        await db(self.outbox.release, item.id, self.owner)
        if outcome == "wait" and time.monotonic() < self.deferred_until:
            self.deferred.add(item.id)  # the pager lane is on it: back after the others
        else:
            self.held.append(item)
        return None


async def send_once(notifier: Notifier, n: Notification, doubt: bool, since: datetime) -> str:
    """Stage 2, the in-doubt check: a message an earlier attempt may have delivered goes to a
    notifier that can look at its destination (`Confirms`) as `send_in_doubt`, which sends only
    what is not there yet; others send it again (a pager folds it by dedup key)."""
    with SENDS.sending(n.channel):  # what a run hanging here waits on, for the heartbeat
        if doubt and isinstance(notifier, Confirms):
            return await notifier.send_in_doubt(n, since)
        return await notifier.send(n)


@dataclass(frozen=True)
class Sent:
    receipt: str
    attempts: int


@dataclass(frozen=True)
class Failed:
    """The destination refused or did not answer (an AdapterError), or an unexpected error came
    up (after a post, say: always in doubt); `doubt`: it may have the message anyway."""

    error: Exception
    attempts: int
    doubt: bool


@dataclass(frozen=True)
class TakenOver:
    """The claim was lost while sending: the drainer that holds it now delivers it."""


Outcome = Sent | Failed | TakenOver


class _ClaimLost(Exception):
    """The claim could not be renewed: another drainer may hold the message, so no more tries."""


class _Later(Exception):
    """The destination asked for a pause longer than a run waits: no more tries in this run."""

    def __init__(self, error: AdapterError):
        super().__init__(str(error))
        self.error = error


class Send:
    """Stage 3: the attempts of this run at one message, within its claim. `refused` is told of
    every failed attempt (the destination's state)."""

    def __init__(
        self,
        notifier: Notifier,
        n: Notification,
        item: OutboxItem,
        settings: LaneSettings,
        refused: Callable[[AdapterError], Awaitable[None]],
    ):
        self.notifier = notifier
        self.n = n
        self.since = item.created_at
        self.s = settings
        self.refused = refused
        self.attempts = item.attempts
        self.doubt = item.in_doubt  # an earlier attempt may have delivered it: ask, where one can
        # a request may be on its way (cleared by an answer: a cut-off request keeps it set)
        self.sending = False
        self.last: AdapterError | None = None
        self.claim_lost = asyncio.Event()

    async def run(self, claim: asyncio.Timeout) -> Outcome:
        """All attempts, stopped by `claim` running out (never sending past the claim: once it
        runs out another drainer may take the message over) or by `claim_lost`."""
        try:
            async with claim:
                receipt = await with_retries(
                    self._attempt,
                    self.s.attempts_per_run,
                    max_wait=MAX_WAIT,
                    sleep=self.s.sleep,
                    on_attempt=self._counted,
                )
        except TimeoutError as exc:
            return self._timed_out(exc, claim.expired())
        except AdapterError as exc:
            return Failed(exc, self.attempts, self.doubt)
        except _ClaimLost:
            return TakenOver()
        except _Later as later:
            return Failed(later.error, self.attempts, self.doubt)
        except Exception as exc:  # anything else: retry later, then park it
            return Failed(exc, self.attempts, True)
        return Sent(receipt, self.attempts)

    def _counted(self) -> None:
        self.attempts += 1

    async def _attempt(self) -> str:
        if self.claim_lost.is_set():
            raise _ClaimLost
        try:
            self.sending = True
            return await send_once(self.notifier, self.n, self.doubt, self.since)
        except AdapterError as exc:
            self.sending, self.last = False, exc
            self.doubt = self.doubt or exc.maybe_sent
            await self.refused(exc)
            if exc.retry_after is not None and exc.retry_after > MAX_WAIT:
                raise _Later(exc) from None
            raise

    def _timed_out(self, exc: TimeoutError, claim_expired: bool) -> Outcome:
        if not claim_expired:  # not the claim's: unexpected, like any other error
            return Failed(exc, self.attempts, True)
        if self.sending or self.last is None:  # cut off in the middle of a send: may have arrived
            cut = f"still sending when {CLAIM_SHARE:.0%} of its claim had passed: tried again"
            return Failed(AdapterError(cut, permanent=False, maybe_sent=True), self.attempts, True)
        return Failed(self.last, self.attempts, self.doubt)  # cut off waiting: the answer stands


@dataclass
class Record:
    """Stage 4: what came of a message, in the outbox (sent, retrying, dead) and the report."""

    outbox: Outbox
    channel: str
    owner: str
    s: LaneSettings
    notifier_name: str
    destination: DestinationState
    report: DrainReport

    async def __call__(self, item: OutboxItem, outcome: Outcome) -> None:
        """Stop: the destination failed, the lane rests for this run."""
        match outcome:
            case Sent(receipt, attempts):
                await self.sent(item, attempts, receipt)
            case Failed(AdapterError() as error, attempts, doubt):
                await self.failed(item, attempts, error, doubt)
            case Failed(error, attempts):
                await self.unexpected(item, attempts, error)

    async def sent(self, item: OutboxItem, attempts: int, receipt: str) -> None:
        # The crash window: the destination has the message, the store does not know yet. Marked
        # on the event loop itself, in the same step as the answer arrived (no hand-over to a
        # thread, no await in between): one small UPDATE commit.
        # A page's end and a PAGING DELAYED message's sending are each one transaction with the
        # follow-up they may queue (`paging_ended`): a drainer dying after it loses nothing.
        n, now = item.notification, self.s.now()
        if self._is_page(item):
            sent = {"status": "sent", "attempts": attempts, "receipt": receipt, "last_error": None}
            mark = partial(self.outbox.end_page, item.id, self.owner, n, self._tell, now, **sent)
        elif n.paging_delayed:
            mark = partial(
                self.outbox.mark_delayed_sent, item.id, self.owner, attempts, receipt, n,
                self._tell, now,
            )  # fmt: skip
        else:
            mark = partial(self.outbox.mark_sent, item.id, self.owner, attempts, receipt, now)
        for pause in (0.05, 0.2, 1.0, None):
            try:
                mark()
                break
            except sa.exc.OperationalError:
                if pause is None:
                    raise
                await asyncio.sleep(pause)
        self.report.sent.append((item, receipt))
        await self.destination.accepted()

    def _tell(
        self, told: Notification, pages: list[Page], episode: Incident | None
    ) -> Notification:
        return paging_ended(told, pages, episode, self.s.now())

    def _is_page(self, item: OutboxItem) -> bool:
        return pager_of(self.channel) is not None and item.notification.kind == Kind.paged

    async def _mark_dead(
        self, item: OutboxItem, attempts: int, why: str, errors: int | None = None
    ) -> None:
        """A dead letter; a page's end tells its PAGING DELAYED messages, as `sent` does."""
        if not self._is_page(item):
            await db(self.outbox.mark_dead, item.id, self.owner, attempts, why, errors)
            return
        dead: dict[str, object] = {"status": "dead", "attempts": attempts, "last_error": why}
        if errors is not None:
            dead["errors"] = errors
        n, now = item.notification, self.s.now()
        await db(partial(self.outbox.end_page, item.id, self.owner, n, self._tell, now, **dead))

    async def failed(
        self, item: OutboxItem, attempts: int, error: AdapterError, doubt: bool
    ) -> None:
        reason = error_line(error)
        now = self.s.now()
        if error.permanent:
            await self._dead(item, attempts, f"permanent: {reason}", reason)
            return
        destination = await db(
            self.outbox.destination_failed,
            self.channel,
            now,
            now + destination_backoff(1, error.retry_after),
            reason,
        )
        if destination.failures > 1 and error.retry_after is None:  # consecutive: back off more
            until = now + destination_backoff(destination.failures, None)
            await db(self.outbox.destination_blocked, self.channel, now, until, reason)
        if now - item.created_at >= self.s.give_up_after:
            await self._dead(item, attempts, f"gave up after {attempts} attempts: {reason}", reason)
        else:
            next_at = now + next_attempt_delay(attempts)
            await db(
                self.outbox.mark_retry, item.id, self.owner, attempts, next_at, reason, None, doubt
            )
            self.report.retrying.append((item, reason))
        raise Stop

    async def unexpected(self, item: OutboxItem, attempts: int, error: Exception) -> None:
        """Retried later (in doubt: it may have come after a post), parked after `park_after`."""
        reason = redact(f"{type(error).__name__}: {error}")
        errors = item.errors + 1
        if errors >= self.s.park_after:
            why = f"parked after {errors} unexpected errors: {reason}"
            await self._mark_dead(item, attempts, why, errors)
            log.error("dead letter: %s (%s): %s", self.channel, self.notifier_name, why)
            self.report.dead.append((item, why))
            self._page_warning(item, why)
            return
        next_at = self.s.now() + next_attempt_delay(errors)
        await db(
            self.outbox.mark_retry, item.id, self.owner, attempts, next_at, reason, errors, True
        )
        self.report.retrying.append((item, reason))

    async def _dead(self, item: OutboxItem, attempts: int, why: str, reason: str) -> None:
        if self._reopens(item):
            await self._dead_resolve(item, attempts, why, reason)
        else:
            await self._mark_dead(item, attempts, why)
        log.error(
            "dead letter: %s (%s) refused %s of incident %s: %s",
            self.channel, self.notifier_name, item.notification.kind,
            item.notification.incident.key, why,
        )  # fmt: skip
        self.report.dead.append((item, reason))
        self._page_warning(item, reason)

    def _reopens(self, item: OutboxItem) -> bool:
        """A pager's resolve, which a re-page (`actions.paged_again`, `reopened`) may follow."""
        return pager_of(self.channel) is not None and item.notification.kind == Kind.resolved

    async def _dead_resolve(self, item: OutboxItem, attempts: int, why: str, reason: str) -> None:
        """The pages queued behind a dead resolve could only fold into the acknowledged alert:
        they fail with it, loudly (the Slack "paged" message and the report say PAGING FAILED)."""
        failed = f"the resolve before it failed ({reason}), a trigger would notify nobody"
        pages = await db(
            self.outbox.mark_dead_with_pages_behind, item, self.owner, attempts, why, failed,
            self._tell, self.s.now(),
        )  # fmt: skip
        for page in pages:
            self.report.dead.append((page, failed))
            self._page_warning(page, failed)

    def _page_warning(self, item: OutboxItem, reason: str) -> None:
        n = item.notification
        if pager_of(self.channel) is not None and n.kind == Kind.paged:
            self.report.warnings.append(
                f"PAGING FAILED via {self.channel}: {reason} (incident {n.incident.key})"
            )
