"""A throwaway PostgreSQL cluster from Debian's `postgresql` package, for one test session.

PostgreSQL refuses to run as root, so when the tests run as root (CI) the cluster belongs to
`nobody`: its folder is made outside pytest's private (0700) temporary tree and handed over.
It listens on a free loopback port with trust authentication (nothing else can reach it) and is
stopped, and its folder removed, at the end of the session.

    cluster = PostgresCluster.start()
    url = cluster.create_database("store")   # postgresql+psycopg://postgres@127.0.0.1:PORT/store
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.servers import Server, free_port, in_ci

PACKAGE = "postgresql"


def postgres_bin() -> Path:
    """The newest installed server's bin folder (Debian keeps it off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major)
    if not found:
        why = f"PostgreSQL is not installed (Debian package {PACKAGE}; make servers installs it)"
        if in_ci():
            pytest.fail(f"{why}; CI=true turns this skip into a failure", pytrace=False)
        pytest.skip(why)
    return Path(found[-1]).parent


def _major(path: str) -> int:
    return int(Path(path).parents[1].name.split(".")[0])


class PostgresCluster:
    def __init__(
        self, root: Path, bindir: Path, port: int, server: Server, run_as: list[str], durable: bool
    ):
        self.root, self.bindir, self.port, self.server = root, bindir, port, server
        self._run_as, self._durable = run_as, durable

    @classmethod
    def start(cls, durable: bool = False) -> PostgresCluster:
        """A cluster of its own. `durable`: a commit is written before it returns, so what was
        committed survives `halt` (as on a real server); otherwise the last ~200 ms of commits
        may be lost to it, which only speeds up tests that never halt."""
        bindir = postgres_bin()
        root = Path(tempfile.mkdtemp(prefix="fleet-alerting-pg-"))
        root.chmod(0o755)
        data = root / "data"
        run_as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            data.mkdir()
            shutil.chown(data, "nobody", "nogroup")
            (root / "log").mkdir()
            shutil.chown(root / "log", "nobody", "nogroup")
            run_as = ["runuser", "-u", "nobody", "--"]
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-sync"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        port = free_port()
        server = _launch(root, bindir, port, run_as, durable)
        return cls(root, bindir, port, server, run_as, durable)

    def halt(self) -> None:
        """Stop the server at once, cutting its sessions off (as a crash or a reboot would)."""
        subprocess.run(
            [*self._run_as, str(self.bindir / "pg_ctl"), "stop", "-m", "immediate",
             "-D", str(self.root / "data")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.server.proc.wait(30)

    def resume(self) -> None:
        """Start it again after `halt`, on the same port."""
        self.server = _launch(self.root, self.bindir, self.port, self._run_as, self._durable)

    def url(self, database: str, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, driver: str = "psycopg", owner: str = "postgres") -> str:
        """A new, empty database; returns its SQLAlchemy URL (as its owner)."""
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-O", owner, name],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return self.url(name, driver).replace("://postgres@", f"://{owner}@")

    def add_password_user(self, user: str, password: str) -> None:
        """A role that must log in with its password (SCRAM) over TCP; every other role keeps
        trust authentication."""
        psql = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port)]
        statement = f"CREATE ROLE {user} LOGIN CREATEDB PASSWORD '{password}'"
        subprocess.run(
            [*psql, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        hba = self.root / "data" / "pg_hba.conf"
        hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        subprocess.run(
            [*psql, "-U", "postgres", "-c", "SELECT pg_reload_conf()"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _launch(root: Path, bindir: Path, port: int, run_as: list[str], durable: bool) -> Server:
    data = root / "data"
    ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    return Server(
        [
            *run_as, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
            "-h", "127.0.0.1", "-k", str(data),
            "-c", "fsync=off", "-c", f"synchronous_commit={'on' if durable else 'off'}",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ],
        root / "log",
        lambda: subprocess.run(ready, check=False).returncode == 0,
        "postgres",
    )  # fmt: skip
