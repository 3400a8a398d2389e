"""The one module that uses Prefect internals (not its documented API): what `serve` needs to be
its own runner — its local server as a child process (`python -m` this module), each due run
executed inside serve's process by Prefect's engine. Prefect's public runner (`flow.serve`,
workers) starts a `python -m prefect.engine` child per run: ~118 MB and 7–13 s to start each,
too much for a small VPS.

What this relies on, pinned against the installed Prefect by tests/test_prefect_engine_pin.py
(and import-linter keeps every other module off these internals):
- `prefect.flow_engine.run_flow(flow, flow_run=, return_type="state")` runs an existing flow
  run of `flow` to its final state and returns that State (Completed, Failed, Crashed...) rather
  than raising when the flow fails; the state is also recorded on the server. For an async flow
  it returns a coroutine, for a sync one it blocks (run here in a thread).
- Cancellation: serve cancels the asyncio task running `run_in_process`; an async flow gets
  CancelledError at its next await, a sync flow's thread runs on unobserved. Either way serve
  then sets the run's state to Cancelled through the client (public API).
- `prefect.flow_engine.capture_sigterm`, looked up as a module global when a run starts:
  replaced by a no-op so SIGTERM reaches serve's own handler, not the engine's.
- `prefect.flow_engine.observe_flow_run_suspension(flow_run_id, request)`, looked up as a module
  global when a deployment's run starts: replaced by a no-op (`skip_suspension_watch`).
- `prefect.client.orchestration.ssl`, the module through which every Prefect client builds its
  TLS context: given one whose `create_default_context` builds each context once
  (`share_tls_contexts`).
- `prefect.server.api.server.create_app(final=True)`: the server's ASGI app, for uvicorn (in
  the child process `serve_api` runs); uvicorn's `Server.main_loop`, replaced by a slower tick
  calling its `on_tick` (`slow_tick_server`).
- `APILogWorker.drain_all` / `EventsWorker.drain_all(timeout=, at_exit=False)`: the runs' last
  logs and events sent while the server still answers.
- `prefect.context.AsyncClientContext`: entered once (`one_client`), its client is the one every
  run started inside it uses (the engine's `AsyncClientContext.get_or_create`).
- `prefect.results._aread_server_default_result_storage_block_id` and its sync twin, looked up as
  module globals on each call: replaced by a remembering version (`remember_result_storage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


async def run_in_process(flow: Any, flow_run: Any) -> Any:
    """Run the server's `flow_run` of `flow` here; its final State (also on the server)."""
    from prefect.flow_engine import run_flow

    if flow.isasync:
        return await run_flow(flow, flow_run=flow_run, return_type="state")
    # a sync flow in a thread, so the other watches keep their schedule
    return await asyncio.to_thread(run_flow, flow, flow_run=flow_run, return_type="state")


def leave_sigterm_to_serve() -> None:
    """Serve owns SIGTERM: Prefect's bridge would raise TerminationSignal wherever the main thread
    is — the event loop, not the run — while serve's own stop cancels the runs cleanly."""
    import prefect.flow_engine

    prefect.flow_engine.capture_sigterm = contextlib.nullcontext  # type: ignore[attr-defined]


def skip_suspension_watch() -> None:
    """Prefect watches every deployment run for a request to suspend it: a thread with its own
    event loop, client and event subscription per run (a fifth of serve's CPU). A watch run is
    never suspended — it observes now, and the next run comes within an interval."""
    import prefect.flow_engine

    prefect.flow_engine.observe_flow_run_suspension = _never_suspended  # type: ignore[attr-defined]


def _never_suspended(*_args: Any, **_kwargs: Any) -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


class _SharedTlsContexts:
    """The `ssl` module, but `create_default_context` builds each distinct context once: Prefect
    builds one — loading the whole CA bundle, ~20 ms of CPU — for every client it opens, several
    per run (a third of serve's CPU). The same settings make the same context, and an SSLContext
    may be shared between threads; the settings do not change while serve runs."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(self, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        key = (args, tuple(sorted(kwargs.items())))
        with self._lock:
            if key not in self._made:
                self._made[key] = ssl.create_default_context(*args, **kwargs)
            return self._made[key]


def share_tls_contexts() -> None:
    import prefect.client.orchestration

    if not isinstance(prefect.client.orchestration.ssl, _SharedTlsContexts):
        prefect.client.orchestration.ssl = _SharedTlsContexts()  # type: ignore[assignment]


@contextlib.asynccontextmanager
async def one_client() -> AsyncIterator[Any]:
    """One Prefect client for serve's polls and every run started inside: Prefect's engine would
    open a client per run — a new connection, and a request for a CSRF token, each time."""
    from prefect.context import AsyncClientContext

    async with AsyncClientContext() as context:
        yield context.client


RESULT_STORAGE_KEPT = 300.0  # seconds


class _RememberedResultStorage:
    """Prefect asks the server for its default result storage twice in every flow run (for the
    run's result store, and whether to persist its result) — a request each, one through a sync
    client of its own. The answer changes only when an operator sets a server-wide storage block;
    remembered RESULT_STORAGE_KEPT seconds, so such a change still applies within minutes."""

    def __init__(
        self,
        read: Callable[[], Any],
        aread: Callable[[], Awaitable[Any]],
        keep: float = RESULT_STORAGE_KEPT,
    ) -> None:
        self.original_read, self.original_aread, self._keep = read, aread, keep
        self._answer: Any = None
        self._until = float("-inf")

    def _remembered(self) -> bool:
        return time.monotonic() < self._until

    def _remember(self, answer: Any) -> Any:
        self._answer, self._until = answer, time.monotonic() + self._keep
        return answer

    def read(self) -> Any:
        return self._answer if self._remembered() else self._remember(self.original_read())

    async def aread(self) -> Any:
        if self._remembered():
            return self._answer
        return self._remember(await self.original_aread())


def remember_result_storage(keep: float = RESULT_STORAGE_KEPT) -> None:
    import prefect.results as results

    read = results._read_server_default_result_storage_block_id
    if isinstance(getattr(read, "__self__", None), _RememberedResultStorage):
        return
    remembered = _RememberedResultStorage(
        read, results._aread_server_default_result_storage_block_id, keep
    )
    results._read_server_default_result_storage_block_id = remembered.read  # type: ignore[assignment]
    results._aread_server_default_result_storage_block_id = remembered.aread  # type: ignore[assignment]


def server_app() -> Any:
    """The Prefect server (API, UI, scheduler) as an ASGI app, under the settings in force."""
    from prefect.server.api.server import create_app

    return create_app(final=True)


def serve_api(port: int) -> int:
    """The child process of `serve`: the Prefect server on 127.0.0.1:`port` under the settings of
    its environment, until SIGTERM — or until serve is gone (killed, it could not stop it)."""
    import uvicorn

    bound_sqlite_memory()
    threading.Thread(target=_give_back_every, daemon=True).start()
    config = uvicorn.Config(
        server_app(),
        host="127.0.0.1",
        port=port,
        log_level="error",
        timeout_graceful_shutdown=1,  # serve stops within seconds
    )
    server = slow_tick_server(config)
    threading.Thread(target=_stop_when_orphaned, args=(server,), daemon=True).start()
    server.run()
    return 0 if server.started else 1  # not started: its port was taken (said on stderr)


TICK = 0.5  # seconds


def slow_tick_server(config: Any) -> Any:
    """A uvicorn server whose loop looks every TICK seconds whether to stop, not every 0.1 s:
    an idle server's event loop wakes some 60 times a second, and at idle the wake-ups are most
    of its CPU (py-spy: ~70 % of the main thread's samples in epoll). A stop takes up to TICK
    longer; the Date header is renewed at each tick instead of each tenth."""
    import uvicorn

    class SlowTickServer(uvicorn.Server):
        async def main_loop(self) -> None:
            while not await self.on_tick(0):  # 0: the tick that renews the Date header
                await asyncio.sleep(TICK)

    return SlowTickServer(config)


SQLITE_MEMORY = 64 * 2**20


def bound_sqlite_memory(limit: int = SQLITE_MEMORY) -> None:
    """Prefect gives each SQLite connection a page cache of up to 20,000 pages (~80 MB), and its
    pool keeps several: the server's memory would grow with the database for hours. SQLite's soft
    heap limit holds all of this process's SQLite memory near `limit`, caches shrinking first;
    the pages it drops are still in the operating system's file cache."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute(f"PRAGMA soft_heap_limit = {int(limit)}")


def give_back_freed_memory() -> bool:
    """glibc keeps what the server frees (request bodies, query rows) in its heaps for reuse, and
    a heap with one live block near its top cannot shrink: over hours the server's RSS grows while
    its Python heap stays flat. `malloc_trim` hands the free pages back to the system. False where
    the C library is not glibc."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def _give_back_every(seconds: float = 60.0) -> None:
    while give_back_freed_memory():
        time.sleep(seconds)


def _stop_when_orphaned(server: Any, every: float = 1.0) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(every)
    server.should_exit = True


async def flush_to_the_server(timeout: float = 0.5) -> None:
    """Send the runs' last logs and events while the server still answers: at exit, with a
    local server already gone, Prefect's workers would retry them for seconds."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            await worker.drain_all(timeout=timeout, at_exit=False)


if __name__ == "__main__":
    sys.exit(serve_api(int(sys.argv[1])))
