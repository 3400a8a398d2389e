"""Session fixtures: an isolated Prefect server for flow tests; real servers per module."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresCluster
from tests.servers import Server, free_port, http_ready, in_ci, startup_timeout

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# A busy machine: Prefect's own deadlines generous too — an ephemeral server, should a test start
# one, gets as long as our servers (default 20 s), and SQLite waits for its lock instead of
# answering 503 (default 10 s / 5 s).
os.environ.setdefault(
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(int(startup_timeout()))
)
os.environ.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "60")
os.environ.setdefault("PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT", "30")


# The longest modules first: `make test` runs two processes (pytest-xdist, a module's tests
# together, in this order: --no-loadscope-reorder), and one that starts the 4-minute two-worker
# test last finishes minutes after the other.
LONGEST_FIRST = ("test_workers.py", "test_delivery_lanes.py", "test_deployments.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stable: each module's tests stay together and in their order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (`CI=true`) a test skipped because a server or tool is not installed fails: CI
    installs them all, so a skip there means a broken setup that would hide untested code."""
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and "not installed" in str(report.longrepr):
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI=true turns this skip into a failure: {why}"


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on a free port with its own PREFECT_HOME; flows in the test process
    talk to it. Heartbeats off: sync flows would otherwise pay ~1 s each."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_HOME,
        temporary_settings,
    )

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_HOME"] = str(home)
    server = Server(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        home,
        http_ready(f"{url}/health"),
        "prefect-server",
        env=os.environ | {"PREFECT_UI_API_URL": url},  # its UI works (headless Chromium)
    )
    updates = {
        PREFECT_API_URL: url,
        PREFECT_HOME: str(home),
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
    }
    with temporary_settings(updates=updates):
        yield url
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()
    server.stop()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Where a test writes its config; state and outbox land beside it."""
    return tmp_path / "config.yaml"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster (tests/postgres.py); each user creates its own database."""
    cluster = PostgresCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, on each backend: a SQLite file, or a PostgreSQL database of its own."""
    from tests.stores import new_database

    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite")
    return new_database(request)
