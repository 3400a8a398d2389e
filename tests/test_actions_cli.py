"""`fleet-alerting ack / silence / unsilence / snooze`, `incidents --show KEY`, and the MCP write
tools: the same actions, recorded with their actor; the store on SQLite and on PostgreSQL (a
config with `state.url` and a password secret)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.policy import evaluate
from fleet_alerting.core.short_ids import full_id
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import actions as audit
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from fleet_alerting.surfaces.mcp_server import build_server
from tests.operator_fleet import TOKEN, fleet_server

KEY = "blackbox:target=pi-audio-01"


def state(tmp_path: Path, db: str) -> dict:
    """The config's `state` for a store made by `state_db`."""
    if "://" not in db:
        return {"path": db}
    (tmp_path / "pg.password").write_text("not-checked-by-trust-auth")
    return {"url": db, "password": {"file": "pg.password"}}


def setup(tmp_path: Path, db: str, fleet_url: str = "http://127.0.0.1:9") -> Path:
    (tmp_path / "fleet.token").write_text(TOKEN)
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": state(tmp_path, db),
                "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
                "policies": {"warning": {"open_after": 1, "repeat": "5m"}},
                "fleet_api": {"url": fleet_url, "token": {"file": "fleet.token"}},
            }
        )
    )
    config = load_config(path)
    store = Store(config.state)
    now = utcnow() - timedelta(minutes=1)
    signal = Signal(KEY, "blackbox", True, Severity.warning, "device down", since=now)
    store.record(evaluate([signal], {}, config.policy, now), now)
    store.close()
    return path


def test_cli_actions_and_the_audit_trail(
    tmp_path: Path, state_db: str, capsys: pytest.CaptureFixture
) -> None:
    config = str(setup(tmp_path, state_db))
    assert main(["ack", KEY, "--config", config, "--as", "ana"]) == 0
    assert capsys.readouterr().out.startswith("Acknowledged by ana ")
    assert main(["ack", KEY, "--config", config, "--as", "bo"]) == 1
    assert "already acknowledged by ana" in capsys.readouterr().err
    assert main(["silence", KEY, "--for", "4h", "--config", config, "--as", "ana"]) == 0
    assert capsys.readouterr().out == "Silenced by ana for 4h00m.\n"
    assert main(["silence", KEY, "--for", "soon", "--config", config]) == 2
    capsys.readouterr()
    assert main(["unsilence", KEY, "--config", config, "--as", "bo"]) == 0
    assert main(["ack", "blackbox:target=nope", "--config", config, "--as", "ana"]) == 1
    capsys.readouterr()
    assert main(["incidents", "--show", KEY, "--config", config]) == 0
    shown = capsys.readouterr().out
    assert "Acknowledged by ana at" in shown
    lines = [line for line in shown.splitlines() if " via cli: " in line]
    assert [line.split("Z ", 1)[1].split(" until=")[0].strip() for line in lines] == [
        "ack by ana via cli: done",
        "ack by bo via cli: refused: already acknowledged by ana",
        "silence by ana via cli: done",
        "unsilence by bo via cli: done",
    ]
    # the thread replies went to the outbox (a local file here: no Slack configured)
    sent = [json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert [m.get("kind") for m in sent if m.get("kind") != "opened"] == [
        "acknowledged", "silenced", "unsilenced"
    ]  # fmt: skip


def test_mcp_write_tools_act_with_the_named_actor(tmp_path: Path, state_db: str) -> None:
    with fleet_server() as fleet:
        path = setup(tmp_path, state_db, fleet.url)
        config = load_config(path)
        server = build_server(config, write=True, trigger=lambda *_a: asyncio.sleep(0, 0))

        async def call(name: str, arguments: dict) -> str:
            result = await server.call_tool(name, arguments)
            blocks = result[0] if isinstance(result, tuple) else result.content
            return blocks[0].text

        said = asyncio.run(call("acknowledge_incident", {"key": KEY, "actor": "claude"}))
        assert said.startswith("Acknowledged by mcp:claude")
        said = asyncio.run(
            call("silence_incident", {"key": KEY, "actor": "claude", "duration": "1h"})
        )
        assert said == "Silenced by mcp:claude for 1h00m."
    store = Store(config.state)
    records = [(r.action, r.actor, r.via) for r in audit.history(store, KEY)]
    store.close()
    assert records == [("ack", "mcp:claude", "mcp"), ("silence", "mcp:claude", "mcp")]


def test_show_says_an_incident_is_inhibited_and_by_what(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """ "Why did this not page?" — `--show` says what the list says: inhibited by the API's
    outage (the shipped rule api-down)."""
    from fleet_alerting.tasks.pipeline import evaluate_and_record

    config_path = setup(tmp_path, str(tmp_path / "state.sqlite"))
    config = load_config(config_path)
    api = Signal(
        "blackbox:service=fleet-api", "blackbox", True, Severity.critical, "API down",
        labels={"service": "fleet-api"},
    )  # fmt: skip
    device = Signal(KEY, "blackbox", True, Severity.warning, "device down")
    with Store(config.state) as store:
        now = utcnow()
        evaluate_and_record(store, [api, device], config.policy, now, rules=config.storm_rules())
    assert main(["incidents", "--show", KEY, "--config", str(config_path)]) == 0
    shown = capsys.readouterr().out
    assert "  inhibited by blackbox:service=fleet-api: tells and pages nobody while" in shown


def test_show_says_which_group_tells_and_pages_for_a_member(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fleet_alerting.tasks.pipeline import evaluate_and_record

    config_path = setup(tmp_path, str(tmp_path / "state.sqlite"))
    config = load_config(config_path)
    devices = [
        Signal(f"blackbox:target=pi-audio-0{i}", "blackbox", True, Severity.warning, "down")
        for i in (4, 5, 6)  # opening together (KEY opened alone a minute ago)
    ]
    with Store(config.state) as store:
        now = utcnow()
        evaluate_and_record(store, devices, config.policy, now, rules=config.storm_rules())
    member = "blackbox:target=pi-audio-04"
    assert main(["incidents", "--show", member, "--config", str(config_path)]) == 0
    shown = capsys.readouterr().out
    group = "group/blackbox:severity=warning"
    assert (
        f"  in group {group} (id {full_id(group)[:6]}): the group tells and pages for it" in shown
    )


def test_show_says_when_a_group_pages_next_and_marks_an_earlier_episodes_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """ "Why has this not paged yet?" — a group pages as its members' steps come due: `--show`
    of the group names the first member step that pages, to the second; an acknowledgement of
    the group's earlier episode is marked as such."""
    from fleet_alerting.core.incidents import State
    from fleet_alerting.tasks.pipeline import evaluate_and_record

    config_path = setup(tmp_path, str(tmp_path / "state.sqlite"))
    raw = yaml.safe_load(config_path.read_text())
    raw["policies"]["critical"] = {
        "open_after": 1, "resolve_after": 1, "page": ["pagerduty"], "page_after": "90s"
    }  # fmt: skip
    config_path.write_text(yaml.safe_dump(raw))
    config = load_config(config_path)

    def devices(failing: bool) -> list[Signal]:
        return [
            Signal(f"blackbox:target=pi-cam-0{i}", "blackbox", failing, Severity.critical, "down")
            for i in (1, 2, 3)
        ]

    start = utcnow().replace(microsecond=0) - timedelta(minutes=30)
    with Store(config.state) as store:
        run = [start, start + timedelta(minutes=2), start + timedelta(minutes=3)]
        for now, failing in zip(run, (True, False, True), strict=True):
            rules = config.storm_rules()
            evaluate_and_record(store, devices(failing), config.policy, now, rules=rules)
            if now == start:
                group = next(i for i in store.incidents() if i.key.startswith("group/"))
                assert main(["ack", group.key, "--config", str(config_path), "--as", "ana"]) == 0
        group = next(i for i in store.incidents() if i.key.startswith("group/"))
        members = [store.incident(k) for k in group.members]
    assert group.state == State.firing and len(members) == 3
    first = min(m.escalation.next_at for m in members if m is not None)
    capsys.readouterr()
    assert main(["incidents", "--show", group.key, "--config", str(config_path)]) == 0
    shown = capsys.readouterr().out
    assert f"  Next page: pagerduty at {first:%H:%M:%S} UTC, as blackbox:target=pi-cam-0" in shown
    ack = next(line for line in shown.splitlines() if "ack by ana via cli: done" in line)
    assert ack.endswith(f"(an earlier episode, since {start:%H:%M:%S}Z)")


def test_a_device_name_finds_its_one_open_incident_and_lists_several(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Operators think in device names: the `instance`/`device`/`host` label (without its port),
    a probed URL's host, a Fleet API event's device, a configured blackbox target's name. A name
    that names one open incident is that incident; one that names several lists them and
    nothing is done."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "state: {path: state.sqlite}\nnotify: {dry_run: true}\n"
        "policies: {warning: {open_after: 1}}\n"
        "blackbox: {targets: [{name: Fleet-API, url: 'http://10.0.0.5/healthz'}]}\n"
    )
    config = load_config(path)
    now = utcnow() - timedelta(minutes=1)
    east04 = [
        Signal("blackbox:url=http://pi-east-04:8081/healthz", "blackbox", True, Severity.warning,
               "pi-east-04 /healthz failed", target="http://pi-east-04:8081/healthz",
               labels={"role": "player"}),
        Signal("prometheus/role_agent:instance=pi-east-04:9100", "prometheus/role_agent", True,
               Severity.warning, "role agent failed", labels={"instance": "pi-east-04:9100"}),
    ]  # fmt: skip
    east05 = Signal("fleet_events:event=e1", "fleet_events", True, Severity.warning,
                    "command.failed on pi-east-05", target="pi-east-05")  # fmt: skip
    api = Signal("blackbox:url=http://10.0.0.5/healthz", "blackbox", True, Severity.warning,
                 "Fleet-API failed", target="http://10.0.0.5/healthz")  # fmt: skip
    with Store(config.state) as store:
        store.record(evaluate([*east04, east05, api], {}, config.policy, now), now)
    cli = ["--config", str(path)]

    assert main(["incidents", "--show", "pi-east-05", *cli]) == 0
    assert "fleet_events:event=e1: firing warning, command.failed on pi-east-05" in (
        capsys.readouterr().out
    )
    assert main(["incidents", "--show", "fleet-api", *cli]) == 0  # the target's configured name
    assert "blackbox:url=http://10.0.0.5/healthz: firing" in capsys.readouterr().out

    assert main(["ack", "PI-EAST-04", *cli, "--as", "ana"]) == 1
    err = capsys.readouterr().err
    assert '"PI-EAST-04" names 2 open incidents' in err
    for signal in east04:
        assert f"{full_id(signal.key)[:6]} {signal.key}" in err
    with Store(config.state) as store:
        assert all(store.incident(s.key).acts.acked_by is None for s in east04)

    assert main(["snooze", "pi-east-05", "--for", "1h", *cli, "--as", "ana"]) == 0
    assert capsys.readouterr().out.startswith("Reminders snoozed by ana")
    with Store(config.state) as store:
        assert store.incident(east05.key).acts.snoozed_until is not None
