"""`fleet-alerting run`: the config is checked before anything of Prefect starts; with no Prefect
API the watch runs plainly (no temporary server, said so); a named but dead API is one line.
And the test servers' start-up rules: a missing binary skips locally and fails in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import require_binary

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _run(config: Path, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run(
        [*CLI, "run", "blackbox-probe", "--config", str(config)],
        cwd=ROOT,
        env=clean | {"PREFECT_HOME": str(home)} | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_an_api_the_watch_runs_plainly(target: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    targets = [{"name": f"t{i}", "url": f"{target}/healthz?i={i}"} for i in range(20)]
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "s.sqlite"},
                "notify": {"dry_run": True},
                "blackbox": {"targets": targets},
            }
        )
    )
    ran = _run(config, tmp_path / "home")
    assert ran.returncode == 0, ran.stderr
    assert "not recorded in Prefect: no PREFECT_API_URL and no `fleet-alerting serve`" in ran.stderr
    assert ran.stdout == "blackbox-probe: 20 targets probed, all healthy; nothing to tell\n"
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "home" / "prefect.db").exists()  # no temporary Prefect server
    assert (tmp_path / "s.sqlite").exists()  # state beside the config, wherever run started


def test_a_run_records_in_a_postgres_store(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Every step of a run (the writability check, evaluate, deliver, prune) opens the configured
    store: `state.url` with its password secret, not a SQLite file."""
    from fleet_alerting.store.database import Store
    from tests.stores import new_database

    url = new_database(request)
    (tmp_path / "pg.password").write_text("unused-by-trust-auth\n")
    config = tmp_path / "config.yaml"
    failing = {"name": "api", "url": "http://127.0.0.1:9/healthz", "severity": "critical"}
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"url": url, "password": {"file": "pg.password"}},
                "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
                "policies": {"critical": {"open_after": 1, "page_after": "0s"}},
                "blackbox": {"targets": [failing]},
            }
        )
    )
    ran = _run(config, tmp_path / "home")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == (
        "blackbox-probe: 1 target probed, 1 failing (api); "
        "opened 1 incident, paged 1, told slack, mirror and pagerduty\n"
    )
    store = Store(url)
    assert [i.key for i in store.incidents()] == ["blackbox:url=http://127.0.0.1:9/healthz"]
    assert len(store.outbox(("sent",))) == 5
    assert not list(tmp_path.glob("**/*.sqlite"))


def test_an_invalid_config_is_one_line_before_any_prefect(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("blackbox:\n  targetz: []\n")
    ran = _run(config, tmp_path / "home")
    assert ran.returncode == 1
    assert (
        ran.stderr.strip() == f"{config}:2: blackbox.targetz: unknown key; did you mean 'targets'?"
    )
    assert not (tmp_path / "home").exists()


def test_a_named_api_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("blackbox: {}\nnotify: {dry_run: true}\n")
    ran = _run(config, tmp_path / "home", PREFECT_API_URL="http://127.0.0.1:9/api")
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [
        "blackbox-probe: no Prefect server answers at http://127.0.0.1:9/api (PREFECT_API_URL); "
        "start it, or unset PREFECT_API_URL to run without recording the run"
    ]


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_a_missing_server_binary_skips_locally_and_fails_in_ci(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no-such-server is not installed"):
        require_binary("no-such-server")


@pytest.mark.parametrize(
    ("config", "env", "code", "line"),
    [
        (
            "blackbox: {}\nnotify: {dry_run: true}\n",
            {"PREFECT_API_URL": "http://127.0.0.1:9/api"},
            2,
            "serve: no Prefect server answers at http://127.0.0.1:9/api (PREFECT_API_URL)",
        ),
        (
            "state: {path: s.sqlite}\nnotify: {dry_run: true}\n",
            {},
            1,
            "nothing to serve: no watch is configured",
        ),
        ("blackbox: {targets: 3}\n", {}, 1, "blackbox.targets: Input should be a valid list"),
    ],
)
def test_serve_mistakes_are_one_line(
    config: str, env: dict[str, str], code: int, line: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config)
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    ran = subprocess.run(
        [*CLI, "serve", "--config", str(path)],
        cwd=ROOT,
        env=clean | {"PREFECT_HOME": str(tmp_path / "home")} | env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == code
    assert line in ran.stderr and len(ran.stderr.strip().splitlines()) == 1, ran.stderr


def test_default_state_lands_beside_the_config_wherever_run_starts(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "config.yaml"
    config.parent.mkdir()
    config.write_text("blackbox: {targets: []}\nnotify: {dry_run: true}\n")  # no state: section
    ran = _run(config, tmp_path / "home")  # started in the repository, not beside the config
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "conf" / "state" / "fleet-alerting.sqlite").exists()


def test_the_demo_shows_an_incident_told_paged_and_resolved(tmp_path: Path) -> None:
    """README's first command (`make demo`): the shipped example config against a stand-in
    Fleet API — fail, Slack and the mirror told, PagerDuty paged, recovery, resolved."""
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [*CLI, "demo", "--interval", "1"],
        cwd=ROOT,
        env=clean | {"PREFECT_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = done.stdout.split("Notifications (local outbox")[1]
    sent = [
        line.split()[1:3]
        for line in shown.splitlines()
        if line.startswith("  ") and ":" in line[:12]
    ]
    assert ["slack", "opened"] in sent and ["slack_mirror", "opened"] in sent
    assert ["pagerduty", "paged"] in sent and ["pagerduty", "resolved"] in sent
    assert ["slack", "resolved"] in sent
    assert (
        ">>> API starts failing: " in done.stdout and "{" not in done.stdout.split(">>>")[1][:200]
    )
    assert "resolved" in shown.split("Incidents:")[1]
    assert done.stdout.rstrip().endswith("`fleet-alerting serve --config YOUR.yaml`.")
