"""Deployments: prefect.yaml and deployments/schedules.py agree; `serve` registers the configured
watches with their schedule, absolute parameters and concurrency limit on a real Prefect server,
runs them in-process on schedule and on demand, and its own server's UI shows the runs."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.deployments.schedules import SCHEDULES, plan, timing
from fleet_alerting.flows import ENTRYPOINTS
from tests.servers import free_port, require_binary, wait_until

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
HEADLESS += ["--window-size=1400,1000"]


def test_trigger_without_a_server_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from fleet_alerting.deployments.trigger import trigger

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # no running serve's address there
    lines: list[str] = []
    with temporary_settings(updates={PREFECT_API_URL: None}):
        done = asyncio.run(trigger("blackbox-probe/scheduled", {}, wait=True, out=lines.append))
    assert done == 2
    assert lines[0].startswith(
        "No Prefect server: PREFECT_API_URL is not set and no `fleet-alerting serve` is running "
        f"with PREFECT_HOME={tmp_path} (no live fleet-alerting-serve.json there)"
    )


def test_prefect_yaml_matches_the_schedules() -> None:
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    from_yaml = {(d["entrypoint"], d["name"], d["schedules"][0]["cron"]) for d in declared}
    from_code = {
        (
            ENTRYPOINTS[s.flow]
            .removeprefix("fleet_alerting.")
            .replace(".", "/", 1)
            .replace(":", ".py:"),
            s.name,
            s.cron,
        )
        for s in SCHEDULES
    }
    assert from_yaml == from_code
    assert all(d["concurrency_limit"] == 1 for d in declared)
    for entry in from_yaml:
        assert (ROOT / entry[0].split(":")[0]).is_file()


PLANS = [  # config → what `serve` runs, and how often
    ({}, {}),
    ({"blackbox": {}}, {"blackbox-probe": "cron * * * * *"}),
    (
        {"blackbox": {}, "schedule": {"every": {"blackbox-probe": "10s"}}},
        {"blackbox-probe": "every 10s"},
    ),
    (
        {
            "zigbee": {"coordinators": []},
            "prometheus": {"url": "http://127.0.0.1:9090"},
            "alertmanager": {"url": "http://127.0.0.1:9093"},
            "fleet_api": {"url": "http://127.0.0.1:3000", "token": {"env": "T"}},
            "schedule": {"every": {"prometheus-watches": "5m", "fleet-events": "90s"}},
        },
        {
            "zigbee-probe": "cron * * * * *",
            "prometheus-watches": "cron */5 * * * *",
            "alertmanager-escalation": "cron * * * * *",
            "fleet-events": "every 90s",
        },
    ),
    ({"prometheus": {"timeout": "5s"}}, {}),  # no url: nothing to query
]


@pytest.mark.parametrize(("config", "served"), PLANS)
def test_serve_runs_only_configured_watches(config: dict, served: dict, tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**config, "notify": {"dry_run": True}}))
    planned, skipped = plan(load_config(path), path)
    assert {p.schedule.flow: p.period for p in planned} == served
    assert len(skipped) == len(SCHEDULES) - len(served)  # each left out with a reason
    for p in planned:  # absolute, whatever folder serve starts in
        assert p.parameters == {"config_path": str(path.resolve())}


def test_the_audit_is_served_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "config" / "audit", tmp_path / "conf" / "audit")
    path = tmp_path / "conf" / "config.yaml"
    path.write_text("blackbox: {}\nnotify: {dry_run: true}\n")
    planned, _ = plan(load_config(path), path)
    audit = next(p for p in planned if p.schedule.flow == "quarterly-audit")
    assert audit.cron == "0 9 1 1,4,7,10 *"
    assert audit.parameters == {
        "alertmanager_file": str(tmp_path / "conf/audit/alertmanager.yml"),
        "rules_glob": str(tmp_path / "conf/audit/rules/*.yml"),
        "expectations_file": str(tmp_path / "conf/audit/expectations.yaml"),
        "out_dir": str(tmp_path / "reports"),
    }


def test_serve_says_at_start_what_check_config_would_refuse(tmp_path: Path) -> None:
    """A secret file that is missing breaks the watches that need it: serve says so at once,
    in check-config's words, instead of leaving it to their runs' logs."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "notify:\n  dry_run: true\n  slack:\n    webhook: {file: missing.url}\n"
        "state: {path: state.sqlite}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [*CLI, "serve", "--config", str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1  # and nothing to serve
    assert done.stderr.splitlines()[0] == (
        f"warning: {path}:4: notify.slack.webhook: cannot read secret file {tmp_path}/missing.url:"
        " No such file or directory"
    )


@pytest.mark.parametrize("keep_events", [None, "2h"], ids=["default", "set"])
def test_serve_says_keep_events_is_unused_with_a_server_of_its_own(
    keep_events: str | None, tmp_path: Path
) -> None:
    """The events' retention is a setting of the server process: serve sets it only on the
    server it starts, so a `schedule.keep_events` given with PREFECT_API_URL is said unused."""
    schedule = {"schedule": {"keep_events": keep_events}} if keep_events else {}
    path = tmp_path / "config.yaml"
    data = {"state": {"path": "state.sqlite"}, "blackbox": {}, "notify": {"dry_run": True}}
    path.write_text(yaml.safe_dump(data | schedule))
    env = os.environ | {"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}  # none there
    done = subprocess.run(
        [*CLI, "serve", "--config", str(path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr  # no server answers: serve stops
    said = [line for line in done.stderr.splitlines() if "keep_events" in line]
    if keep_events is None:
        assert said == []  # not set: nothing to say
        return
    assert said == [
        "warning: schedule.keep_events (2h) is unused: the Prefect server at PREFECT_API_URL "
        "keeps events as it is configured (PREFECT_SERVER_EVENTS_RETENTION_PERIOD of that "
        "server); serve sets it only on the server it starts itself"
    ]


def test_intervals_below_10s_are_refused(tmp_path: Path) -> None:
    from fleet_alerting.config import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text("schedule:\n  every: {blackbox-probe: 5s}\n")
    with pytest.raises(ConfigError, match=r"config.yaml:2: schedule.every.blackbox-probe: .*10s"):
        load_config(path)


@pytest.mark.parametrize(
    ("seconds", "cron", "interval"),
    [(60, "* * * * *", None), (300, "*/5 * * * *", None), (10, None, 10), (420, None, 420)],
)
def test_whole_minutes_run_on_the_minute(seconds: int, cron: str | None, interval: int | None):
    from datetime import timedelta

    every = timedelta(seconds=seconds)
    assert timing(every) == (cron, timedelta(seconds=interval) if interval else None)


def _serve(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [*CLI, "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(90)  # a graceful stop lets a run in flight finish
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.mark.integration
def test_serve_registers_schedules_and_runs_on_demand(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from fleet_alerting.deployments.trigger import trigger

    shutil.copytree(ROOT / "config" / "audit", tmp_path / "audit")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"state": {"path": "state.sqlite"}, "blackbox": {}, "notify": {"dry_run": True}}
        )
    )
    env = os.environ | {"PREFECT_API_URL": prefect_api}
    proc = _serve(config, env, tmp_path / "serve.log")

    async def deployments() -> list:
        async with get_client() as client:
            return [d for d in await client.read_deployments() if not d.paused]

    try:
        wait_until(lambda: len(asyncio.run(deployments())) == 2, 120, "deployments")
        found = {d.name: d for d in asyncio.run(deployments())}
        probe = found["scheduled"]
        assert [s.schedule.cron for s in probe.schedules] == ["* * * * *"]
        assert probe.global_concurrency_limit.limit == 1
        assert probe.parameters == {"config_path": str(config)}
        audit = found["quarterly"]
        assert [s.schedule.cron for s in audit.schedules] == ["0 9 1 1,4,7,10 *"]
        assert audit.parameters["rules_glob"] == str(tmp_path / "audit/rules/*.yml")
        lines: list[str] = []
        name = f"blackbox-probe/{probe.name}"
        assert asyncio.run(trigger(name, {}, wait=True, poll_seconds=0.2, out=lines.append)) == 0
        assert lines[0].startswith("created flow run") and lines[-1].endswith(": Completed")
        # a run that fails (its config does not exist) is reported with the run's outcome
        broken = {"config_path": str(tmp_path / "missing.yaml")}
        lines.clear()
        assert (
            asyncio.run(trigger(name, broken, wait=True, poll_seconds=0.2, out=lines.append)) == 1
        )
        assert lines[-1].split(" — ")[0].endswith(": Failed")
        lines.clear()
        assert asyncio.run(trigger("nope/none", {}, wait=False, out=lines.append)) == 1
        assert lines[0].startswith('No deployment "nope/none". Known at ')
        known = lines[0].split(": ", 1)[1].rstrip(".").split(", ")
        assert name in known and "quarterly-audit/quarterly" in known
        lines.clear()  # a near miss is named
        assert asyncio.run(trigger(name[:-1], {}, wait=False, out=lines.append)) == 1
        assert lines == [f'No deployment "{name[:-1]}". Did you mean: {name}?']
        lines.clear()  # another config's serve: refused, saying which config it runs
        other = str(tmp_path / "other.yaml")
        assert asyncio.run(trigger(name, {}, wait=False, out=lines.append, config=other)) == 1
        assert lines[0].startswith(f"Deployment {name!r} at {prefect_api} runs {config}, not ")
        lines.clear()  # its own config, spelled another way: triggered
        same = str(tmp_path / "." / "config.yaml")
        assert asyncio.run(trigger(name, {}, wait=False, out=lines.append, config=same)) == 0

        async def pause() -> None:
            async with get_client() as client:
                await client.pause_deployment(audit.id)

        asyncio.run(pause())  # nobody runs a paused deployment: said at once, not a Late run
        lines.clear()
        audit_name = "quarterly-audit/quarterly"
        assert asyncio.run(trigger(audit_name, {}, wait=True, out=lines.append)) == 1
        assert lines == [
            f"Deployment {audit_name!r} is paused: the running serve does not serve it (is its "
            "section in serve's config?), or someone paused it in the Prefect UI."
        ]
    finally:
        _stop(proc)
    assert (
        "zigbee-probe: not served (zigbee is not configured)"
        in (tmp_path / "serve.log").read_text()
    )


@pytest.mark.integration
def test_serve_without_a_server_starts_one_whose_ui_shows_the_runs(tmp_path: Path) -> None:
    """Ephemeral mode does not schedule, so `serve` brings its own Prefect server: its UI knows
    where its API is (headless Chromium renders the runs page), `run` records its runs there,
    and it stops with serve."""
    import httpx

    chromium = require_binary("chromium")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    config = tmp_path / "config.yaml"
    settings = {"blackbox": {}, "schedule": {"every": {"blackbox-probe": "10s"}}}
    config.write_text(
        yaml.safe_dump({"state": {"path": "state.sqlite"}, "notify": {"dry_run": True}} | settings)
    )
    out = tmp_path / "serve.out"
    proc = _serve(config, env, out)
    try:
        wait_until(lambda: "UI at http://127.0.0.1:" in out.read_text(), 240, "local server")
        ui = out.read_text().split("UI at ")[1].split()[0]
        assert httpx.get(f"{ui}/ui-settings", timeout=10).json()["api_url"] == f"{ui}/api"

        def completed() -> list[str]:
            body = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
            answer = httpx.post(f"{ui}/api/flow_runs/filter", json=body, timeout=10)
            return [run["name"] for run in answer.json()]

        wait_until(lambda: len(completed()) >= 2, 120, "two scheduled runs completed")
        ran = subprocess.run(
            [*CLI, "run", "blackbox-probe", "--config", str(config)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr
        assert "recorded in the Prefect server of the running `serve`" in ran.stderr
        # on demand, without PREFECT_API_URL: `trigger` finds the running serve's server too
        triggered = subprocess.run(
            [*CLI, "trigger", "blackbox-probe/scheduled", "--wait"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        assert ": Completed" in triggered.stdout, triggered.stdout
        # a second serve with the same PREFECT_HOME would run every scheduled run twice
        second = subprocess.run(
            [*CLI, "serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2
        assert "another `fleet-alerting serve` is running with this PREFECT_HOME" in second.stderr
        wait_until(lambda: len(completed()) >= 3, 60, "the run recorded")
        page = subprocess.run(
            [chromium, *HEADLESS, "--dump-dom", f"{ui}/v2/runs"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        rendered = " ".join(re.sub(r"<[^>]*>", " ", page.stdout).split())  # the text shown
        assert "Can't connect to Server API" not in rendered
        shown = [name for name in completed() if f"blackbox-probe / {name}" in rendered]
        assert shown, rendered[:3000]
    finally:
        _stop(proc)

    def gone() -> bool:
        try:
            httpx.get(f"{ui}/api/health", timeout=1)
        except httpx.HTTPError:
            return True
        return False

    wait_until(gone, 20, "the local server stopped with serve")
    assert not (tmp_path / "home" / "fleet-alerting-serve.json").exists()


@pytest.mark.parametrize(
    ("starts", "due", "wait"),
    [
        ((-30, -20), 2, 5.0),  # overdue: both (the older superseded), then the poll
        ((0.05, 3), 1, 3.0),  # due within DUE_SLACK starts now; the next start wakes serve
        ((7,), 0, 5.0),  # beyond the poll: the poll first
        ((), 0, 5.0),
    ],
    ids=["overdue", "due and next in 3 s", "next after the poll", "none"],
)
def test_serve_waits_for_the_next_known_start_or_the_poll(
    starts: tuple[float, ...], due: int, wait: float
) -> None:
    """README: scheduled runs start when due (serve knows the next from its last ask), a triggered
    run within POLL_SECONDS (5 s)."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from fleet_alerting.deployments.serve import POLL_SECONDS, _due, _until

    now = datetime.now(UTC)
    listed = [SimpleNamespace(next_scheduled_start_time=now + timedelta(seconds=s)) for s in starts]
    found, next_start = _due(listed, now)
    assert len(found) == due
    assert _until(next_start, POLL_SECONDS) == pytest.approx(wait, abs=0.1)
