"""`fleet-alerting what-if` on a store the pipeline recorded (evaluate_and_record, the flows' own
transaction): the gate's exit codes, --accept, and the HTML report rendered by headless Chromium."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.config import Config, load_config
from fleet_alerting.core import actions
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.delivery.channels import build_notifiers
from fleet_alerting.delivery.drain import drain
from fleet_alerting.store import actions as audit_trail
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.http import FakeServer, Request, Response

API = "blackbox:url=http://api/healthz"
DEVICE = "blackbox:url=http://pi-01/healthz"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def observe(key: str, severity: Severity, firing: bool) -> Signal:
    return Signal(
        key=key,
        source="blackbox",
        firing=firing,
        severity=severity,
        summary=f"{key} {'down' if firing else 'up'}",
        labels={"url": key.split("=", 1)[1]},
    )


async def no_sleep(_seconds: float) -> None:
    return None


def deliver(store: Store, config: Config, now: datetime) -> None:
    """Drain the outbox as the flows do (a dry run: to the local outbox file)."""

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await drain(store, build_notifiers(config, client), lambda: now, sleep=no_sleep)

    asyncio.run(go())


Hand = Callable[[Store, int, datetime], None]


def record(live: Path, settings: dict, by_hand: Hand | None = None) -> Path:
    """Two hours of one-minute runs, each delivered: the API down from minute 30 to 50 (a page),
    a device from 60 to 100 (a warning, no page); `by_hand(store, minute, now)` acts between
    runs as an operator would. Returns the live config."""
    live.write_text(
        yaml.safe_dump({"state": {"path": "state.sqlite"}, "notify": {"dry_run": True}} | settings)
    )
    config = load_config(live)
    start = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    with Store(config.state) as store:
        for minute in range(120):
            signals = [
                observe(API, Severity.critical, 30 <= minute < 50),
                observe(DEVICE, Severity.warning, 60 <= minute < 100),
            ]
            now = start + timedelta(minutes=minute)
            evaluate_and_record(store, signals, config.policy, now, rules=config.storm_rules())
            if by_hand is not None:
                by_hand(store, minute, now)
            deliver(store, config, now)
    return live


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    return record(tmp_path / "live.yaml", {})


def proposed(tmp_path: Path, policies: dict) -> Path:
    path = tmp_path / "proposed.yaml"
    path.write_text(
        yaml.safe_dump(
            {"state": {"path": "state.sqlite"}, "notify": {"dry_run": True}, "policies": policies}
        )
    )
    return path


def test_the_gate_fails_a_change_that_stops_a_critical_page(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = proposed(tmp_path, {"critical": {"page_after": "30m"}})
    args = ["what-if", "--config", str(recorded), "--proposed", str(later), "--since", "3h"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert f"would no longer page: {API} (critical" in err
    assert f"--accept {API} if intended" in err
    assert "| pages | 1 | 1 | 0 |" in out  # sent | current | proposed
    assert main([*args, "--accept", API]) == 0
    capsys.readouterr()


def test_a_change_that_pages_more_passes_and_says_so(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = proposed(tmp_path, {"warning": {"page": ["pagerduty"], "page_after": "10m"}})
    markdown = tmp_path / "report.md"
    args = ["what-if", "--config", str(recorded), "--proposed", str(more), "--since", "3h"]
    assert main([*args, "--markdown", str(markdown)]) == 0
    report = markdown.read_text()
    assert "| pages | 1 | 1 | 2 |" in report
    now_pages = report.split("## Would page now", 1)[1]
    assert f"`{DEVICE}` | warning |" in now_pages


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.images = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._skip += tag in ("style", "title")
        self.images += tag == "img"

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def in_chromium(page: Path) -> _Text:
    """The page's text as headless Chromium renders it."""
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    seen = _Text()
    seen.feed(dom)
    return seen


def test_a_period_longer_than_the_audit_trail_is_kept_says_so(
    acknowledged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The actions trail is pruned past `state.retention.actions`: what operators did by hand is
    counted only for its last part, and the report says so (as it does for sent messages)."""
    short = tmp_path / "short.yaml"  # the live config, its trail kept a day
    settings = yaml.safe_load(acknowledged.read_text())
    settings["state"]["retention"] = {"actions": "1d"}
    short.write_text(yaml.safe_dump(settings))
    later = proposed(tmp_path, steps("3m", "8m")["policies"])
    args = ["what-if", "--config", str(short), "--proposed", str(later)]
    assert main([*args, "--since", "3d"]) == 0
    out = capsys.readouterr().out
    assert (
        "Operators acted on incidents by hand in its last 1d (the store keeps its audit trail "
        "1d: `state.retention.actions`): ack 1."
    ) in out
    assert main([*args, "--since", "3h"]) == 0  # within the retention: as before
    assert "Operators acted on incidents by hand in this period: ack 1." in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make servers)")
def test_the_html_report_renders_in_chromium(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = proposed(tmp_path, {"critical": {"page_after": "30m"}})
    page = tmp_path / "whatif.html"
    args = ["what-if", "--config", str(recorded), "--proposed", str(later), "--since", "3h"]
    assert main([*args, "--html", str(page)]) == 1
    capsys.readouterr()
    seen = in_chromium(page)
    text = " ".join(seen.parts)
    assert text.startswith("What-if: live.yaml → proposed.yaml")
    assert "Gate: 1 critical incident(s) paged under the current configuration" in text
    lost = text[text.index("Would no longer page") : text.index("Would page later")]
    assert API in lost and DEVICE not in lost
    assert "Pages per week, current and proposed" in text
    assert "Interruptions (pages and Slack messages) by hour of week" in text
    assert seen.images == 2


def test_the_quarterly_audit_reviews_the_recorded_quarter(recorded: Path) -> None:
    from fleet_alerting.audit.report import to_markdown
    from fleet_alerting.tasks.audit import whatif_review

    now = utcnow()
    [(title, blocks)] = whatif_review(str(recorded), now - timedelta(days=90), now)
    text = to_markdown(blocks)
    assert title == "What-if review"
    # no acknowledgement; the API's 20 and the device's 40 minutes
    assert "| blackbox | 0 |  | 2 | 30m00s |" in text
    noisiest = text.split("### Five noisiest alerts", 1)[1]
    assert "| blackbox | 10 | `policies.critical.page_after: 5m00s → 15m00s` |" in noisiest
    assert "| 1 → 1 |" in noisiest  # the API's 20-minute outage still pages 15 min after onset


def test_a_quarter_longer_than_the_store_keeps_says_so_in_the_review(
    acknowledged: Path, tmp_path: Path
) -> None:
    from fleet_alerting.audit.report import to_markdown
    from fleet_alerting.tasks.audit import whatif_review

    short = tmp_path / "short.yaml"  # the live config, its history and incidents kept 30 days
    settings = yaml.safe_load(acknowledged.read_text())
    kept = {"history": "30d", "resolved_incidents": "30d", "actions": "1d"}
    settings["state"]["retention"] = kept
    short.write_text(yaml.safe_dump(settings))
    now = utcnow()
    [(_title, blocks)] = whatif_review(str(short), now - timedelta(days=90), now)
    text = to_markdown(blocks)
    assert (
        "The store keeps less than this period (`state.retention.history` 30d, "
        "`state.retention.resolved_incidents` 30d): the figures are of the part it holds."
    ) in text
    assert (
        "Operators acted on incidents by hand in its last 1d (the store keeps its audit trail "
        "1d: `state.retention.actions`): ack 1."
    ) in text
    [(_title, blocks)] = whatif_review(str(short), now - timedelta(hours=20), now)
    text = to_markdown(blocks)
    assert "The store keeps less" not in text
    assert "by hand in the quarter: ack 1." in text


def test_the_quarterly_review_says_it_is_a_replay_and_what_operators_did_by_hand(
    acknowledged: Path,
) -> None:
    from fleet_alerting.audit.report import to_markdown
    from fleet_alerting.tasks.audit import whatif_review

    now = utcnow()
    [(_title, blocks)] = whatif_review(str(acknowledged), now - timedelta(days=90), now)
    text = to_markdown(blocks)
    assert "**A replay, not history.**" in text
    assert "edits made to it during the quarter are not replayed" in text
    assert "Operators acted on incidents by hand in the quarter: ack 1." in text
    # the ack is ana's alone: the evaluation's own rows in the trail are not counted
    assert "muted" not in text.split("by hand in the quarter:", 1)[1].split(".", 1)[0]


class Prometheus(FakeServer):
    """Prometheus' instant query API over synthetic `ALERTS` series (raw samples of a range
    selector, as the audit reads them)."""

    def __init__(self, firing: list[dict], for_state: list[dict]) -> None:
        super().__init__()
        self.series = {"ALERTS": firing, "ALERTS_FOR_STATE": for_state}

    def handle(self, request: Request) -> Response:
        query, at = request.query["query"][0], float(request.query["time"][0])
        name, seconds = query.split("{")[0].split("[")[0], float(query.rsplit("[", 1)[1][:-2])
        result = [
            {"metric": s["metric"], "values": [v for v in s["values"] if at - seconds < v[0] <= at]}
            for s in self.series[name]
        ]
        body = {"resultType": "matrix", "result": [r for r in result if r["values"]]}
        return Response(200, {"status": "success", "data": body})


def test_alertmanager_routes_from_prometheus_alerts_fail_the_gate(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleet_alerting.audit.synth import alert_history

    end = utcnow()
    alerts = [{"alert": "FleetOffline", "severity": "critical", "fires": 2, "minutes": 20}]
    firing, for_state = alert_history(
        alerts, (end - timedelta(hours=2)).timestamp(), end.timestamp()
    )
    routes = {
        "route": {
            "receiver": "slack",
            "routes": [{"matchers": ['severity="critical"'], "receiver": "pager"}],
        },
        "receivers": [
            {"name": "slack", "slack_configs": [{"channel": "#ops"}]},
            {"name": "pager", "pagerduty_configs": [{"routing_key": "x"}]},
        ],
    }
    (tmp_path / "am-live.yml").write_text(yaml.safe_dump(routes))
    routes["route"]["routes"] = []
    (tmp_path / "am-new.yml").write_text(yaml.safe_dump(routes))
    with Prometheus(firing, for_state) as prometheus:
        live = yaml.safe_load(recorded.read_text()) | {
            "prometheus": {"url": prometheus.url},
            "alertmanager": {"url": "http://127.0.0.1:9"},
        }
        recorded.write_text(yaml.safe_dump(live))
        args = [
            "what-if", "--config", str(recorded), "--proposed", str(recorded), "--since", "3h",
            "--alertmanager", str(tmp_path / "am-new.yml"),
            "--current-alertmanager", str(tmp_path / "am-live.yml"),
        ]  # fmt: skip
        assert main(args) == 1
    out, err = capsys.readouterr()
    assert err.count("would no longer page: alertmanager:") == 2
    routed = out.split("## Alertmanager routes", 1)[1]
    assert "| pager | 2 | 0 |" in routed and "| slack | 0 | 2 |" in routed
    # the same config escalates the same alerts: our own pages do not change (the store sent
    # one: the alerts come from Prometheus, not from the recorded runs)
    assert "| pages | 1 | 3 | 3 |" in out
    # the runs the store holds, not the Alertmanager watch's schedule over the 3 hours
    assert " evaluations for 120 recorded runs)." in out


def test_a_report_file_in_a_missing_folder_is_refused_before_the_replay(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = proposed(tmp_path, {"warning": {"page": ["pagerduty"], "page_after": "10m"}})
    args = ["what-if", "--config", str(recorded), "--proposed", str(more), "--since", "3h"]
    missing = tmp_path / "nowhere" / "x.html"
    with pytest.raises(SystemExit) as usage:
        main([*args, "--html", str(missing)])
    out, err = capsys.readouterr()
    assert usage.value.code == 2 and out == ""  # no report printed, then a failure
    assert f"cannot write {missing}: no such folder {missing.parent}" in err


def test_the_terminal_gets_chart_names_and_a_file_the_charts(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = proposed(tmp_path, {"warning": {"page": ["pagerduty"], "page_after": "10m"}})
    args = ["what-if", "--config", str(recorded), "--proposed", str(more), "--since", "3h"]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "base64" not in shown and "*Chart: " in shown and "(in the HTML report" in shown
    markdown = tmp_path / "report.md"
    assert main([*args, "--markdown", str(markdown)]) == 0
    assert "](data:image/png;base64," in markdown.read_text()


def test_a_folder_given_as_the_report_file_is_refused(tmp_path: Path) -> None:
    from fleet_alerting.surfaces.whatif_cli import report_file

    (tmp_path / "reports").mkdir()
    with pytest.raises(argparse.ArgumentTypeError, match="a folder"):
        report_file(str(tmp_path / "reports"))
    assert report_file(str(tmp_path / "r.html")) == tmp_path / "r.html"


# the tester's night: pagerduty after 2m, the secondary after 4m; an acknowledgement holds the
# escalation 10 minutes. The proposal: pagerduty after 3m, the secondary after 8m.
STEPS = {"critical": {"ack_timeout": "10m", "repeat": "5m"}}


def steps(pagerduty: str, secondary: str) -> dict:
    escalation = [
        {"after": "0s", "to": ["slack"]},
        {"after": pagerduty, "to": ["pagerduty", "slack"]},
        {"after": secondary, "to": ["pagerduty_secondary", "slack"]},
    ]
    return {"policies": {"critical": STEPS["critical"] | {"steps": escalation}}}


def ana_acks_before_the_page(store: Store, minute: int, now: datetime) -> None:
    if minute == 31:
        ack = lambda i: actions.acknowledge(i, "ana", now, ["slack"])  # noqa: E731
        audit_trail.apply(store, API, ack, action="ack", actor="ana", via="cli", now=now)


@pytest.fixture
def acknowledged(tmp_path: Path) -> Path:
    return record(tmp_path / "live.yaml", steps("2m", "4m"), ana_acks_before_the_page)


def cells(markdown: str, section: str, first: str) -> list[str]:
    """The cells of the row of `section`'s table that begins with `first`."""
    table = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in table.splitlines() if line.startswith(f"| {first} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def at(onset: str, minutes: int) -> str:
    moment = datetime.strptime(onset, "%Y-%m-%d %H:%M") + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%d %H:%M")


def test_the_report_puts_what_was_sent_beside_the_replay_and_says_what_it_leaves_out(
    acknowledged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = proposed(tmp_path, steps("3m", "8m")["policies"])
    args = ["what-if", "--config", str(acknowledged), "--proposed", str(later), "--since", "3h"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "**A replay, not history.** `current` replays live.yaml as it is today" in out
    assert "acknowledgements, snoozes and silences of one incident" in out
    assert "Operators acted on incidents by hand in this period: ack 1." in out
    # ana acknowledged at +1m: when that timed out (+11m) the escalation started again, paging
    # 2 minutes later (+13m); the replay, which knows nothing of her, pages at +2m
    _incident, _severity, onset, sent, current, after, delay, _summary = cells(
        out, "Would page later", f"`{API}`"
    )
    assert (sent, current, after, delay) == (at(onset, 13), at(onset, 2), at(onset, 3), "1m")
    sent_messages, replayed, _proposed = cells(out, "Totals", "Slack messages")[1:]
    assert int(sent_messages) < int(replayed)  # the acknowledgement held the reminders
    # the secondary's step: 4 → 8 minutes after onset (sent: after the acknowledgement, +15m)
    secondary = cells(out, "Per pager", "pagerduty_secondary")
    assert secondary == ["pagerduty_secondary", "1", "1", "1", "15", "4", "8"]


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make servers)")
def test_the_html_report_shows_what_was_sent_and_per_pager_in_chromium(
    acknowledged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = proposed(tmp_path, steps("3m", "8m")["policies"])
    page = tmp_path / "whatif.html"
    args = ["what-if", "--config", str(acknowledged), "--proposed", str(later), "--since", "3h"]
    assert main([*args, "--html", str(page)]) == 0
    capsys.readouterr()
    text = " ".join(in_chromium(page).parts)
    assert "A replay, not history." in text
    assert "acknowledgements, snoozes and silences of one incident" in text
    pagers = text[text.index("Per pager") : text.index("Per alert")]
    assert "pagerduty_secondary 1 1 1 15 4 8" in pagers
    later_pages = text[text.index("Would page later") : text.index("Would page now")]
    assert "paged (sent) paged (current) paged (proposed)" in later_pages


def test_a_period_longer_than_the_sent_messages_are_kept_says_so(
    recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = proposed(tmp_path, {})
    args = ["what-if", "--config", str(recorded), "--proposed", str(same), "--since", "40d"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "What was sent is not shown: the store keeps sent messages 30d" in out
    assert "| figure | current | proposed |" in out
