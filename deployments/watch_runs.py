"""What `serve` knows of its own runs: per watch, when the last run started, succeeded or failed
and how long it took; how many deployments it scheduled; when its Prefect server last answered.
`serve` records into RUNS; its metrics endpoint and heartbeat read it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from fleet_alerting.core.heartbeat import PrefectApi, WatchStatus
from fleet_alerting.http.errors import excerpt

MAX_RUN_REASON = 500  # characters of a failed run's reason, as the heartbeat says it


@dataclass(frozen=True)
class WatchRecord(WatchStatus):
    last_start: datetime | None = None
    last_duration: float | None = None  # seconds


class Run:
    """One run of one watch, from `WatchRuns.started` until `ended`."""

    def __init__(self, runs: WatchRuns, name: str):
        self.runs, self.name = runs, name
        self.began = time.monotonic()

    def ended(self, succeeded: bool, reason: str = "") -> None:
        """`reason`: why a failed run failed, in one line (redacted, cut to MAX_RUN_REASON)."""
        self.runs._ended(self.name, succeeded, time.monotonic() - self.began, reason)


class WatchRuns:
    """Thread-safe: runs end in threads, the metrics endpoint reads from its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._intervals: dict[str, timedelta] = {}
        self._records: dict[str, WatchRecord] = {}
        self._scheduled = False
        self._deployments = 0
        self._api: PrefectApi | None = None

    def expect(self, intervals: dict[str, timedelta], deployments: int | None = None) -> None:
        """The watches `serve` is about to schedule, each with its interval, among `deployments`
        in all (the quarterly audit is one and no watch; default: the watches)."""
        self._intervals = dict(intervals)
        self._deployments = len(intervals) if deployments is None else deployments

    def begin(self, now: datetime) -> None:
        """Scheduling begins: the watches are late from here on until they succeed (a slow
        start of the Prefect server does not count against them)."""
        with self._lock:
            self._records = {
                name: WatchRecord(name, every, serving_since=now)
                for name, every in self._intervals.items()
            }
            self._scheduled = True

    def scheduled(self) -> bool:
        """Whether serve has scheduled its watches (before: its Prefect server is starting)."""
        return self._scheduled

    def deployments_scheduled(self) -> int:
        """How many deployments (watches and the audit) serve has scheduled: 0 until it has."""
        return self._deployments if self._scheduled else 0

    def api_watched(self, named: str, now: datetime) -> None:
        """serve runs through the Prefect server `named`, which answered at `now`."""
        with self._lock:
            self._api = PrefectApi(named, now)

    def api_asked(self, now: datetime, error: str = "") -> None:
        """The server answered at `now` (no `error`), or did not (`error`: why)."""
        with self._lock:
            if self._api is not None:
                answered = {"last_answer": now} if not error else {}
                self._api = replace(self._api, last_error=error, **answered)  # type: ignore[arg-type]

    def api_unwatched(self) -> None:
        with self._lock:
            self._api = None

    def api(self) -> PrefectApi | None:
        """The Prefect server serve runs through and when it last answered (None: none yet)."""
        with self._lock:
            return self._api

    def serve(self, intervals: dict[str, timedelta], now: datetime) -> None:
        self.expect(intervals)
        self.begin(now)

    def started(self, name: str) -> Run:
        now = datetime.now(UTC)
        self._update(name, last_start=now, in_flight_since=now)
        return Run(self, name)

    def _ended(self, name: str, succeeded: bool, seconds: float, reason: str) -> None:
        now = datetime.now(UTC)
        ran = {"last_duration": seconds, "in_flight_since": None}
        if succeeded:
            self._update(name, **ran, last_success=now)
        else:
            said = " ".join(excerpt(reason, MAX_RUN_REASON).split())  # masked, then cut
            self._update(name, **ran, last_failure=now, last_failure_reason=said)

    def _update(self, name: str, **changes: object) -> None:
        with self._lock:
            if name in self._records:  # the audit and other runs are not watches
                self._records[name] = replace(self._records[name], **changes)  # type: ignore[arg-type]

    def records(self) -> list[WatchRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.name)

    def statuses(self) -> list[WatchStatus]:
        return list(self.records())


RUNS = WatchRuns()
