"""Fixtures for the audit tests: the CLI runner, a real Prometheus, the Prefect harness."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import httpx
import pytest

from fleet_alerting.audit.cli import add_commands
from tests.servers import free_port, start_prometheus, wait_until


def run_cli(argv: list[str]) -> int:
    """What the main `fleet-alerting` entry point does with our commands."""
    parser = argparse.ArgumentParser(prog="fleet-alerting")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def run(*argv: str) -> tuple[int, str, str]:
        rc = run_cli(list(argv))
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on loopback scraping itself as job `fleet-api` every second."""
    server, url = start_prometheus(tmp_path_factory.mktemp("prometheus"), {"fleet-api": None})
    params = {"match[]": 'up{job="fleet-api"}'}

    def scraped() -> bool:
        resp = httpx.get(f"{url}/api/v1/series", params=params, timeout=1)
        return bool(resp.json()["data"])

    try:
        wait_until(scraped, 30, "first scrape")
        yield url
    finally:
        server.stop()
