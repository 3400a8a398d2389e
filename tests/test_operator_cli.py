"""The operator's tools: which config a command reads (and that it says so), listings that never
create a store, short incident ids, `-o json` and filters after a real outage, the outbox's
retry/drop/requeue in the actions trail; and the shipped example: valid on a fresh clone, one
outage of the Fleet API one page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.short_ids import device_names, find, full_id, short_ids
from fleet_alerting.sources.alertmanager.client import Alert
from fleet_alerting.sources.alertmanager.judge import to_signals
from fleet_alerting.sources.alertmanager.watch import escalation_policies
from fleet_alerting.sources.blackbox.client import ProbeResult, from_config, to_signal
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.http import Response
from tests.fakes.saas import SlackWebhookServer

ROOT = Path(__file__).parents[1]
CLI = [sys.executable, "-m", "fleet_alerting.surfaces.cli"]
T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "FLEET_ALERTING_CONFIG")
    }
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=clean | env, capture_output=True, text=True, timeout=300
    )


# the shipped example -------------------------------------------------------------------------
def test_the_example_is_valid_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / "secrets" / "fleet-api.token").exists()
    checked = cli("check-config", "config/example.yaml", cwd=clone)
    assert checked.returncode == 0, checked.stderr
    assert "config/example.yaml: ok" in checked.stdout


def test_one_fleet_api_outage_seen_by_the_probe_and_alertmanager_pages_once(
    tmp_path: Path,
) -> None:
    """The shipped example: our probe sees /api/healthz fail, and Alertmanager fires its own
    probe alert for the same endpoint a minute later. Both are critical; one page."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    config = load_config(tmp_path / "config" / "example.yaml")
    api = from_config(config.blackbox.targets[0])
    am = config.alertmanager
    assert am is not None
    rule = next(r for r in am.rules if r.name == "fleet-api-blackbox")
    alert = Alert(
        fingerprint="4f1c2a9b7d3e5f60",
        labels={"alertname": "ProbeFailed", "instance": api.url, "job": "blackbox"},
        annotations={"summary": "Fleet API probe failing"},
        starts_at=T0 + timedelta(seconds=30),
        ends_at=None,
        state="active",
    )
    with Store(config.state) as store:
        for minute in range(12):
            now = T0 + timedelta(minutes=minute)
            probed = ProbeResult(api, ok=False, status=503, error="HTTP 503")
            rules = config.storm_rules()
            evaluate_and_record(store, [to_signal(probed)], config.policy, now, rules=rules)
            if minute >= 1:
                signals = to_signals([(rule, [alert])], am.url, config.links)
                evaluate_and_record(store, signals, escalation_policies(config), now, rules=rules)
        pages = [
            item.notification.incident.source
            for item in store.outbox(("queued", "sent", "dead"))
            if item.notification.channel == "pagerduty" and item.notification.kind == "paged"
        ]
        told = {i.source: i.inhibited_by for i in store.incidents()}
    assert pages == ["blackbox"]
    assert told["alertmanager"] == f"blackbox:url={api.url}"


# which config, and no store made by looking --------------------------------------------------
def test_the_config_comes_from_the_environment_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text("state: {path: state.sqlite}\nnotify: {dry_run: true}\n")
    monkeypatch.setenv("FLEET_ALERTING_CONFIG", str(config))
    assert main(["incidents"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"fleet-alerting incidents: config {config} (from FLEET_ALERTING_CONFIG)",
        f"no store at {tmp_path / 'state.sqlite'} (has any run used this config?)",
    ]
    assert not (tmp_path / "state.sqlite").exists()  # looking made no store
    for command in (["outbox"], ["outbox", "-o", "json"], ["incidents", "--show", "x"]):
        assert main(command) == 1
        assert "no store at" in capsys.readouterr().err
    assert main(["ack", "blackbox:url=x", "--as", "ana"]) == 1
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "state.sqlite").exists()
    other = tmp_path / "other.yaml"
    other.write_text("state: {path: other.sqlite}\nnotify: {dry_run: true}\n")
    Store(tmp_path / "other.sqlite").close()
    assert main(["incidents", "--config", str(other)]) == 0  # --config wins, said by nobody
    captured = capsys.readouterr()
    assert captured.out == "no open incidents\n" and captured.err == ""


def test_without_config_or_environment_the_default_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_ALERTING_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["outbox"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "fleet-alerting outbox: config config/example.yaml "
        "(the default: no --config, FLEET_ALERTING_CONFIG not set)"
    )


# short ids -----------------------------------------------------------------------------------
def test_short_ids_are_stable_and_lengthen_on_a_collision() -> None:
    keys = [f"blackbox:url=http://pi-{i:04d}/healthz" for i in range(3000)]
    ids = short_ids(keys)
    assert len(set(ids.values())) == len(keys)
    assert all(full_id(k).startswith(ids[k]) for k in keys)
    assert short_ids(keys[:1])[keys[0]] == full_id(keys[0])[:6]
    assert {len(i) for i in ids.values()} == {len(next(iter(ids.values())))}  # one width shown


CASES = yaml.safe_load((Path(__file__).parent / "cases" / "short_ids.yaml").read_text())
KEYS = {
    "zigbee:coordinator=pi-video-01,check=offline": "firing",
    "zigbee:coordinator=pi-video-01,check=broker": "firing",
    "blackbox:url=http://api/healthz": "paged",
    "blackbox:url=http://api/healthz-old": "resolved",
}
LABELS = {  # as `labels_of` gives them
    "zigbee:coordinator=pi-video-01,check=offline": {"instance": "pi-video-01:9100"},
    "zigbee:coordinator=pi-video-01,check=broker": {"device": "pi-video-01"},
    "blackbox:url=http://api/healthz": {"target": "http://api/healthz"},
    "blackbox:url=http://api/healthz-old": {"target": "http://api-old/healthz"},
}
NAMED = {"blackbox:url=http://api/healthz": ("Fleet API",)}  # blackbox.targets[].name


@pytest.mark.parametrize("case", CASES, ids=[c["typed"] for c in CASES])
def test_finding_an_incident_from_what_was_typed(case: dict) -> None:
    typed = case["typed"]
    if typed.startswith("ID:"):  # its short id, upper case, 5 characters
        typed = full_id(typed[3:])[:5].upper()
    opened = [k for k, state in KEYS.items() if state != "resolved"]
    devices = {k: device_names(LABELS[k], *NAMED.get(k, ())) for k in opened}
    found = find(typed, KEYS.keys(), opened, devices)
    assert found.key == case.get("key")
    assert len(found.ambiguous) == case.get("ambiguous", 0)
    assert list(found.suggestions) == case.get("suggestions", [])


@pytest.mark.parametrize(
    ("source", "wanted", "selected"),
    [
        ("prometheus/RoleAgentFailure", "prometheus", True),
        ("prometheus/RoleAgentFailure", "prometheus/RoleAgentFailure", True),
        ("prometheus-config", "prometheus", False),
        ("blackbox", None, True),
        ("blackbox-exporter", "blackbox", False),
    ],
)
def test_the_source_filter(source: str, wanted: str | None, selected: bool) -> None:
    from fleet_alerting.surfaces.listings import source_matches

    assert source_matches(source, wanted) is selected


# a scripted outage, read back as JSON; the outbox managed ------------------------------------
@pytest.fixture
def slack() -> Iterator[SlackWebhookServer]:
    """Slack rate-limiting for an hour: a message to it stays queued, the destination backs off."""
    with SlackWebhookServer() as server:
        server.fail_next = [Response(429, "rate_limited", {"Retry-After": "3600"})]
        yield server


def test_incidents_and_outbox_as_json_after_an_outage_and_the_outbox_managed(
    tmp_path: Path, slack: SlackWebhookServer
) -> None:
    """A real run against a refused port, with Slack rate-limiting for an hour: the incident
    opens, its message stays queued while Slack backs off; then retry, drop and requeue, each
    recorded."""
    (tmp_path / "slack.url").write_text(f"{slack.url}/services/T0/B0/CANARYjsonToken0000\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {
                    "dry_run": False,
                    "attempts_per_run": 1,
                    "slack": {"webhook": {"file": "slack.url"}, "channel": "#ops"},
                },
                "policies": {
                    "critical": {"open_after": 1, "notify": ["slack"], "mirror": False, "page": []}
                },
                "blackbox": {
                    "targets": [
                        {"name": "api-healthz", "url": "http://127.0.0.1:9/healthz",
                         "severity": "critical"},
                    ]
                },
            }
        )
    )  # fmt: skip
    home = {"PREFECT_HOME": str(tmp_path / "home")}
    ran = cli("run", "blackbox-probe", "--config", str(config), **home)
    assert ran.returncode == 0, ran.stderr

    listed = cli("incidents", "-o", "json", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    (incident,) = json.loads(listed.stdout)
    key = "blackbox:url=http://127.0.0.1:9/healthz"
    assert incident["key"] == key and incident["id"] == full_id(key)[:6]
    assert incident["state"] == "firing" and incident["severity"] == "critical"
    assert incident["source"] == "blackbox" and incident["failing_seconds"] >= 0
    assert incident["onset"].endswith("Z") and incident["paged_at"] is None
    assert datetime.fromisoformat(incident["onset"]) <= datetime.now(UTC)
    # every field is in the README's list of stable ones (a tester found four missing)
    readme = (ROOT / "README.md").read_text()
    documented = readme.split("- `incidents -o json`:")[1].split("- `outbox -o json`:")[0]
    assert [f for f in incident if f"`{f}`" not in documented] == []
    for wanted in (["--severity", "warning"], ["--source", "zigbee"], ["--state", "paged"]):
        nothing = cli("incidents", "-o", "json", *wanted, "--config", str(config))
        assert json.loads(nothing.stdout) == [], wanted
    some = cli("incidents", "-o", "json", "--source", "blackbox", "--state", "firing", "--config",
               str(config))  # fmt: skip
    assert [i["key"] for i in json.loads(some.stdout)] == [key]

    listed = cli("outbox", "-o", "json", "--config", str(config))
    (item,) = json.loads(listed.stdout)
    assert (item["status"], item["channel"], item["kind"]) == ("queued", "slack", "opened")
    assert item["incident_key"] == key and item["incident_id"] == incident["id"]
    assert item["attempts"] == 1 and item["next_attempt_at"]
    assert item["destination_backoff_until"] > item["created_at"]
    assert item["last_error"] and item["destination_last_error"]
    assert "CANARY" not in listed.stdout
    table = cli("outbox", "--config", str(config)).stdout
    assert f"#{item['id']}" in table and "next: " in table and "destinations backing off:" in table

    number = str(item["id"])
    steps = [
        (["retry", number], "slack rested until "),  # the operator says it is back
        (["drop", number, "--reason", "sent by hand"], "dropped"),
        (["drop", number, "--reason", "again"], None),  # a dead letter: refused
        (["requeue", number], "queued again"),
    ]
    for verb, said in steps:
        where = ["--config", str(config)]  # before the verb or after it
        done = (
            cli("outbox", *where, *verb, "--as", "ana")
            if verb[0] == "retry"
            else cli("outbox", *verb, "--as", "ana", *where)
        )
        assert done.returncode == (0 if said else 1), done.stderr
        assert said in done.stdout if said else "nothing changed" in done.stderr
    (item,) = json.loads(cli("outbox", "-o", "json", "--config", str(config)).stdout)
    assert item["status"] == "queued" and item["attempts"] == 0
    shown = cli("incidents", "--show", incident["id"][:4], "--config", str(config)).stdout
    trail = [line.split("Z ", 1)[1] for line in shown.splitlines() if " via cli: " in line]
    assert [line.split(" message=")[0] for line in trail] == [
        "outbox-retry by ana via cli: done",
        "outbox-drop by ana via cli: done",
        "outbox-drop by ana via cli: refused: not queued, or being sent right now",
        "outbox-requeue by ana via cli: done",
    ]
    assert "reason=sent by hand" in trail[1]


def test_silence_for_a_bare_number_is_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fleet_alerting.core.policy import evaluate
    from fleet_alerting.core.signals import Severity, Signal

    config = tmp_path / "config.yaml"
    config.write_text("state: {path: state.sqlite}\nnotify: {dry_run: true}\n")
    store = Store(tmp_path / "state.sqlite")
    now = datetime.now(UTC)
    signal = Signal("zigbee:coordinator=pi-video-01,check=offline", "zigbee", True,
                    Severity.warning, "coordinator offline", since=now)  # fmt: skip
    store.record(evaluate([signal], {}, lambda _s: load_config(config).policy(_s), now), now)
    store.close()
    args = ["--config", str(config), "--as", "ana"]
    assert main(["silence", "pi-video-01", "--for", "90", *args]) == 1
    assert "Did you mean: " in capsys.readouterr().err
    assert main(["silence", "zigbee:coordinator=pi-video-01", "--for", "90", *args]) == 0
    assert capsys.readouterr().out == "Silenced by ana for 1m30s.\n"


# run summaries -------------------------------------------------------------------------------
def test_a_rewritten_observation_is_no_change_and_the_summary_is_a_sentence() -> None:
    """Joining left open reads "open for 3m", then "open for 4m": the record is rewritten (its
    observation changed) but nothing opened, paged or resolved."""
    from fleet_alerting.core.policy import PolicyConfig, evaluate
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.delivery.drain import DrainReport
    from fleet_alerting.flows.common import summarize, what_changed

    policy = PolicyConfig(open_after=1, notify=[])
    key = "zigbee:coordinator=hub,check=permit_join"

    def seen(minutes: int) -> Signal:
        said = f"Permit join on hub open past the planned window: open for {minutes}m"
        return Signal(key, "zigbee", True, Severity.warning, said)

    first = evaluate([seen(3)], {}, lambda _s: policy, T0)
    counters = summarize(first, DrainReport())
    assert (counters["opened_or_changed"], counters["opened"]) == (1, 1)
    assert what_changed(counters, DrainReport()) == "opened 1 incident"
    later = T0 + timedelta(minutes=1)
    second = evaluate([seen(4)], {key: first.incidents[0]}, lambda _s: policy, later)
    assert [i.key for i in second.incidents] == [key]  # rewritten...
    counters = summarize(second, DrainReport())
    assert counters["opened_or_changed"] == 0  # ...but nothing changed
    assert what_changed(counters, DrainReport()) == "nothing to tell"


def test_the_id_in_a_slack_message_is_what_ack_takes() -> None:
    from fleet_alerting.core.incidents import Kind
    from fleet_alerting.core.policy import PolicyConfig, evaluate
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.delivery.notifiers.slack_webhook import render

    key = "blackbox:url=https://fleet.example.org/api/healthz"
    signal = Signal(key, "blackbox", True, Severity.critical, "HTTP 503 from /api/healthz")
    policy = PolicyConfig(open_after=1, notify=["slack"])
    evaluation = evaluate([signal], {}, lambda _s: policy, T0)
    (opened,) = [n for n in evaluation.notifications if n.kind == Kind.opened]
    context = json.dumps(render(opened)["blocks"])
    said = context.split("(id `", 1)[1].split("`", 1)[0]
    keys = [key, "blackbox:url=https://fleet.example.org/"]
    assert find(said, keys, keys).key == key
