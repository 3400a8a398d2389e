"""A storm's group pages PagerDuty for its members, and PagerDuty answers 503, then 400 (a dead
letter), then 202 after a requeue. What an operator reads of a MEMBER must be the group's page:
`incidents --show` names the group and its page's state (never the member's own `paged … at`),
`incidents` and `-o json` list the group's undelivered page for the member, the run's last line
counts no incident as paged while no pager took the page, and the metrics count the incidents
by their page's state (an operator's PagerDuty-outage walkthrough)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.deployments.watch_runs import WatchRuns
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.metrics import metrics_endpoint
from tests.fakes.http import Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.servers import free_port
from tests.test_operator_cli import cli
from tests.test_run_outcome import run_plainly
from tests.test_self_watch import scrape
from tests.test_storm_flows import Device

GROUP = "group/blackbox:severity=critical"


def write_config(tmp_path: Path, slack: str, pd: str, devices: list[Device]) -> Path:
    """Three players of a file_sd file, critical, paging PagerDuty at once; no fleet-offline
    aggregate, so the storm is one group of the three."""
    (tmp_path / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    (tmp_path / "pd.key").write_text("P" * 32)
    players = [
        {"targets": [f"127.0.0.1:{d.port}"], "labels": {"instance": f"pi-{i:02}"}}
        for i, d in enumerate(devices)
    ]
    (tmp_path / "targets-players.json").write_text(json.dumps(players))
    critical = {"open_after": 1, "page": ["pagerduty"], "page_after": "0s", "mirror": False}
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "attempts_per_run": 1,
            "slack": {"webhook": {"file": "slack.url"}},
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd}/v2/enqueue"},
        },
        "policies": {"critical": critical},
        "fleet": {"offline": []},
        "blackbox": {
            "timeout": "1s",
            "file_sd": [{"files": ["targets-players.json"], "severity": "critical"}],
        },
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Views:
    """What an operator reads of one member and of the group after a run: the run's last line,
    `incidents -o json`, the member's line in `incidents`, its `--show`, and the metrics."""

    def __init__(self, config: Path, ran: str) -> None:
        self.said = ran.splitlines()[0] if ran else ""
        rows = json.loads(cli("incidents", "-o", "json", "--config", str(config)).stdout)
        self.group = next(r for r in rows if r["key"] == GROUP)
        self.member = next(r for r in rows if r["group"] == GROUP)
        table = cli("incidents", "--config", str(config)).stdout
        (self.line,) = [line for line in table.splitlines() if self.member["key"] in line]
        shown = cli("incidents", "--show", self.member["id"], "--config", str(config))
        assert shown.returncode == 0, shown.stderr
        self.shown = shown.stdout
        self.undelivered = [
            (p.get("incident_key"), p["channel"], p["status"], p["outbox_id"])
            for p in self.member["undelivered"]
        ]
        self.states = states(config)
        self.number = next(
            (p["outbox_id"] for p in self.group["undelivered"]), None
        )  # the group's page


def states(config: Path) -> dict[tuple[str, str], float]:
    """`fleet_alerting_incidents_open` by (source, state), scraped from serve's endpoint."""
    with metrics_endpoint(load_config(config), WatchRuns(), lambda _line: None) as url:
        assert url is not None
        got = scrape(url)
    return {
        (dict(labels)["source"], dict(labels)["state"]): value
        for (name, labels), value in got.items()
        if name == "fleet_alerting_incidents_open"
    }


def pagerduty_rests_no_more(tmp_path: Path) -> None:
    with Store(tmp_path / "state.sqlite") as store:
        store.queue.destination_ok("pagerduty", datetime.now(UTC))


@dataclass
class Outage:
    queued: Views  # PagerDuty answered 503
    dead: Views  # then 400 to the retried page
    taken: Views  # then 202 to the requeued page
    number: int  # the group's page in the outbox
    events: list[dict]  # what PagerDuty took


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    tmp_path = tmp_path_factory.mktemp("outage")
    with ExitStack() as stack:
        devices = [stack.enter_context(Device()) for _ in range(3)]
        for device in devices:
            device.up = False
        slack = stack.enter_context(SlackWebhookServer())
        pd = stack.enter_context(PagerDutyServer())
        config = write_config(tmp_path, slack.url, pd.url, devices)

        pd.fail_next = [Response(503, {"status": "unavailable"})]
        ran = run_plainly(config, tmp_path / "home")
        assert ran.returncode == 1, ran.stdout + ran.stderr
        queued = Views(config, ran.stdout)
        number = queued.number
        assert number is not None, queued.group

        pagerduty_rests_no_more(tmp_path)
        assert cli("outbox", "retry", str(number), "--config", str(config)).returncode == 0
        pd.fail_next = [Response(400, {"status": "invalid event", "message": "routing_key"})]
        assert run_plainly(config, tmp_path / "home").returncode == 1
        dead = Views(config, "")

        assert cli("outbox", "requeue", str(number), "--config", str(config)).returncode == 0
        pagerduty_rests_no_more(tmp_path)
        assert run_plainly(config, tmp_path / "home").returncode == 0
        yield Outage(queued, dead, Views(config, ""), number, pd.events)


def test_show_of_a_member_says_the_groups_page_not_its_own(outage: Outage) -> None:
    number, group_id = outage.number, outage.queued.group["id"]
    member = f"  in group {GROUP} (id {group_id}): the group tells and pages for it\n"
    shown = outage.queued.shown
    assert f"{member}  the group's page to pagerduty not delivered: 1 attempt(s), next " in shown
    assert f"outbox #{number} (last error: PagerDuty Events API answered HTTP 503" in shown, shown
    assert "paged pagerduty at" not in shown and "Paged:" not in shown, shown
    assert "Pages due: pagerduty " in shown  # its step came due: the group pages for it

    shown = outage.dead.shown
    assert (
        f"{member}  the group's page to pagerduty not delivered: dead letter #{number}: "
        "permanent: PagerDuty Events API answered HTTP 400"
    ) in shown, shown
    assert (
        "page the on-call by hand; once the cause is fixed, "
        f"`fleet-alerting outbox requeue {number}` sends the page again"
    ) in shown
    assert "paged pagerduty at" not in shown

    assert [e["dedup_key"] for e in outage.events] == [GROUP]
    paged_at = outage.taken.group["paged_at"][11:19]
    shown = outage.taken.shown
    assert f"{member}  the group paged pagerduty at {paged_at}Z\n" in shown, shown
    assert "not delivered" not in shown


def test_a_members_undelivered_pages_are_its_groups(outage: Outage) -> None:
    number = outage.number
    assert outage.queued.undelivered == [(GROUP, "pagerduty", "queued", number)]
    owed = "(the group's page to pagerduty not delivered: 1 attempt(s), next "
    line = outage.queued.line
    assert owed in line and line.endswith(f"Z; outbox #{number})"), line

    assert outage.dead.undelivered == [(GROUP, "pagerduty", "dead", number)]
    assert outage.dead.group["undelivered"][0]["status"] == "dead"
    line = outage.dead.line
    assert line.endswith(f"(the group's page to pagerduty not delivered: dead letter #{number})")

    assert outage.taken.member["undelivered"] == outage.taken.group["undelivered"] == []
    assert "not delivered" not in outage.taken.line


def test_the_run_counts_no_incident_as_paged_while_no_pager_took_the_page(outage: Outage) -> None:
    said = outage.queued.said
    assert "opened 4 incidents, page queued for 4 (not delivered)" in said, said
    assert "paged" not in said.replace("page queued", ""), said


def test_metrics_count_open_incidents_by_their_pages_state(outage: Outage) -> None:
    assert outage.queued.states == {
        ("blackbox", "page_queued"): 3, ("group/blackbox", "page_queued"): 1
    }  # fmt: skip
    assert outage.dead.states == {("blackbox", "page_dead"): 3, ("group/blackbox", "page_dead"): 1}
    assert outage.taken.states == {("blackbox", "paged"): 3, ("group/blackbox", "paged"): 1}
