"""`fleet-alerting incidents` on a store this user may not write: a read-only mount (the directory
is not writable, the file's writable bits still set), a read-only file, a writer holding it open.

Run as another user (`nobody`, by setpriv) when the tests run as root, whom no permission bit
stops; as themselves (the bits then apply to them) otherwise."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.database import Store

ROOT = Path(__file__).parents[1]
NOBODY = "--reuid=65534", "--regid=65534", "--clear-groups"
AS_ANOTHER_USER = ["setpriv", *NOBODY] if os.geteuid() == 0 else []


@pytest.fixture
def home() -> Iterator[Path]:
    """A folder every user may enter (pytest's tmp_path is its owner's only); its config lists a
    store in `state/`."""
    made = Path(tempfile.mkdtemp(prefix="fleet-alerting-ro-"))
    made.chmod(0o755)
    (made / "state").mkdir()
    config = {
        "state": {"path": "state/state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "dry_run": True},
        "policies": {"critical": {"page": [], "mirror": False}},
    }
    (made / "config.yaml").write_text(yaml.safe_dump(config))
    (made / "config.yaml").chmod(0o644)
    try:
        yield made
    finally:
        (made / "state").chmod(0o755)
        shutil.rmtree(made)


def record(path: Path, summary: str) -> None:
    """One open incident `api`, saying `summary`."""
    signal = Signal("api", "blackbox", True, Severity.warning, summary)
    policy = PolicyConfig(open_after=1)
    now = datetime.now(UTC)
    with Store(path) as store:
        store.evaluate(lambda before: evaluate([signal], before, lambda _s: policy, now), now)


def incidents(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEET_"))}
    command = [sys.executable, "-m", "fleet_alerting.surfaces.cli", "incidents"]
    return subprocess.run(
        [*AS_ANOTHER_USER, *command, "--config", str(home / "config.yaml")],
        cwd=ROOT,
        env=env | {"HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def beside(store: Path) -> list[str]:
    return sorted(p.name for p in store.parent.iterdir())


def test_a_read_only_mount_is_listed_and_nothing_is_written_beside_it(home: Path) -> None:
    store = home / "state" / "state.sqlite"
    record(store, "api down")
    store.chmod(0o666)  # the file's bits say writable; the mount (the directory) does not
    store.parent.chmod(0o555)
    listed = incidents(home)
    assert listed.returncode == 0, listed.stderr
    assert "api down" in listed.stdout
    assert beside(store) == ["state.sqlite"]  # no -shm, no -wal made


def test_a_read_only_file_is_listed(home: Path) -> None:
    store = home / "state" / "state.sqlite"
    record(store, "api down")
    store.chmod(0o444)
    store.parent.chmod(0o777)
    listed = incidents(home)
    assert listed.returncode == 0, listed.stderr
    assert "api down" in listed.stdout
    assert beside(store) == ["state.sqlite"]


def test_a_read_only_mount_shows_what_a_writer_has_not_checkpointed_yet(home: Path) -> None:
    store = home / "state" / "state.sqlite"
    record(store, "api down")
    writer = sqlite3.connect(store)  # holds the store open: the next commit stays in the -wal
    try:
        writer.execute("SELECT count(*) FROM incidents").fetchall()
        record(store, "api down: now HTTP 502")
        assert "state.sqlite-wal" in beside(store)
        store.parent.chmod(0o555)
        listed = incidents(home)
    finally:
        writer.close()
    assert listed.returncode == 0, listed.stderr
    assert "api down: now HTTP 502" in listed.stdout


def test_a_wal_without_its_shm_in_a_read_only_mount_is_said_so(home: Path) -> None:
    store = home / "state" / "state.sqlite"
    record(store, "api down")
    (store.parent / "state.sqlite-wal").write_bytes(b"")  # a writer died; its -shm is gone
    store.parent.chmod(0o555)
    listed = incidents(home)
    assert listed.returncode == 1
    said = listed.stderr.strip()
    assert said.startswith(f"{store}: cannot be read by this user (unable to open database file)")
    assert f"it may not write {store.parent}" in said and "-shm file, which is missing" in said
    assert "Traceback" not in listed.stderr


def test_a_listing_read_while_a_run_writes_the_store_says_to_run_it_again(home: Path) -> None:
    """A store read as it is (no -shm, no lock) vouches for nothing a run wrote meanwhile."""
    store = home / "state" / "state.sqlite"
    record(store, "api down")
    store.parent.chmod(0o555)
    reader = (
        "import sys\n"
        "from fleet_alerting.store.database import Store\n"
        "from fleet_alerting.store.errors import StoreError\n"
        "try:\n"
        f"    with Store({str(store)!r}, create=False) as store:\n"
        "        print(len(store.incidents()), flush=True)\n"
        "        sys.stdin.readline()  # a run writes now\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEET_"))}
    child = subprocess.Popen(
        [*AS_ANOTHER_USER, sys.executable, "-c", reader],
        cwd=ROOT,
        env=env | {"HOME": str(home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline() == "1\n"
    store.parent.chmod(0o755)  # the run's user may write there
    record(store, "api down: now HTTP 502")
    said, _ = child.communicate("\n", timeout=60)
    assert said.strip() == (
        f"{store}: a run wrote it while it was read (read without a lock: this user may not "
        "write beside it); run the command again"
    )


def test_the_mcp_and_slack_app_listing_reads_a_read_only_mount(home: Path) -> None:
    """The read-only listing the MCP server and the Slack app answer from (`read_open_incidents`)
    reads a store on a read-only mount as `incidents` does, and writes nothing beside it."""
    store = home / "state" / "state.sqlite"
    record(store, "api down")
    store.chmod(0o666)
    store.parent.chmod(0o555)
    reader = (
        "from pathlib import Path\n"
        "from fleet_alerting.surfaces.fleet_queries import read_open_incidents\n"
        f"print([i.signal.summary for i in read_open_incidents(Path({str(store)!r}))])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FLEET_"))}
    listed = subprocess.run(
        [*AS_ANOTHER_USER, sys.executable, "-c", reader],
        cwd=ROOT,
        env=env | {"HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.strip() == "['api down']"
    assert beside(store) == ["state.sqlite"]
