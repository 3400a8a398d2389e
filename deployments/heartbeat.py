"""`serve`'s dead man's switch (config `heartbeat`, Healthchecks.io style): every `every`, a GET
of the URL while every watch succeeds, no page is stuck and no open incident's page is a dead
letter and the Prefect server answers (core.heartbeat.verdict), else a POST to `URL/fail` whose
body is the reason — and no GET before serve has scheduled its watches. When `serve` fails it
says why in a last `/fail`; when it dies the pings stop, and the switch tells.

The URL carries its token: it is resolved as a secret, and what is said of a failed ping names
neither the URL nor the answer's body."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from fleet_alerting.config.schema import Config, HeartbeatConfig
from fleet_alerting.config.secrets import SecretError, redact
from fleet_alerting.core.channels import PAGERS, pager_of
from fleet_alerting.core.heartbeat import DeadPage, QueuedPage, Verdict, verdict
from fleet_alerting.delivery.in_flight import SENDS
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.store.database import Store
from fleet_alerting.store.health import dead_pages, oldest_queued

MAX_REASON = 10_000  # Healthchecks keeps the first 100 kB of a ping's body
Print = Callable[[str], None]


def fail_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


def pages_owed(
    config: Config, pagers: Sequence[str] = PAGERS
) -> tuple[QueuedPage | None, list[DeadPage]]:
    """The oldest queued page to these pagers and to each named routing key or integration, and
    the open incidents' pages that are dead letters."""
    named = [c for c in config.notify.configured_channels() if pager_of(c) is not None]
    with Store(config.state, busy_timeout=2.0) as store:
        return oldest_queued(store, sorted({*pagers, *named})), dead_pages(store)


class Heartbeat:
    """A daemon thread pinging until `stop()` (or the process's end)."""

    def __init__(self, config: Config, settings: HeartbeatConfig, runs: WatchRuns, out: Print):
        self.config, self.runs, self.out = config, runs, out
        self.every = settings.every
        self.url = settings.url.resolve().get_secret_value()
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise SecretError(f"{settings.url.describe()} does not hold an http(s) URL")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._last_said: object = ""
        self._pinging = threading.Lock()

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.every.total_seconds() + 15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.beat(datetime.now(UTC))
            self._stop.wait(self.every.total_seconds())

    def decide(self, now: datetime) -> Verdict:
        page: QueuedPage | None = None
        dead: list[DeadPage] = []
        try:
            (page, dead), store_error = pages_owed(self.config), ""
        except Exception as exc:  # a store that does not answer is itself a reason to fail
            store_error = redact(f"{type(exc).__name__}: {exc}").splitlines()[0]
        runs, sends = self.runs, SENDS.waiting()
        statuses, scheduled = runs.statuses(), runs.scheduled()
        return verdict(statuses, page, now, store_error, scheduled, dead, runs.api(), sends)

    def beat(self, now: datetime) -> None:
        said = self.decide(now)
        with self._pinging:
            if not said.silent and not self._stop.is_set():
                self._ping(said)

    def last_words(self, reason: str) -> None:
        """serve is about to exit because of `reason`: no more beats, and one fail ping saying
        it (after any beat on its way), so the switch tells now rather than after its grace."""
        with self._pinging:
            self._stop.set()
            self._ping(Verdict(False, reason))

    def _ping(self, said: Verdict) -> None:
        timeout = min(10.0, self.every.total_seconds())
        try:
            if said.ok:
                answer = httpx.get(self.url, timeout=timeout)
            else:
                body = said.reason[:MAX_REASON].encode()
                answer = httpx.post(fail_url(self.url), content=body, timeout=timeout)
            answer.raise_for_status()
        except httpx.HTTPStatusError as exc:
            self._say(f"heartbeat: the dead man's switch answered HTTP {exc.response.status_code}")
        except httpx.HTTPError as exc:
            self._say(f"heartbeat: the ping failed ({type(exc).__name__})")
        else:
            told = f"heartbeat: told the dead man's switch: {said.reason}"
            self._say("" if said.ok else told, said.gist)

    def _say(self, line: str, gist: object = None) -> None:
        """Each new complaint once, not once a cycle (a complaint that only grows older, by
        its `gist`, is not new)."""
        said = gist or line
        if line and said != self._last_said:
            self.out(redact(line))
        self._last_said = said


@contextlib.contextmanager
def heartbeat(config: Config, runs: WatchRuns, out: Print) -> Iterator[Heartbeat | None]:
    """The configured heartbeat, pinging while the block runs. A URL that cannot be read is
    said and no ping is sent: the dead man's switch then tells that `serve` is not well."""
    if config.heartbeat is None:
        yield None
        return
    try:
        beating = Heartbeat(config, config.heartbeat, runs, out)
    except SecretError as exc:
        out(f"heartbeat: not started: {exc}")
        yield None
        return
    beating.start()
    try:
        yield beating
    finally:
        beating.stop()
