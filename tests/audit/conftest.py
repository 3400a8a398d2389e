"""Fixtures for the audit tests: the CLI runner, a real Prometheus, the Prefect harness."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Callable, Iterator

import httpx
import pytest
from audit_helpers import free_port, wait_for

from fleet_alerting.audit.cli import add_commands


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
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed")
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: fleet-api\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp / 'data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 30, "ready")
        params = {"match[]": 'up{job="fleet-api"}'}

        def scraped() -> bool:
            resp = httpx.get(f"{url}/api/v1/series", params=params, timeout=1)
            return bool(resp.json()["data"])

        wait_for(scraped, 30, "first scrape")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
