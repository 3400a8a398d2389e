"""How a run ends when it could not finish what it owed: a page the pager refused to take, or its
PostgreSQL store lost in the middle of the drain. The run says so — `fleet-alerting run` exits 1
with a one-line reason, a recorded run ends Failed with that reason — and what was queued stays
queued for the next run."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fleet_alerting.core.incidents import Kind, Notification
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.drain import DrainReport
from fleet_alerting.flows.common import undelivered
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import OutboxItem
from tests.fakes.http import Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]
DOWN = "http://127.0.0.1:9/healthz"  # nothing listens: the target fails, the incident pages
CASES = yaml.safe_load((ROOT / "tests" / "cases" / "run_outcome.yaml").read_text())
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def a_page() -> Notification:
    policy = PolicyConfig(open_after=1, page=["pagerduty"], page_after=0)
    signal = Signal(f"blackbox:url={DOWN}", "blackbox", True, Severity.critical, "API down")
    [page] = [
        n
        for n in evaluate([signal], {}, lambda _: policy, T0).notifications
        if n.kind == Kind.paged and n.channel == "pagerduty"
    ]
    return page


def item(channel: str, last_error: str | None = None) -> OutboxItem:
    note = dataclasses.replace(a_page(), channel=channel)
    return OutboxItem(1, note, "queued", 1, T0, T0, last_error, None)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_what_an_undelivered_drain_says(case: dict) -> None:
    report = DrainReport(
        retrying=[(item(c), why) for c, why in case.get("retrying", [])],
        dead=[(item(c), why) for c, why in case.get("dead", [])],
        held=[item(c) for c in case.get("held", [])],
        store_errors=list(case.get("store_errors", [])),
        owed_pages=[item(c, why) for c, why in case.get("owed", [])],
    )
    assert undelivered(report) == case["expect"]


def write_config(tmp_path: Path, slack: str, pagerduty: str, state: dict) -> Path:
    (tmp_path / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    (tmp_path / "pd.key").write_text("P" * 32)
    critical = {"open_after": 1, "page": ["pagerduty"], "page_after": "0s", "mirror": False}
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": state,
                "notify": {
                    "attempts_per_run": 1,
                    "slack": {"webhook": {"file": "slack.url"}},
                    "pagerduty": {
                        "routing_key": {"file": "pd.key"},
                        "url": f"{pagerduty}/v2/enqueue",
                    },
                },
                "policies": {"critical": critical},
                "blackbox": {
                    "timeout": "1s",
                    "targets": [{"name": "Fleet API", "url": DOWN, "severity": "critical"}],
                },
            }
        )
    )
    return config


def run_plainly(config: Path, home: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run(
        [*CLI, "run", "blackbox-probe", "--config", str(config)],
        cwd=ROOT,
        env=clean | {"PREFECT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def queued_pages(where: str | Path) -> list[str]:
    with Store(where) as store:
        items = store.outbox(("queued",))
    return [
        i.notification.incident.key
        for i in items
        if i.notification.channel == "pagerduty" and i.notification.kind == Kind.paged
    ]


def test_a_page_pagerduty_refuses_fails_the_run_and_stays_queued(tmp_path: Path) -> None:
    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        pd.fail_next = [Response(500, {"status": "error", "message": "internal"})]
        config = write_config(tmp_path, slack.url, pd.url, {"path": "state.sqlite"})
        ran = run_plainly(config, tmp_path / "home")
        # the next run, before the page's retry is due: it waits, still owed
        again = run_plainly(config, tmp_path / "home")
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("blackbox-probe: page to pagerduty undelivered: ")
    assert "500" in last and last.endswith("(1 queued for the next run)")
    # queued: the page, and Slack's "paged" message that waits for the pager to take it
    assert ran.stdout == (
        "blackbox-probe: 1 target probed, 1 failing (Fleet API); opened 1 incident, "
        "page queued for 1 (not delivered), told slack, 2 messages still queued\n"
    )
    assert pd.events == [] and slack.messages  # Slack was told; the page was not taken
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stderr.strip().splitlines()[-1] == last  # the page is not due yet: still owed
    assert len(pd.requests) == 1
    assert queued_pages(tmp_path / "state.sqlite") == [f"blackbox:url={DOWN}"]


@pytest.mark.integration
def test_a_recorded_run_with_an_undelivered_page_ends_failed(
    prefect_api: str, tmp_path: Path
) -> None:
    """Under a Prefect server the run's state is Failed with the reason as its message."""
    from fleet_alerting.flows.watches import blackbox_probe

    with SlackWebhookServer() as slack, PagerDutyServer() as pd:
        pd.fail_next = [Response(500, {"status": "error", "message": "internal"})]
        config = write_config(tmp_path, slack.url, pd.url, {"path": "state.sqlite"})
        state = asyncio.run(blackbox_probe(str(config), return_state=True))
    assert state.is_failed(), state
    assert state.message.startswith("page to pagerduty undelivered: ")
    assert state.message.endswith("(1 queued for the next run)")
    assert queued_pages(tmp_path / "state.sqlite") == [f"blackbox:url={DOWN}"]


class StoppingPagerDuty(PagerDutyServer):
    """Holds the page until `stop_store` has stopped the store's PostgreSQL, then takes it: the
    drain has the answer but no store to record it in."""

    def __init__(self, stop_store: threading.Thread) -> None:
        super().__init__()
        self.stop_store = stop_store

    def handle(self, request: Request) -> Response:
        self.stop_store.start()
        self.stop_store.join(60)
        return super().handle(request)


@pytest.mark.integration
def test_a_postgres_store_stopped_mid_drain_fails_the_run_naming_it(tmp_path: Path) -> None:
    from tests.postgres import PostgresCluster

    cluster = PostgresCluster.start(durable=True)  # its own: the session's stays up for the others
    try:
        url = cluster.create_database("store")
        stop = threading.Thread(target=cluster.halt)
        with SlackWebhookServer() as slack, StoppingPagerDuty(stop) as pd:
            config = write_config(tmp_path, slack.url, pd.url, {"url": url})
            ran = run_plainly(config, tmp_path / "home")
        assert pd.events, "the page reached the pager while the store went away"
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "Traceback" not in ran.stderr
        last = ran.stderr.strip().splitlines()[-1]
        shown = f"state.url postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/store"
        assert last.startswith(f"blackbox-probe: store failed while delivering: {shown}: "), last
        cluster.resume()
        # the page's row was never marked sent: it is still queued (PagerDuty folds the resend)
        assert queued_pages(url) == [f"blackbox:url={DOWN}"]
    finally:
        cluster.stop()
