"""Whether `serve` tells its dead man's switch "all is well" or "failing, because …".

A pure decision of the watches' last runs, their intervals, the age of the oldest queued page,
the open incidents' pages that are dead letters, when the Prefect server last answered and
`now`: the heartbeat loop (deployments/heartbeat.py) gathers these and sends what this says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet_alerting.core.durations import format_duration

# A run's own duration and the scheduler's jitter may push one success past its interval; a
# second missed interval is a watch that stopped working.
LATE_AFTER_INTERVALS = 2
STUCK_PAGE_AFTER = timedelta(minutes=5)
# serve asks its Prefect server every few seconds; this long without an answer is no blip
SILENT_API_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class WatchStatus:
    name: str
    every: timedelta
    serving_since: datetime  # a watch that has not succeeded yet is late counted from here
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_reason: str = ""  # the failed run's one line (its Prefect state's message)
    in_flight_since: datetime | None = None  # when its run still in flight started


@dataclass(frozen=True)
class QueuedPage:
    destination: str
    incident_key: str
    queued_at: datetime


@dataclass(frozen=True)
class DeadPage:
    """An open incident's page that no pager took: a dead letter, so nobody was paged."""

    destination: str
    incident_key: str
    outbox_id: int


@dataclass(frozen=True)
class PrefectApi:
    """The Prefect server serve runs through, and when it last answered."""

    named: str  # "the Prefect server at http://…/api (PREFECT_API_URL)"
    last_answer: datetime
    last_error: str = ""  # why the last ask got no answer (ConnectError), if it did not


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # one line naming what is wrong; empty when ok
    # what is wrong without how long it has been: the same while nothing else goes wrong
    gist: tuple[str, ...] = ()
    # nothing to tell yet: serve has not scheduled its watches, and "all well" would vouch for
    # nothing (the switch's grace covers a start; a start that fails is told by serve itself)
    silent: bool = False


def late(watch: WatchStatus, now: datetime) -> timedelta | None:
    """How long since the watch last succeeded (or began serving), when that is past its limit."""
    since = now - (watch.last_success or watch.serving_since)
    return since if since > LATE_AFTER_INTERVALS * watch.every else None


def api_silent(api: PrefectApi | None, now: datetime) -> timedelta | None:
    """How long the Prefect server has not answered, when that is past SILENT_API_AFTER."""
    since = now - api.last_answer if api is not None else None
    return since if since is not None and since > SILENT_API_AFTER else None


def verdict(
    watches: list[WatchStatus],
    oldest_page: QueuedPage | None,
    now: datetime,
    store_error: str = "",
    scheduled: bool = True,
    dead_pages: Sequence[DeadPage] = (),
    api: PrefectApi | None = None,
    sends: Mapping[str, datetime] | None = None,
) -> Verdict:
    """ok only when the Prefect server answered within SILENT_API_AFTER, every watch succeeded
    within its limit, no page waits longer than STUCK_PAGE_AFTER, no open incident's page is a
    dead letter and the store answered; else every reason, in one line (a silent server first:
    the watches are late because of it). Before serve has `scheduled` its watches, silent unless
    something is already wrong. `sends`: the destinations sends wait on, each since when (a
    late watch's run in flight names those it may be waiting on)."""
    reasons: list[str] = []
    gist: list[str] = []
    if api is not None and (silent := api_silent(api, now)):
        why = f" ({api.last_error})" if api.last_error else ""
        reasons.append(f"{api.named} has not answered for {format_duration(silent)}{why}")
        gist.append(f"{api.named} does not answer")
    late_ones = [(w, since) for w in watches if (since := late(w, now))]
    reasons += [_late_reason(w, since, now) for w, since in late_ones]
    gist += [f"{w.name}: {w.last_failure_reason}" for w, _ in late_ones]
    if sends and any(w.in_flight_since for w, _ in late_ones):
        reasons.append(_sends_in_flight(sends, now))
    if store_error:
        reasons.append(f"the store failed: {store_error}")
        gist.append(store_error)
    elif oldest_page is not None and now - oldest_page.queued_at > STUCK_PAGE_AFTER:
        age = format_duration(now - oldest_page.queued_at)
        stuck = f"a page to {oldest_page.destination} for {oldest_page.incident_key}"
        reasons.append(f"{stuck} has been queued for {age}")
        gist.append(stuck)
    for page in dead_pages:  # until an operator drops or requeues it, or the incident resolves
        dead = (
            f"nobody was paged for {page.incident_key}: its page to {page.destination} is "
            f"dead letter #{page.outbox_id} (page the on-call by hand, then `fleet-alerting "
            f"outbox drop {page.outbox_id} --reason WHY`; or fix the cause and `outbox requeue "
            f"{page.outbox_id}`)"
        )
        reasons.append(dead)
        gist.append(dead)
    if not reasons and not scheduled:
        return Verdict(False, silent=True)
    return Verdict(not reasons, "; ".join(reasons), tuple(gist))


def _sends_in_flight(sends: Mapping[str, datetime], now: datetime) -> str:
    """The sends this process waits on, each destination with its oldest: what a hanging run may
    wait on (the process's, not tied to one run: two runs' sends are not told apart)."""
    waits = sorted(sends.items(), key=lambda item: item[1])
    listed = ", ".join(f"{d} for {format_duration(now - since)}" for d, since in waits)
    return f"sends in flight: {listed}"


def _late_reason(watch: WatchStatus, since: timedelta, now: datetime) -> str:
    """Which watch, since when, and why its last run failed (a page owed, a source down)."""
    every, ago = format_duration(watch.every), format_duration(since)
    failure = watch.last_failure
    if failure is not None and watch.last_success is not None and failure <= watch.last_success:
        failure = None  # it succeeded since
    why = f": {watch.last_failure_reason}" if failure and watch.last_failure_reason else ""
    # a run hanging (on a destination that holds the request) is not a run that failed
    hanging = watch.in_flight_since
    waiting = f", a run in flight for {format_duration(now - hanging)}" if hanging else ""
    if watch.last_success is None:
        began = f"has not succeeded since serve began {ago} ago (every {every}{waiting})"
        return f"watch {watch.name} {began}{why}"
    when = f", last failed {format_duration(now - failure)} ago" if failure else ""
    return f"watch {watch.name} last succeeded {ago} ago (every {every}{when}{waiting}){why}"
