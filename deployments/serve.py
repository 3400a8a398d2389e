"""`fleet-alerting serve`: the configured watches on their schedules, all in this one process.

- **Server.** PREFECT_API_URL if set (it must answer); else a local Prefect server that serve
  starts as its child process (uvicorn, SQLite under PREFECT_HOME) on a free port, or on the
  fixed one of `--ui-port` / FLEET_ALERTING_UI_PORT (so "View at" links outlive restarts); its UI
  is told its real API address; stopped when serve stops. Its address is left in PREFECT_HOME, so
  `fleet-alerting run` and `trigger` record and start runs there while `serve` runs.
- **Deployments.** One per configured watch (`schedules.plan`) with its cron or interval and a
  concurrency limit of 1, parameters absolute; the quarterly audit when its files exist.
- **Runs.** Prefect's scheduler creates them; this process asks for the runs due within the next
  POLL_SECONDS, wakes when the next is due, and executes each in-process — no `python -m
  prefect.engine` child (~118 MB and 7–13 s to start) per run. Triggered runs (`trigger`,
  `/fleet run`) are picked up the same way, within POLL_SECONDS. When several
  scheduled runs of one deployment are due (serve was stopped, or a run overran), the newest runs
  and the older ones are cancelled as superseded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

import httpx

from fleet_alerting.config import ConfigError, load_config
from fleet_alerting.config.schema import Config, ScheduleConfig
from fleet_alerting.config.secrets import redact
from fleet_alerting.core.durations import format_duration
from fleet_alerting.deployments import prefect_engine
from fleet_alerting.deployments.api_watch import watching_api, without_credentials
from fleet_alerting.deployments.heartbeat import Heartbeat, heartbeat
from fleet_alerting.deployments.local import (
    STARTUP_SETTING,
    UI_PORT_SETTING,
    chosen_ui_port,
    healthy,
    remove_marker,
    served_api,
    startup_timeout,
    write_marker,
)
from fleet_alerting.deployments.prefect_engine import (
    flush_to_the_server,
    leave_sigterm_to_serve,
    one_client,
    remember_result_storage,
    run_in_process,
    share_tls_contexts,
    skip_suspension_watch,
)
from fleet_alerting.deployments.prune import keep_pruned
from fleet_alerting.deployments.schedules import CONFIGURED, Planned, plan, watch_interval
from fleet_alerting.deployments.watch_runs import RUNS, WatchRuns
from fleet_alerting.flows import ENTRYPOINTS, get_flow

TAG = "fleet-alerting"
Print = Callable[[str], None]
KEEP_RUNS = ScheduleConfig().keep_runs
KEEP_EVENTS = ScheduleConfig().keep_events
HOUR, SECOND = timedelta(hours=1), timedelta(seconds=1)
# beside the runs while `serve` serves (the metrics endpoint, from the CLI: a surface)
Sidecar = Callable[[Config, WatchRuns, Print], contextlib.AbstractContextManager[object]]


class ServeError(Exception):
    """An operator-facing reason `serve` cannot run, said in one line — and to the dead man's
    switch, after `told_as` (None: not told)."""

    told_as: str | None = "serve could not start"


class ServerStartError(ServeError):
    told_as = "serve could not start its Prefect server"


class AlreadyServing(ServeError):
    told_as = None  # the serve already running keeps pinging


class ServerExit:
    """Where the watcher of serve's server child reports that it exited, for whoever attaches
    (serve's event loop, once it runs): a report before the attach is passed on at the attach."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._tell: Callable[[str], None] | None = None

    def report(self, reason: str) -> None:
        with self._lock:
            self._reason = reason
            tell = self._tell
        if tell:
            tell(reason)

    def attach(self, tell: Callable[[str], None]) -> None:
        with self._lock:
            self._tell, reason = tell, self._reason
        if reason:
            tell(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_settings(
    port: int, keep_runs: timedelta = KEEP_RUNS, keep_events: timedelta = KEEP_EVENTS
) -> dict[str, Any]:
    """Settings of a local server on `port`: the UI asks `/ui-settings` where its API is, and
    without these it is told the default port 4200 (PrefectHQ/prefect#18895); SQLite waits for
    its lock rather than failing requests with 503 when the machine is busy."""
    from prefect.settings import (
        PREFECT_API_DATABASE_CONNECTION_TIMEOUT,
        PREFECT_API_DATABASE_TIMEOUT,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_API_HOST,
        PREFECT_SERVER_API_PORT,
        PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED,
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE,
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE,
        PREFECT_SERVER_SERVICES_FOREMAN_ENABLED,
        PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED,
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE,
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE,
        PREFECT_UI_API_URL,
    )

    return {
        PREFECT_UI_API_URL: f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_API_HOST: "127.0.0.1",
        PREFECT_SERVER_API_PORT: port,
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        # SQLite under a busy machine: wait for the lock rather than answer 503 (default 10 s, 5 s)
        PREFECT_API_DATABASE_TIMEOUT: 60.0,
        PREFECT_API_DATABASE_CONNECTION_TIMEOUT: 30.0,
        # loops for what serve's runs never use — workers and work pools, paused runs — that
        # cost an idle server ~4 of its ~22 ms of CPU a second (automations stay on)
        PREFECT_SERVER_SERVICES_FOREMAN_ENABLED: False,
        PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED: False,
        PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED: False,
        # task runs' states and events written 100 at a time (and every 5 s), not one by one:
        # a task run costs the server ~13 ms instead of ~41 (bench/soak_cost.py); the UI shows
        # a step's state up to 5 s late, and a stopping server writes what it holds
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE: 100,
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE: 100,
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE: 200,
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE: 100,
    } | retention_settings(keep_runs, keep_events)


def retention_settings(keep_runs: timedelta, keep_events: timedelta) -> dict[Any, Any]:
    """The server's own vacuum keeps its database bounded: finished runs (with their task runs,
    logs and artifacts) kept `keep_runs`, events (~80 % of the database) `keep_events`, swept
    every sixth of the shorter one (1 min to 1 h) — in batches of SQL, where deleting through
    the API (`prune_runs`, for a server serve did not start) costs a request per artifact."""
    from prefect.settings import (
        PREFECT_SERVER_EVENTS_RETENTION_PERIOD,
        PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED,
        PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS,
        PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD,
    )

    sweep = min(keep_runs, keep_events).total_seconds() / 6
    return {
        PREFECT_SERVER_EVENTS_RETENTION_PERIOD: keep_events,
        PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED: {"events", "flow_runs"},
        # Prefect wants more than an hour; the schema's least is an hour: a second more
        PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD: max(keep_runs, HOUR + SECOND),
        PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS: min(max(sweep, 60.0), 3600.0),
    }


@contextlib.contextmanager
def local_server(
    port: int | None = None,
    timeout: float | None = None,
    keep_runs: timedelta = KEEP_RUNS,
    keep_events: timedelta = KEEP_EVENTS,
    on_exit: Callable[[str], None] = lambda _: None,
    started: Callable[[int], None] = lambda _: None,
) -> Iterator[str]:
    """A Prefect server (API, UI, scheduler) on loopback in a child process; yields its API URL,
    and stops the child on exit. Its own process: the server's memory and CPU (SQLite, its
    services) stay apart from the runs', and a slope in either shows where it is. Should the
    child exit before it is stopped, `on_exit` gets why, from a thread waiting on it; `started`
    gets its pid (its process group's too)."""
    port = port or free_port()
    taken = port_taken(port)
    if taken:
        raise ServerStartError(taken)
    timeout = timeout or startup_timeout()
    url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [sys.executable, "-m", prefect_engine.__name__, str(port)],
        env=_server_environment(port, keep_runs, keep_events),
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches serve only; serve stops the server last
    )
    started(server.pid)
    stopping = threading.Event()
    try:
        _wait_until_healthy(server, url, timeout)
        watcher = partial(_watch_server, server, stopping, on_exit)
        threading.Thread(target=watcher, name="prefect-server-watch", daemon=True).start()
        yield url
    finally:
        stopping.set()
        stop_server(server)


def _watch_server(
    server: subprocess.Popen[bytes], stopping: threading.Event, on_exit: Callable[[str], None]
) -> None:
    code = server.wait()
    if not stopping.is_set():
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        on_exit(f"serve's Prefect server exited ({how})")


def port_taken(port: int) -> str | None:
    """Why the local server cannot listen on 127.0.0.1:`port`, or None."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart's TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return (
                f"port {port} is taken ({exc.strerror}): the local Prefect server (UI and API) "
                f"cannot listen on 127.0.0.1:{port}; stop what listens there, or choose another "
                f"port with --ui-port or {UI_PORT_SETTING}"
            )
    return None


def _server_environment(port: int, keep_runs: timedelta, keep_events: timedelta) -> dict[str, str]:
    from prefect.settings import get_current_settings, temporary_settings

    with temporary_settings(updates=server_settings(port, keep_runs, keep_events)):
        settings = get_current_settings().to_environment_variables(exclude_unset=True)
    inherited = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # glibc makes an arena per thread, up to 8 per core, and the server starts a thread per
    # database connection: freed memory stays spread over them. Two keep its RSS near its use.
    return {"MALLOC_ARENA_MAX": "2"} | inherited | settings


def _wait_until_healthy(server: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(url, timeout=2):
        if server.poll() is not None:
            raise ServerStartError(
                f"the local Prefect server failed to start (exit code {server.returncode}; "
                "its error is above)"
            )
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"the local Prefect server did not answer within {timeout:g}s; on a busy "
                f"machine raise {STARTUP_SETTING} (seconds), or point PREFECT_API_URL at a "
                "running server"
            )
        time.sleep(0.2)
    if server.poll() is not None:  # something else answered on its port
        raise ServerStartError(
            f"the local Prefect server exited at start (code {server.returncode})"
        )


def stop_server(server: subprocess.Popen[bytes], within: float = 2.0) -> None:
    """SIGTERM (the server closes its database), then SIGKILL if it is not gone `within`."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(within)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def serve_all(
    config_path: str,
    out: Print = print,
    sidecars: Sequence[Sidecar] = (),
    ui_port: int | None = None,
) -> int:
    """Exit code: 0 stopped by a signal, 1 nothing to serve or an invalid config or port, 2 no
    server (its port taken, or it failed); a second signal exits at once with 128 + its number
    (130: Ctrl-C twice). `ui_port`: the local server's port (else FLEET_ALERTING_UI_PORT, else
    a free one)."""
    try:
        config = load_config(config_path)
        port = chosen_ui_port(ui_port)
    except (ConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for problem in _problems(config, config_path):
        print(f"warning: {problem}", file=sys.stderr)
    planned, skipped = plan(config, Path(config_path))
    for note in skipped:
        out(note)
    if not planned:
        print(f"{config_path}: nothing to serve: no watch is configured", file=sys.stderr)
        return 1
    watching = contextlib.ExitStack()
    beating = None
    try:
        beating = _watch_self(watching, config, planned, sidecars, out)
        if api := os.environ.get("PREFECT_API_URL"):
            if port is not None:
                raise ServeError(
                    f"PREFECT_API_URL is set ({api}): serve starts no server of its own, so "
                    f"there is no port to fix; unset PREFECT_API_URL or drop --ui-port / "
                    f"{UI_PORT_SETTING}"
                )
            if note := unused_event_retention(config.schedule):
                print(f"warning: {note}", file=sys.stderr)
            if not healthy(api, timeout=5):
                raise ServerStartError(
                    f"no Prefect server answers at {api} (PREFECT_API_URL); start it, or unset "
                    "PREFECT_API_URL and serve starts its own"
                )
            with watching_api(RUNS, api, True, out):
                asyncio.run(execute(planned, api, out, keep_runs=config.schedule.keep_runs))
            out("serve: stopped")
        else:
            last_words = beating.last_words if beating else lambda _: None
            _serve_with_a_local_server(planned, out, config.schedule, port, last_words)
    except ServeError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        if beating and exc.told_as:
            beating.last_words(f"{exc.told_as}: {exc}")
        return 2
    except httpx.HTTPError as exc:  # the server went away or refused a request
        said = f"the Prefect server failed a request: {without_credentials(redact(str(exc)))}"
        print(f"serve: {said}", file=sys.stderr)
        if beating:
            beating.last_words(f"serve stopped: {said}")
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        watching.close()
    leave(0)


def unused_event_retention(schedule: ScheduleConfig) -> str | None:
    """What to say when the config sets `schedule.keep_events` and serve uses a server at
    PREFECT_API_URL: the retention is a setting of the server process, which serve sets only
    on the server it starts itself."""
    if "keep_events" not in schedule.model_fields_set:
        return None
    return (
        f"schedule.keep_events ({format_duration(schedule.keep_events, exact=True)}) is unused: "
        "the Prefect server at PREFECT_API_URL keeps events as it is configured "
        "(PREFECT_SERVER_EVENTS_RETENTION_PERIOD of that server); serve sets it only on the "
        "server it starts itself"
    )


def _serve_with_a_local_server(
    planned: list[Planned],
    out: Print,
    schedule: ScheduleConfig,
    port: int | None,
    last_words: Callable[[str], None],
) -> None:
    if running := served_api():
        raise AlreadyServing(
            f"another `fleet-alerting serve` is running with this PREFECT_HOME (API {running}):"
            " two would run every scheduled run twice; stop it first, or give this one "
            "another PREFECT_HOME"
        )
    exited, pids = ServerExit(), []

    def exit_at_once() -> None:  # serve exits without stopping its server: kill it (a hung one too)
        remove_marker()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    keep = (schedule.keep_runs, schedule.keep_events)
    with local_server(port, None, *keep, exited.report, started=pids.append) as url:
        write_marker(url)
        try:
            ui = url.removesuffix("/api")
            out(
                f"Started a local Prefect server: UI at {ui} (API {url}: `fleet-alerting run` "
                "and `trigger` on this machine find it)"
            )
            # its server prunes itself; should it exit, so does serve
            run = execute(planned, url, out, exit_at_once, server_exit=(exited, last_words))
            with watching_api(RUNS, url, False, out):  # a server that hangs does not exit
                asyncio.run(run)
        finally:
            remove_marker()
    out("serve: stopped, and its Prefect server with it")


def leave(code: int) -> NoReturn:
    """Exit now that serve has stopped: its runs' logs and events went to the server before it
    stopped (`flush_to_the_server`); Prefect's exit-time workers would only retry them against
    a server that is gone, for seconds."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _watch_self(
    stack: contextlib.ExitStack,
    config: Config,
    planned: list[Planned],
    sidecars: Sequence[Sidecar],
    out: Print,
) -> Heartbeat | None:
    """Record each watch's runs (RUNS) for the sidecars and the heartbeat, and start them."""
    watches = [p.schedule.flow for p in planned if p.schedule.flow in CONFIGURED]
    RUNS.expect({w: watch_interval(config, w) for w in watches}, deployments=len(planned))
    for sidecar in sidecars:
        stack.enter_context(sidecar(config, RUNS, out))
    return stack.enter_context(heartbeat(config, RUNS, out))


def _problems(config: Config, config_path: str) -> list[str]:
    """What check-config calls errors (a secret file missing...): said at start, not fatal —
    the watches that do not need it still run; those that do fail with the same words."""
    from fleet_alerting.config.checks import check

    return [f.at(Path(config_path)) for f in check(config, None) if f.level == "error"]


POLL_SECONDS = 5.0  # how late a triggered run may start (each ask costs the server ~7 ms)
# seconds between asks that mark serve's deployments polled (Ready): a third of the 60 s after
# which the foreman of a server that runs one (PREFECT_API_URL's) shows them Not Ready
MARK_READY_EVERY = 20.0
DUE_SLACK = timedelta(seconds=0.1)  # runs due this close together start at one wake-up
# intervals count from here: runs of watches with one interval are due together, on round times
INTERVAL_ANCHOR = datetime(2020, 1, 1, tzinfo=UTC)


GRACE = 1.0  # seconds runs in flight get to finish once asked to stop; then they are cancelled
STOP_WITHIN = 4.5  # a stop that hangs (a thread stuck in I/O) exits anyway, within the 5 s said


class Stop:
    """SIGINT (Ctrl-C) or SIGTERM: the first asks serve to stop — runs in flight get GRACE
    seconds, then are cancelled, and the process is gone within STOP_WITHIN seconds whatever
    hangs; a second one exits at once (128 + the signal: 130 for Ctrl-C). A run cut off never
    loses a notification: the ones it claimed stay queued and their claims expire.

    Plain `signal.signal` handlers, not the event loop's: they run even while the loop is busy,
    and the second signal needs no loop at all.

    serve's own Prefect server exiting unasked (`server_exited`) exits at once with 2, after
    saying why in the log and to the dead man's switch (`last_words`): with its server gone
    nothing runs, and Prefect's client would retry it for minutes; the service manager restarts
    serve whole. Told through the loop, after any stop signal that came with it (systemd's stop
    signals serve and its server together): a server stopped with serve is no failure."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_exit: Callable[[], None],
        last_words: Callable[[str], None] = lambda _: None,
    ):
        self.event = asyncio.Event()
        self.asked = False
        self._loop = loop
        self._on_exit = on_exit  # what an exit at once still does (the marker of our server)
        self._last_words = last_words
        self._before: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._before[sig] = signal.signal(sig, self._signalled)

    def restore(self) -> None:
        """Serve ended for another reason (its server failed): signals mean what they meant."""
        for sig, handler in self._before.items():
            signal.signal(sig, handler)

    def _signalled(self, signum: int, _frame: object) -> None:
        if self.asked:  # also while the local server stops, after the loop is gone
            self._exit_now(f"serve: {signal.Signals(signum).name} again: exiting now", signum)
        self.asked = True
        with contextlib.suppress(RuntimeError):  # the loop is closing: the watchdog remains
            self._loop.call_soon_threadsafe(self.event.set)
        watchdog = threading.Timer(STOP_WITHIN, self._overdue)
        watchdog.daemon = True
        watchdog.start()

    def _overdue(self) -> None:
        self._exit_now(f"serve: not stopped within {STOP_WITHIN:g} s: exiting now", 0)

    def server_exited(self, reason: str) -> None:
        """From any thread: serve's server exited without being asked."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: serve is stopping anyway
            self._loop.call_soon_threadsafe(self._server_exited, reason)

    def _server_exited(self, reason: str) -> None:
        if self.asked:
            return
        self.asked = True
        line = f"serve: {reason}; exiting (2) for the service manager to restart serve"
        self._exit_now(line, 0, code=2, told=reason)

    def _exit_now(self, line: str, signum: int, code: int = 1, told: str = "") -> None:
        with contextlib.suppress(Exception):  # what was printed before, if the stream is free
            sys.stdout.flush()
        os.write(sys.stderr.fileno(), f"{line}\n".encode())  # print() is not reentrant
        with contextlib.suppress(Exception):
            self._on_exit()
        if told:
            with contextlib.suppress(Exception):
                self._last_words(told)
        os._exit(128 + signum if signum else code)


async def execute(
    planned: list[Planned],
    api_url: str,
    out: Print = print,
    on_exit: Callable[[], None] = lambda: None,
    keep_runs: timedelta | None = None,
    server_exit: tuple[ServerExit, Callable[[str], None]] | None = None,
) -> None:
    """Register the deployments, then run their due flow runs in-process until SIGTERM/SIGINT
    (see Stop; `on_exit` is what an exit at once must still do). `keep_runs`: delete older runs
    through the API (a server serve did not start; its own server prunes itself). `server_exit`:
    where serve's own server's exit is reported, and how to tell the dead man's switch."""
    from prefect.settings import temporary_settings

    exited, last_words = server_exit or (None, lambda _: None)
    stop = Stop(asyncio.get_running_loop(), on_exit, last_words)
    stop.install()
    if exited:
        exited.attach(stop.server_exited)
    leave_sigterm_to_serve()
    share_tls_contexts()
    skip_suspension_watch()
    remember_result_storage()
    try:
        with temporary_settings(updates=run_settings(api_url)):
            flows = await register(planned, out)
            async with _pruning(keep_runs, stop.event, out):
                await run_due(flows, stop.event, POLL_SECONDS, out)
            await flush_to_the_server()
    finally:
        if not stop.asked:
            stop.restore()


def run_settings(api_url: str) -> dict[Any, Any]:
    """Settings of serve's runs: the server they are recorded in, and no flow-run heartbeat —
    a thread and an event per run, for Prefect to find a run whose process died; serve's runs
    live and die with serve, which the metrics endpoint and the dead man's switch watch."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    return {PREFECT_API_URL: api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}


@contextlib.asynccontextmanager
async def _pruning(
    keep_runs: timedelta | None, stop: asyncio.Event, out: Print
) -> AsyncIterator[None]:
    """Old runs of this project's flows deleted from Prefect beside the runs, hourly."""
    if keep_runs is None:
        yield
        return
    now = partial(datetime.now, UTC)
    task = asyncio.create_task(keep_pruned(ENTRYPOINTS, keep_runs, stop, now, out))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def register(planned: list[Planned], out: Print) -> dict[UUID, Any]:
    """Create or update one deployment per planned entry; pause our deployments that this config
    no longer serves (so the server stops scheduling runs nobody executes)."""
    from prefect.client.orchestration import get_client
    from prefect.schedules import Interval

    flows: dict[UUID, Any] = {}
    for p in planned:
        flow = get_flow(p.schedule.flow)
        deployment = await flow.ato_deployment(
            name=p.schedule.name,
            cron=p.cron,
            schedule=Interval(p.every, anchor_date=INTERVAL_ANCHOR) if p.every else None,
            description=p.schedule.description,
            parameters=p.parameters,
            concurrency_limit=1,  # two runs of one deployment never evaluate at once
            tags=[TAG],
        )
        flows[await deployment.aapply()] = flow
        out(f"serving {p.schedule.flow}/{p.schedule.name} ({p.period})")
    async with get_client() as client:
        for deployment in await client.read_deployments():
            if deployment.id in flows:
                await client.resume_deployment(deployment.id)
            elif TAG in (deployment.tags or []) and not deployment.paused:
                await client.pause_deployment(deployment.id)
    RUNS.begin(datetime.now(UTC))
    return flows


async def run_due(flows: dict[UUID, Any], stop: asyncio.Event, poll: float, out: Print) -> None:
    from prefect.states import Cancelled

    active: dict[UUID, asyncio.Task[bool]] = {}
    names: dict[UUID, tuple[UUID, str]] = {}  # deployment -> its run in flight: id, "flow run"
    started: set[UUID] = set()
    newest: dict[UUID, datetime] = {}  # deployment -> its newest scheduled run started
    mark_ready_at = time.monotonic()  # the first ask marks serve's deployments Ready
    async with one_client() as client:  # the runs' too (they are started inside)
        try:
            while not stop.is_set():
                now = datetime.now(UTC)
                mark_ready = time.monotonic() >= mark_ready_at
                listed = await scheduled_runs(client, list(flows), now + poll * SECOND, mark_ready)
                if mark_ready:
                    mark_ready_at = time.monotonic() + MARK_READY_EVERY
                if listed is None:  # no answer (the API watch says so): ask at the next poll
                    listed = []
                else:  # what was started is forgotten only once the server lists it no more
                    _forget_gone(started, listed)
                due, next_start = _due(listed, now)
                for deployment_id, runs in _by_deployment(due, started).items():
                    if deployment_id in active:
                        continue  # concurrency 1: the next due run waits for this one
                    run, superseded = pick(runs, newest.get(deployment_id))
                    newer = f"the newer run {run.name}" if run else "a newer run that ran"
                    for old in superseded:
                        started.add(old.id)
                        state = Cancelled(message=f"superseded by {newer}")
                        with contextlib.suppress(Exception):
                            await client.set_flow_run_state(old.id, state, force=True)
                    if run is None:
                        continue
                    started.add(run.id)
                    task = asyncio.create_task(_run(flows[deployment_id], run, out))
                    active[deployment_id] = task
                    names[deployment_id] = (run.id, f"{flows[deployment_id].name} {run.name}")
                    task.add_done_callback(partial(_ended, active, started, newest, run))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _until(next_start, poll))
        finally:
            in_flight = {d: names[d] for d in active}
            if in_flight:
                runs = ", ".join(name for _, name in in_flight.values())
                out(
                    f"serve: stopping; waiting up to {GRACE:g} s for the run(s) in flight, then "
                    f"cancelling them (their notifications stay queued): {runs} — press Ctrl-C "
                    "again to exit at once"
                )
            else:
                out("serve: stopping; no run in flight")
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    for deployment_id in flows:
                        await client.pause_deployment(deployment_id)
            await _cancel_in_flight(client, active, in_flight, out)


async def _cancel_in_flight(
    client: Any,
    active: dict[UUID, asyncio.Task[bool]],
    in_flight: dict[UUID, tuple[UUID, str]],
    out: Print,
) -> None:
    """Runs in flight get GRACE seconds; the rest are cancelled (the task, then the run's state in
    Prefect: Cancelled, not left Running). What a cancelled run claimed in the outbox stays
    queued, and the claim expires for the next drainer."""
    from prefect.states import Cancelled

    tasks = {d: t for d, t in active.items() if not t.done()}
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks.values(), timeout=GRACE)
    cut = [d for d, t in tasks.items() if t in pending]
    for deployment_id in cut:
        tasks[deployment_id].cancel()
    if not cut:
        return
    await asyncio.wait([tasks[d] for d in cut], timeout=0.5)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            for deployment_id in cut:
                run_id = in_flight[deployment_id][0]
                state = Cancelled(
                    message="serve stopped while it ran; its notifications stay queued"
                )
                await client.set_flow_run_state(run_id, state, force=True)
    out(f"serve: cancelled {', '.join(in_flight[d][1] for d in cut)}")


async def scheduled_runs(
    client: Any, deployment_ids: list[UUID], before: datetime, mark_ready: bool
) -> list[Any] | None:
    """Runs of these deployments still Scheduled to start before `before`, latest first. Asked
    as Prefect's runners ask (`mark_ready`), the server also records the deployments as polled —
    shown Ready in the UI — in a write transaction per ask (~2x the CPU of a plain read): serve
    asks that way once every MARK_READY_EVERY, else reads. None while the server does not answer
    or answers 5xx (after Prefect's retries): the API watch says so, and serve asks again at its
    next poll."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterNextScheduledStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    try:
        if mark_ready:  # its answer is capped oldest first: read below, newest first
            await client.get_scheduled_flow_runs_for_deployments(
                deployment_ids=deployment_ids, scheduled_before=before, limit=1
            )
        return await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=deployment_ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=before),
            ),
            # newest first: the server caps the answer (200), and of overdue runs the newest is
            # the one to run; the older ones are superseded in later asks
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        )
    except httpx.TransportError:
        return None
    except httpx.HTTPStatusError as exc:  # a proxy's 502 for a server gone, a server's 500
        if exc.response.status_code >= 500:
            return None
        raise


def _starts(run: Any) -> datetime:
    return run.next_scheduled_start_time or run.expected_start_time or run.created


def _due(listed: list[Any], now: datetime) -> tuple[list[Any], datetime | None]:
    """The listed runs due now (within DUE_SLACK), and when the next of the others starts."""
    due = [run for run in listed if _starts(run) <= now + DUE_SLACK]
    later = [_starts(run) for run in listed if _starts(run) > now + DUE_SLACK]
    return due, min(later, default=None)


def _until(next_start: datetime | None, poll: float) -> float:
    """Seconds to wait before asking again: the next known start, or the poll, whichever first."""
    if next_start is None:
        return poll
    wait = (next_start - datetime.now(UTC)).total_seconds()
    return min(poll, max(DUE_SLACK.total_seconds(), wait))


def _forget_gone(started: set[UUID], listed: list[Any]) -> None:
    """A run started or superseded is remembered only while the server still lists it as
    scheduled (its new state not yet recorded): the set stays as small as one poll, for months."""
    started.intersection_update(run.id for run in listed)


def _by_deployment(runs: list[Any], started: set[UUID]) -> dict[UUID, list[Any]]:
    grouped: dict[UUID, list[Any]] = {}
    for run in sorted(runs, key=_starts):
        if run.id not in started and run.deployment_id is not None:
            grouped.setdefault(run.deployment_id, []).append(run)
    return grouped


def pick(runs: list[Any], newest_started: datetime | None = None) -> tuple[Any, list[Any]]:
    """Of one deployment's due runs (oldest first): a triggered run first; else the newest
    scheduled one, the older scheduled ones being superseded (a watch observes *now*) — all of
    them (None to run) when none is newer than the newest scheduled run already started."""
    manual = [r for r in runs if not r.auto_scheduled]
    if manual:
        return manual[0], []
    if newest_started is not None and _starts(runs[-1]) <= newest_started:
        return None, runs
    return runs[-1], runs[:-1]


def _ended(
    active: dict[UUID, Any],
    started: set[UUID],
    newest: dict[UUID, datetime],
    run: Any,
    task: asyncio.Task[bool],
) -> None:
    """A run's task is done: its deployment may start the next, and scheduled runs due before
    it are superseded; a run that never started (the server did not take its Running state) is
    tried again while the server lists it due."""
    active.pop(run.deployment_id, None)
    ran = not task.cancelled() and task.result()
    if ran and run.auto_scheduled:
        newest[run.deployment_id] = max(_starts(run), newest.get(run.deployment_id, _starts(run)))
    elif not ran:
        started.discard(run.id)


async def _run(flow: Any, flow_run: Any, out: Print) -> bool:
    """Whether the run ran (False: it crashed, e.g. its Running state got no answer)."""
    watch_run = RUNS.started(flow.name)
    try:
        state = await run_in_process(flow, flow_run)
        watch_run.ended(state.is_completed(), state.message or state.name)
        out(f"{flow.name} {flow_run.name}: {state.name}")
        return True
    except Exception as exc:  # a run's failure is recorded in Prefect; serve keeps serving
        watch_run.ended(False, f"crashed ({type(exc).__name__})")
        out(f"{flow.name} {flow_run.name}: crashed ({type(exc).__name__})")
        return False
