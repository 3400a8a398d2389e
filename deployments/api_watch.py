"""serve's watch on the Prefect server it runs through: a thread asks its `/health` every
CHECK_EVERY seconds and records in WatchRuns when it last answered. A server silent for
core.heartbeat.SILENT_API_AFTER is said in serve's log (once, and once again when it answers),
in the heartbeat's `/fail` and as `fleet_alerting_prefect_api_up 0`. Nothing is restarted:
serve's poll for due runs keeps asking, and its runs resume when the server answers again."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx

from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.heartbeat import api_silent
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.http.errors import shown_url

CHECK_EVERY = 5.0  # seconds; an answer to /health costs the server well under a millisecond
Print = Callable[[str], None]


def without_credentials(text: str) -> str:
    """`text` with any URL's user and password left out (an httpx error quotes its request URL)."""
    return _USERINFO.sub("//", text)


_USERINFO = re.compile(r"//[^/@\s]*@")


def named(api_url: str, from_environment: bool) -> str:
    if from_environment:
        return f"the Prefect server at {shown_url(api_url)} (PREFECT_API_URL)"
    return f"serve's own Prefect server at {shown_url(api_url)}"


def ask(client: httpx.Client, api_url: str) -> str:
    """ "" when the server answers its health check, else why not (no URL, no body)."""
    try:
        answer = client.get(f"{api_url}/health")
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return "" if answer.status_code == 200 else f"HTTP {answer.status_code}"


@contextlib.contextmanager
def watching_api(
    runs: WatchRuns,
    api_url: str,
    from_environment: bool,
    out: Print,
    every: float = CHECK_EVERY,
) -> Iterator[None]:
    """The server at `api_url` (it answered just now) watched while the block runs."""
    runs.api_watched(named(api_url, from_environment), datetime.now(UTC))
    stop = threading.Event()
    watch = threading.Thread(
        target=_watch, args=(runs, api_url, out, stop, every), name="prefect-api-watch", daemon=True
    )
    watch.start()
    try:
        yield
    finally:
        stop.set()  # not joined: an ask of a hung server would hold serve's stop up to `every`
        runs.api_unwatched()


def _watch(runs: WatchRuns, api_url: str, out: Print, stop: threading.Event, every: float) -> None:
    # one client for the watch's life: a new one loads the CA bundle (~16 ms of CPU) each time
    with httpx.Client(timeout=every) as client:
        _ask_until_stopped(client, runs, api_url, out, stop, every)


def _ask_until_stopped(
    client: httpx.Client,
    runs: WatchRuns,
    api_url: str,
    out: Print,
    stop: threading.Event,
    every: float,
) -> None:
    told = False  # that the server is silent
    while not stop.wait(every):
        error = ask(client, api_url)
        now = datetime.now(UTC)
        before = runs.api()
        runs.api_asked(now, error)
        if before is None:
            return
        if not error and told:
            silent = format_duration(now - before.last_answer)
            out(f"serve: {before.named} answers again, after {silent} without one; runs resume")
            told = False
        elif error and not told and (silent := api_silent(runs.api(), now)):
            out(
                f"serve: {before.named} has not answered for {format_duration(silent)} "
                f"({error}); no run starts until it does (asked every {every:g}s)"
            )
            told = True
