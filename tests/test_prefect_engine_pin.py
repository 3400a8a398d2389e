"""Pins deployments/prefect_engine.py (serve's in-process runs through Prefect internals) against
the installed Prefect: a Prefect upgrade that changes what it relies on fails here, not silently
in `serve`'s scheduling."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import signal
import threading
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from fleet_alerting.deployments.prefect_engine import (
    leave_sigterm_to_serve,
    one_client,
    remember_result_storage,
    run_in_process,
    share_tls_contexts,
    skip_suspension_watch,
)

ADAPTER = "deployments/prefect_engine.py"
LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
SIGTERM_IN_RUN: dict[str, Any] = {}


def _parameters(fn: Any) -> set[str]:
    return set(inspect.signature(fn).parameters)


def test_the_installed_prefect_is_the_one_the_adapter_was_pinned_against() -> None:
    locked = re.search(r"^prefect==(\S+)", LOCK.read_text(), re.MULTILINE)
    assert locked, f"requirements.lock pins no prefect version ({ADAPTER} is pinned against it)"
    assert version("prefect") == locked.group(1), (
        f"Prefect {version('prefect')} is installed but requirements.lock pins {locked.group(1)}: "
        f"{ADAPTER} uses Prefect internals checked only against the locked version; re-run "
        "tests/test_prefect_engine_pin.py on the new one and update the lock"
    )


def test_the_internals_the_adapter_calls_take_the_parameters_it_passes() -> None:
    import prefect.flow_engine
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import create_app

    assert {"flow", "flow_run", "return_type"} <= _parameters(prefect.flow_engine.run_flow)
    assert "final" in _parameters(create_app)
    for worker in (APILogWorker, EventsWorker):
        assert {"timeout", "at_exit"} <= _parameters(worker.drain_all), worker
    # replaced by leave_sigterm_to_serve: it only takes effect while the engine looks it up as a
    # module global each time a run starts
    assert "with capture_sigterm():" in inspect.getsource(prefect.flow_engine)
    # replaced by skip_suspension_watch, looked up the same way
    assert "observe_flow_run_suspension(" in inspect.getsource(prefect.flow_engine)


@flow(name="pin-sync-ok")
def sync_ok() -> int:
    return 1


@flow(name="pin-sync-fails")
def sync_fails() -> None:
    raise ValueError("the flow fails")


@flow(name="pin-async-ok")
async def async_ok() -> int:
    SIGTERM_IN_RUN["handler"] = signal.getsignal(signal.SIGTERM)
    return 1


@flow(name="pin-async-fails")
async def async_fails() -> None:
    raise ValueError("the flow fails")


async def _run_through_the_adapter(watch: Any) -> tuple[Any, Any]:
    """The state the adapter reports, and the one the server recorded for that run."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await client.create_flow_run(watch)
        state = await run_in_process(watch, flow_run)
        recorded = await client.read_flow_run(flow_run.id)
    return state, recorded.state


@pytest.mark.parametrize(
    ("watch", "completes"),
    [(sync_ok, True), (sync_fails, False), (async_ok, True), (async_fails, False)],
    ids=["sync-completes", "sync-fails", "async-completes", "async-fails"],
)
def test_a_run_through_the_adapter_reports_its_final_state(
    prefect_api: str, watch: Any, completes: bool
) -> None:
    state, recorded = asyncio.run(_run_through_the_adapter(watch))
    assert state.is_completed() is completes, state
    assert state.is_failed() is not completes, state
    assert recorded.type == state.type, (recorded, state)


def test_serve_keeps_sigterm_during_an_in_process_run(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.flow_engine

    # restored after the test: the no-op is serve's, not the test process's
    monkeypatch.setattr(prefect.flow_engine, "capture_sigterm", prefect.flow_engine.capture_sigterm)

    def serves_handler(_signum: int, _frame: object) -> None:
        return None

    before = signal.signal(signal.SIGTERM, serves_handler)
    try:
        leave_sigterm_to_serve()
        state, _ = asyncio.run(_run_through_the_adapter(async_ok))
    finally:
        signal.signal(signal.SIGTERM, before)
    assert state.is_completed(), state
    assert SIGTERM_IN_RUN["handler"] is serves_handler, (
        f"Prefect's engine replaced serve's SIGTERM handler during a run: {ADAPTER}'s "
        "leave_sigterm_to_serve no longer takes effect"
    )


@flow(name="pin-threads")
async def threads_in_run() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate()]


def test_a_deployments_run_opens_no_suspension_watch_and_builds_no_tls_context_again(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    import prefect.client.orchestration
    import prefect.flow_engine

    for module, name in [
        (prefect.flow_engine, "observe_flow_run_suspension"),
        (prefect.client.orchestration, "ssl"),
    ]:  # serve's, not the test process's: restored after the test
        monkeypatch.setattr(module, name, getattr(module, name))
    built: list[object] = []
    real = ssl.create_default_context
    monkeypatch.setattr(
        ssl, "create_default_context", lambda *a, **k: built.append(a) or real(*a, **k)
    )
    skip_suspension_watch()
    share_tls_contexts()
    threads, states = asyncio.run(_two_deployment_runs())
    assert all(state.is_completed() for state in states), states
    assert not [name for name in threads if "observer_thread" in name], (
        f"a deployment's run watched for suspension: {ADAPTER}'s skip_suspension_watch no longer "
        f"takes effect ({threads})"
    )
    assert len(built) <= 1, (
        f"{len(built)} TLS contexts built for Prefect clients: {ADAPTER}'s share_tls_contexts"
    )


async def _two_deployment_runs() -> tuple[list[str], list[Any]]:
    from prefect.client.orchestration import get_client

    deployment = await threads_in_run.ato_deployment(name="pin")
    deployment_id = await deployment.aapply()
    states, threads = [], []
    async with get_client() as client:
        for _ in range(2):
            flow_run = await client.create_flow_run_from_deployment(deployment_id)
            state = await run_in_process(threads_in_run, flow_run)
            states.append(state)
            threads += await state.result()
    return threads, states


class _Requests(logging.Handler):
    """The requests the runs make, as httpx logs each one: (method, path) — on the thread they run
    on: Prefect's log and event workers send from threads of their own, with clients of their own
    (the log worker's first batch asks for its CSRF token whichever run it falls in)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.made: list[tuple[str, str]] = []
        self.runs_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.runs_thread:
            return
        method, url = record.args[0], str(record.args[1])  # type: ignore[index]
        self.made.append((method, url.split("/api", 1)[-1].split("?")[0]))


def test_runs_inside_one_client_ask_for_no_csrf_token_and_no_result_storage_each(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.results

    for name in [  # serve's, not the test process's: restored after the test
        "_read_server_default_result_storage_block_id",
        "_aread_server_default_result_storage_block_id",
    ]:
        monkeypatch.setattr(prefect.results, name, getattr(prefect.results, name))
    remember_result_storage()
    requests = _Requests()
    httpx_logger, level = logging.getLogger("httpx"), logging.getLogger("httpx").level
    httpx_logger.setLevel(logging.INFO)
    httpx_logger.addHandler(requests)
    try:
        states, per_run = asyncio.run(_runs_in_one_client(requests, runs=3))
    finally:
        httpx_logger.removeHandler(requests)
        httpx_logger.setLevel(level)
    assert all(state.is_completed() for state in states), states
    later = [made for run in per_run[1:] for made in run]
    asked_again = [r for r in later if r[1] in ("/csrf-token", "/admin/storage")]
    assert not asked_again, (
        f"runs after the first asked again for {asked_again}: {ADAPTER}'s one_client or "
        f"remember_result_storage no longer takes effect (requests per run: {per_run})"
    )
    assert ("POST", f"/flow_runs/{states[-1].state_details.flow_run_id}/set_state") in later


async def _runs_in_one_client(requests: _Requests, runs: int) -> tuple[list[Any], list[list]]:
    deployment = await async_ok.ato_deployment(name="pin-one-client")
    deployment_id = await deployment.aapply()
    states, per_run = [], []
    async with one_client() as client:
        for _ in range(runs):
            flow_run = await client.create_flow_run_from_deployment(deployment_id)
            requests.made.clear()
            states.append(await asyncio.create_task(run_in_process(async_ok, flow_run)))
            per_run.append(list(requests.made))
    return states, per_run


def test_the_servers_default_result_storage_is_remembered_for_a_while_then_asked_again(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import prefect.results

    for name in [  # serve's, not the test process's: restored after the test
        "_read_server_default_result_storage_block_id",
        "_aread_server_default_result_storage_block_id",
    ]:
        monkeypatch.setattr(prefect.results, name, getattr(prefect.results, name))
    # kept long enough that saving the block and setting it on a loaded machine stays within it
    remember_result_storage(keep=6.0)
    set_it = _set_a_server_default_result_storage(tmp_path, after=6.5)
    before, remembered, later = asyncio.run(set_it)
    assert before is None
    assert remembered is None, "asked the server again within the time it is remembered"
    assert later is not None, "a server-wide result storage set while serve runs never applied"
    assert prefect.results._read_server_default_result_storage_block_id() == later  # sync too


async def _set_a_server_default_result_storage(folder: Path, after: float) -> tuple[Any, Any, Any]:
    from prefect.client.orchestration import get_client
    from prefect.filesystems import LocalFileSystem
    from prefect.results import _aread_server_default_result_storage_block_id as read

    before = await read()
    block_id = await LocalFileSystem(basepath=str(folder)).save("pin-results", overwrite=True)
    async with get_client() as client:
        await client.update_server_default_result_storage(block_id)
        try:
            remembered = await read()
            await asyncio.sleep(after)
            return before, remembered, await read()
        finally:
            await client.clear_server_default_result_storage()


def test_the_slow_tick_server_answers_with_a_date_and_stops_when_asked() -> None:
    """`slow_tick_server` replaces uvicorn's `Server.main_loop` (its 0.1-s tick): the server still
    answers, with a Date header, and stops within a tick of being asked (`should_exit`)."""
    import time

    import httpx
    import uvicorn

    from fleet_alerting.deployments.prefect_engine import TICK, slow_tick_server
    from fleet_alerting.deployments.serve import free_port

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    server = slow_tick_server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    assert isinstance(server, uvicorn.Server)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = httpx.get(f"http://127.0.0.1:{port}/")
    assert answer.text == "ok" and answer.headers["date"].endswith(" GMT")
    asked = time.monotonic()
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - asked < TICK + 1.5, f"{ADAPTER}'s slow_tick_server did not stop"
