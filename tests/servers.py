"""Real servers from Debian packages, started on free loopback ports for one test session.

Each waits for readiness with a deadline (never a fixed sleep) and is stopped with SIGTERM. The
deadline is generous — a busy 2-core machine needs up to a minute for a Prefect server — and
configurable: FLEET_ALERTING_STARTUP_TIMEOUT (seconds, default 180). A missing server binary skips
its tests on a developer's machine and fails them in CI (`CI=true`, set by CI runners).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

STARTUP_SETTING = "FLEET_ALERTING_STARTUP_TIMEOUT"


def startup_timeout() -> float:
    """Seconds a server may take to become ready (FLEET_ALERTING_STARTUP_TIMEOUT, default 180)."""
    return float(os.environ.get(STARTUP_SETTING) or 180)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(config: Path, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`fleet-alerting serve --config CONFIG` of this checkout, its output to `log`."""
    root = Path(__file__).parents[1]
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fleet_alerting.surfaces.cli", "serve", "--config", str(config)],
            cwd=root,  # `python -m` puts it first on the path: this checkout's code
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not reached within {timeout:g}s")


def http_ready(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1).status_code == 200


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed (make servers installs the Debian packages)"
        if in_ci():  # CI must run every test: a missing server is a broken setup, not a skip
            pytest.fail(f"{why}; CI=true turns this skip into a failure", pytrace=False)
        pytest.skip(why)
    return path


class _Exited(Exception):
    """The server process ended while we waited for it to become ready."""


class Server:
    """A subprocess whose output goes to a log file in its own folder (shown if it fails)."""

    def __init__(
        self,
        argv: Sequence[str],
        workdir: Path,
        ready: Callable[[], bool],
        name: str,
        env: Mapping[str, str] | None = None,
    ):
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=dict(env or os.environ),
            )
        timeout = startup_timeout()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise _Exited
            return ready()

        try:
            wait_until(up, timeout, f"{name} ready")
        except (TimeoutError, _Exited) as exc:
            self.stop()
            cause = (
                f"exited with code {self.proc.returncode}"
                if isinstance(exc, _Exited)
                else f"not ready within {timeout:g}s (raise {STARTUP_SETTING} on a busy machine)"
            )
            log = self.log.read_text()[-2000:]
            raise RuntimeError(f"{name} {cause}; its log:\n{log}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_prometheus(
    workdir: Path,
    jobs: Mapping[str, str | None],
    extra: Mapping[str, Any] | None = None,
) -> tuple[Server, str]:
    """Prometheus from Debian on a free port, scraping every second: job name → target
    (`None`: Prometheus itself); `extra` adds to its config (rule_files, alerting). Returns the
    server and its URL once it is ready."""
    binary = require_binary("prometheus")
    port = free_port()
    own = f"127.0.0.1:{port}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target or own]}]}
            for job, target in jobs.items()
        ],
        **(extra or {}),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = Server(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={own}",
            # an alert sent before the Alertmanager is discovered is dropped: resend soon
            "--rules.alert.resend-delay=1s",
        ],
        workdir,
        http_ready(f"http://{own}/-/ready"),
        "prometheus",
    )
    return server, f"http://{own}"


def start_alertmanager(
    workdir: Path, config_text: str, port: int | None = None
) -> tuple[Server, str]:
    """Alertmanager from Debian on a free port (or `port`: a restart), clustering off. Returns
    the server and its URL."""
    binary = require_binary("prometheus-alertmanager")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(config_text)
    server = Server(
        [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir,
        http_ready(f"http://127.0.0.1:{port}/-/ready"),
        "alertmanager",
    )
    return server, f"http://127.0.0.1:{port}"
