"""Zigbee coordinator watch: window arithmetic and payload tables (pure), then a real mosquitto with
password auth and anonymous access off, Zigbee2MQTT simulators on it, and the flow with Slack."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.config import Config, ConfigError, load_config
from fleet_alerting.config.schema import ZigbeeWindow
from fleet_alerting.core.windows import parse_window
from fleet_alerting.sources.zigbee.client import (
    PayloadError,
    close_command,
    observe_all,
    parse_info,
    parse_state,
)
from fleet_alerting.sources.zigbee.judge import SOURCE, deadline, signals
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.zigbee import OPEN_SINCE, watch
from tests.fakes.saas import SlackWebhookServer
from tests.mosquitto import Broker, start_mosquitto
from tests.zigbee2mqtt_sim import Zigbee2MqttSim

CASES = Path(__file__).parent / "cases"
USER, PASSWORD = "fleet-alerting", "canary-7f3a9c-mqtt-password"  # the canary: never to be seen
RUNBOOK = "https://wiki.example/runbooks/zigbee-permit-join"


# window arithmetic ----------------------------------------------------------------------------
WINDOW_CASES = yaml.safe_load((CASES / "zigbee_windows.yaml").read_text())


@pytest.mark.parametrize("case", WINDOW_CASES, ids=[c["name"] for c in WINDOW_CASES])
def test_window_occurrence(case: dict[str, Any]) -> None:
    window = parse_window(case["window"])
    span = window.occurrence(datetime.fromisoformat(case["at"]))
    got = [moment.astimezone(UTC).isoformat() for moment in span] if span else None
    assert got == case["inside"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Tue 10:00-10:15 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("Tue 10:00-10:00 UTC", "a window needs an end different from its start"),
        ("Someday 10:00-10:15", "'someday' is not a day"),
        ("Tue 25:00-10:15", "25:00 is not a time of day"),
        ("Tuesday at ten", 'expected "DAYS HH:MM-HH:MM [TIME/ZONE]"'),
    ],
)
def test_window_errors_name_the_problem(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {"zigbee": {"coordinators": [{"name": "hub", "permit_join": {"scheduled": [text]}}]}}
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:6: zigbee.coordinators[0].permit_join.scheduled[0]: {error}" in str(info.value)


T0 = datetime(2025, 1, 7, 9, 5, tzinfo=UTC)  # a Tuesday, 10:05 in Zagreb


@pytest.mark.parametrize(
    ("scheduled", "opened", "latest", "rule"),
    [
        ([], T0, T0 + timedelta(seconds=60), "planned 1m00s"),
        (["Tue 10:00-10:15 Europe/Zagreb"], T0, T0 + timedelta(seconds=60), "planned 1m00s"),
        (  # the scheduled window ends first
            ["Tue 10:00-10:05 Europe/Zagreb"],
            T0 - timedelta(seconds=30),
            T0,
            "scheduled window ends Tue 10:05 CET",
        ),
        (["Wed 10:00-10:15 Europe/Zagreb"], T0, T0, "opened outside the scheduled windows"),
    ],
)
def test_deadline(scheduled: list[str], opened: datetime, latest: datetime, rule: str) -> None:
    window = ZigbeeWindow.model_validate({"max_duration": "60s", "scheduled": scheduled})
    got_latest, got_rule = deadline(window, opened)
    assert got_latest == latest
    assert got_rule.startswith(rule)


# payloads --------------------------------------------------------------------------------------
PAYLOAD_CASES = yaml.safe_load((CASES / "zigbee_payloads.yaml").read_text())


def payload_of(case: dict[str, Any]) -> bytes:
    raw = case["payload"].encode()
    return raw * case["repeat"] if "repeat" in case else raw


@pytest.mark.parametrize("case", PAYLOAD_CASES, ids=lambda c: f"{c['topic']}:{c['payload'][:30]}")
def test_payload_table(case: dict[str, Any]) -> None:
    parse = parse_state if case["topic"] == "bridge/state" else parse_info
    limit = 512 * 1024
    if "problem" in case:
        with pytest.raises(PayloadError) as info:
            parse(payload_of(case), limit)
        assert case["problem"] in str(info.value)
        assert case["payload"][:20] not in str(info.value) or len(case["payload"]) < 3
        return
    got = parse(payload_of(case), limit)
    if case["topic"] == "bridge/state":
        assert got == case["expect"]
    else:
        end = got.permit_join_end.isoformat() if got.permit_join_end else None
        assert {"permit_join": got.permit_join, "end": end, "major": got.major} == case["expect"]


# a real broker ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    server = start_mosquitto(
        tmp_path_factory.mktemp("mosquitto"), {USER: PASSWORD, "zigbee2mqtt": "z2m-secret"}
    )
    yield server
    server.stop()


@pytest.fixture
def sims(broker: Broker) -> Iterator[list[Zigbee2MqttSim]]:
    """Started simulators, stopped (and their retained topics cleared) after the test."""
    started: list[Zigbee2MqttSim] = []
    yield started
    for sim in started:
        with contextlib.suppress(Exception):  # a crashed one has no connection left
            sim.stop()
    cleaner = Zigbee2MqttSim(broker.port, "zigbee2mqtt", "z2m-secret", base_topic="cleaner")
    cleaner.start()
    for sim in started:
        for suffix in ("bridge/state", "bridge/info"):
            cleaner.client.publish(sim.topic(suffix), b"", qos=1, retain=True).wait_for_publish(5)
    cleaner.client.disconnect()
    cleaner.client.loop_stop()


def sim(broker: Broker, sims: list[Zigbee2MqttSim], base: str, **kwargs: Any) -> Zigbee2MqttSim:
    started = Zigbee2MqttSim(broker.port, "zigbee2mqtt", "z2m-secret", base_topic=base, **kwargs)
    sims.append(started.start())
    return started


def coordinator(name: str, broker_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "broker": broker_url,
        "username": USER,
        "password": {"file": "mqtt.password"},
        "base_topic": name,
        "runbook_url": RUNBOOK,
        "remediation": ["Close joining: mosquitto_pub -t zigbee2mqtt/bridge/request/permit_join"],
    } | extra


def make_config(tmp_path: Path, *coordinators: dict[str, Any], **top: Any) -> Config:
    (tmp_path / "mqtt.password").write_text(PASSWORD + "\n")
    data = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
        "zigbee": {"timeout": "1s", "coordinators": list(coordinators)},
    } | top
    return Config.model_validate(data, context={"base_dir": tmp_path})


def by_check(found: list, name: str) -> dict[str, Any]:
    return {
        s.labels["check"] + (f" {s.labels['topic']}" if "topic" in s.labels else ""): s
        for s in found
        if s.labels.get("coordinator") == name
    }


@pytest.mark.integration
def test_two_versions_on_one_shared_connection(broker: Broker, sims: list, tmp_path: Path) -> None:
    sim(broker, sims, "hub-v2", major=2)
    sim(broker, sims, "hub-v1", major=1)
    config = make_config(
        tmp_path,
        coordinator("hub-v2", broker.url, health_check=True),
        coordinator("hub-v1", broker.url),
    )
    log = broker.log
    before = log.read_text().count("as fleet-alerting-")
    observations = asyncio.run(observe_all(config.zigbee.coordinators, config.zigbee))
    assert log.read_text().count("as fleet-alerting-") - before == 1  # one connection for both
    v2, v1 = observations
    assert (v2.state, v2.info.permit_join, v2.info.major, v2.health.healthy) == (
        "online",
        False,
        2,
        True,
    )
    assert (v1.state, v1.info.permit_join, v1.info.major, v1.health) == ("online", False, 1, None)
    assert v1.problems == v2.problems == {}


@pytest.mark.integration
def test_offline_by_last_will_and_no_retained_state(
    broker: Broker, sims: list, tmp_path: Path
) -> None:
    crashed = sim(broker, sims, "hub-crash")
    config = make_config(
        tmp_path, coordinator("hub-crash", broker.url), coordinator("hub-never", broker.url)
    )
    crashed.crash()
    observations = asyncio.run(observe_all(config.zigbee.coordinators, config.zigbee))
    found = [s for o in observations for s in signals(o, None)]
    crash, never = by_check(found, "hub-crash"), by_check(found, "hub-never")
    assert crash["offline"].firing
    assert (
        crash["offline"].summary == "Zigbee coordinator hub-crash is offline (bridge/state offline)"
    )
    assert never["offline"].summary == (
        "Zigbee coordinator hub-never is offline (no retained bridge/state)"
    )
    assert not crash["broker"].firing and not never["broker"].firing


@pytest.mark.integration
def test_broker_errors_say_mqtt_not_zigbee(broker: Broker, tmp_path: Path) -> None:
    from tests.servers import free_port

    (tmp_path / "wrong.password").write_text("not-the-password")
    config = make_config(
        tmp_path,
        coordinator("hub-wrong", broker.url, password={"file": "wrong.password"}),
        coordinator("hub-nobody", f"mqtt://127.0.0.1:{free_port()}"),
        coordinator("hub-nofile", broker.url, password={"file": "missing.password"}),
    )
    observations = asyncio.run(observe_all(config.zigbee.coordinators, config.zigbee))
    found = [s for o in observations for s in signals(o, None)]
    wrong, nobody, nofile = (
        by_check(found, n)["broker"] for n in ("hub-wrong", "hub-nobody", "hub-nofile")
    )
    assert wrong.firing and "refused the login of fleet-alerting (auth refused)" in wrong.summary
    assert "MQTT, not Zigbee" in wrong.summary
    assert nobody.firing and "unreachable" in nobody.summary and "auth" not in nobody.summary
    assert nofile.firing and "MQTT password unavailable: cannot read secret file" in nofile.summary
    assert [s.labels["check"] for s in found] == ["broker"] * 3  # nothing else claimed to be known
    assert all("not-the-password" not in s.summary for s in found)


@pytest.mark.integration
def test_health_check_matched_by_transaction(broker: Broker, sims: list, tmp_path: Path) -> None:
    sim(broker, sims, "hub-sick", healthy=False)
    sim(broker, sims, "hub-mute", answer_health=False)
    config = make_config(
        tmp_path,
        coordinator("hub-sick", broker.url, health_check=True),
        coordinator("hub-mute", broker.url, health_check=True),
    )
    # a stale answer with another transaction must not count
    sims[1].publish(
        "bridge/response/health_check",
        '{"data":{"healthy":true},"status":"ok","transaction":"someone-else"}',
        retain=True,
    )
    sims[1].publish("bridge/response/health_check", "garbage", retain=False)
    observations = asyncio.run(observe_all(config.zigbee.coordinators, config.zigbee))
    found = [s for o in observations for s in signals(o, None)]
    sick, mute = by_check(found, "hub-sick")["health"], by_check(found, "hub-mute")["health"]
    assert sick.firing and sick.summary.endswith("unhealthy: health_check answered healthy: false")
    assert mute.firing and mute.summary.endswith("no health_check answer within 1s")
    sims[1].publish("bridge/response/health_check", b"", retain=True)


@pytest.mark.integration
def test_garbage_is_a_signal_and_others_keep_being_checked(
    broker: Broker, sims: list, tmp_path: Path
) -> None:
    sim(broker, sims, "hub-good")
    garbled = sim(broker, sims, "hub-garbled")
    megabyte = sim(broker, sims, "hub-huge")
    garbled.publish("bridge/info", b"\x00\xff not json")
    megabyte.publish("bridge/state", b"{" * (1024 * 1024))
    megabyte.publish("bridge/info", json.dumps({"permit_join": "yes"}))
    config = make_config(
        tmp_path, *(coordinator(n, broker.url) for n in ("hub-good", "hub-garbled", "hub-huge"))
    )
    found = asyncio.run(watch(config, datetime.now(UTC))).signals
    firing = sorted(s.summary for s in found if s.firing)
    assert firing == [
        "unparseable bridge/info from hub-garbled: not JSON",
        "unparseable bridge/info from hub-huge: permit_join is missing or not a boolean",
        "unparseable bridge/state from hub-huge: payload of 1048576 bytes exceeds the "
        "524288-byte limit",
    ]
    good = by_check(found, "hub-good")
    assert not good["offline"].firing and not good["permit_join"].firing


# permit join -----------------------------------------------------------------------------------
def permit_signal(run_signals: list, name: str) -> Any:
    return by_check(run_signals, name).get("permit_join")


@pytest.mark.integration
def test_permit_join_inside_window_is_quiet_past_it_alerts(
    broker: Broker, sims: list, tmp_path: Path
) -> None:
    ok, long, legacy = (
        sim(broker, sims, "hub-60"),
        sim(broker, sims, "hub-254"),
        sim(broker, sims, "hub-legacy", major=1),
    )
    config = make_config(
        tmp_path,
        *(coordinator(n, broker.url) for n in ("hub-60", "hub-254", "hub-legacy")),
    )
    ok.open_joining(60)
    assert long.open_joining(600) == 254  # clamped like the real bridge
    legacy.open_joining(254)
    now = datetime.now(UTC)
    first = asyncio.run(watch(config, now)).signals
    assert not permit_signal(first, "hub-60").firing
    alert = permit_signal(first, "hub-254")
    assert alert.firing and alert.runbook_url == RUNBOOK
    # the first step closes joining on this broker, with its login; the password stays in its file
    assert alert.remediation[0] == (
        f"Close joining: mosquitto_pub -h 127.0.0.1 -p {broker.port} -u {USER} -P "
        f'"$(cat {tmp_path}/mqtt.password)" -t hub-254/bridge/request/permit_join '
        """-m '{"time":0}'"""
    )
    assert PASSWORD not in " ".join(alert.remediation)
    # the end and the deadline are both said as times, both counted from first seen open
    assert "open past the planned window: joining ends " in alert.summary
    assert "after the latest planned end" in alert.summary
    assert "(planned 1m00s, counted from " in alert.summary
    assert alert.summary.endswith("when it was first seen open)")
    assert not permit_signal(first, "hub-legacy").firing  # 1.x: no end, first seen just now
    # 1.x is judged by time since first seen open, which the store keeps between runs
    later = asyncio.run(watch(config, now + timedelta(seconds=90))).signals
    assert permit_signal(later, "hub-legacy").firing
    assert (
        "open for 1m30s since first seen (planned 1m00s"
        in permit_signal(later, "hub-legacy").summary
    )
    store = Store(config.state.path)
    assert store.get_value(OPEN_SINCE)["hub-legacy"] == now.isoformat()
    legacy.open_joining(0)
    closed = asyncio.run(watch(config, now + timedelta(seconds=120))).signals
    assert not permit_signal(closed, "hub-legacy").firing
    assert "hub-legacy" not in store.get_value(OPEN_SINCE)


@pytest.mark.integration
@pytest.mark.parametrize("major, answer_first", [(2, False), (1, False), (2, True)])
def test_auto_close_is_verified_by_reading_back(
    broker: Broker, sims: list, tmp_path: Path, major: int, answer_first: bool
) -> None:
    order = "answer-first" if answer_first else "info-first"
    honest = sim(
        broker, sims, f"hub-honest-{major}-{order}", major=major, answer_first=answer_first
    )
    liar = sim(broker, sims, f"hub-liar-{major}-{order}", major=major, ignore_close=True)
    config = make_config(
        tmp_path,
        coordinator(honest.base, broker.url, auto_close=True),
        coordinator(liar.base, broker.url, auto_close=True),
    )
    for bridge in (honest, liar):
        bridge.open_joining(254)
    now = datetime.now(UTC) + (timedelta(seconds=120) if major == 1 else timedelta(0))
    if major == 1:  # first seen open two minutes before `now`
        seen = datetime.now(UTC).isoformat()
        Store(config.state.path).set_value(OPEN_SINCE, {honest.base: seen, liar.base: seen})
    found = asyncio.run(watch(config, now)).signals
    good, bad = permit_signal(found, honest.base), permit_signal(found, liar.base)
    assert honest.permit_join is False
    assert not good.firing  # closed: the report below tells it, the check is ok again
    # the answer is read whichever of it and bridge/info comes first
    assert good.summary.endswith(
        "closed automatically: closed, verified by bridge/info (request answered ok)"
    )
    reports = {
        item.notification.incident.signal.labels["coordinator"]: item.notification
        for item in Store(config.state.path).outbox()
    }
    told = reports[honest.base].incident.signal
    assert told.summary.startswith(f"Permit join on {honest.base} was open past the planned")
    assert told.summary.endswith(
        "— closed automatically: closed, verified by bridge/info (request answered ok)"
    )
    assert told.evidence["auto_close"] == "verified"
    assert reports[liar.base].incident.signal.evidence["auto_close"] == "NOT verified"
    assert liar.permit_join is True  # it said ok...
    assert bad.evidence["auto_close"] == "NOT closed"  # ...and we did not believe it
    assert "bridge/info still shows joining open after 1s (request answered ok)" in bad.summary
    wanted = {"time": 0} if major == 2 else {"value": False}
    sent = [r for name, r in honest.requests if name == "permit_join"]
    assert [{k: v for k, v in r.items() if k != "transaction"} for r in sent] == [wanted]
    liar.open_joining(0)


# the flow -------------------------------------------------------------------------------------
@pytest.mark.integration
def test_flow_offline_slack_resolve_and_permit_join_alert(
    prefect_api: str,
    broker: Broker,
    sims: list,
    config_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect.client.orchestration import get_client

    from fleet_alerting.flows.watches import zigbee_probe

    hub = sim(broker, sims, "hub-flow")
    joiner = sim(broker, sims, "hub-join")
    with SlackWebhookServer() as slack:
        (config_file.parent / "slack.url").write_text(f"{slack.url}/services/T0/B0/XX\n")
        (config_file.parent / "mqtt.password").write_text(PASSWORD)
        config_file.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {
                        "outbox_file": "outbox.jsonl",
                        "slack": {"webhook": {"file": "slack.url"}},
                    },
                    "policies": {
                        "warning": {"open_after": 2, "resolve_after": 2},
                        "critical": {"page": [], "mirror": False},  # Slack only: fail closed
                    },
                    "zigbee": {
                        "timeout": "1s",
                        "coordinators": [
                            coordinator("hub-flow", broker.url, health_check=True),
                            coordinator("hub-join", broker.url),
                        ],
                    },
                }
            )
        )
        run = lambda: asyncio.run(zigbee_probe(str(config_file)))  # noqa: E731
        assert run()["offline"] == 0
        hub.crash()
        joiner.open_joining(254)
        first = run()
        assert (first["offline"], first["permit_join_past_window"]) == (1, 1)
        assert slack.messages == []  # open_after: 2
        second = run()
        assert second["notifications_sent"] == 2
        texts = [m["text"] for m in slack.messages]
        assert any(
            t.startswith("[WARNING] Zigbee coordinator hub-flow is offline (bridge/state offline)")
            for t in texts
        )
        permit = next(m for m in slack.messages if "Permit join on hub-join" in m["text"])
        assert RUNBOOK in json.dumps(permit["blocks"])
        sim(broker, sims, "hub-flow")  # back online
        joiner.open_joining(0)
        assert run()["resolved"] == 0  # one good check of resolve_after: 2
        assert run()["resolved"] == 2
        resolved = [m["text"] for m in slack.messages[2:]]
        assert sorted(t.split("] ", 1)[1].split(" — ")[0].split(":")[0] for t in resolved) == [
            "Permit join on hub-join open past the planned window",
            "Zigbee coordinator hub-flow is offline (bridge/state offline)",
        ]
        assert all(t.startswith("[RESOLVED after ") for t in resolved)

        async def artifact() -> list[dict]:
            async with get_client() as client:
                found = await client.read_artifacts()
            latest = max((a for a in found if a.key == "zigbee-probe"), key=lambda a: a.created)
            data = latest.data
            return json.loads(data) if isinstance(data, str) else data

        table = asyncio.run(artifact())
        assert {r["coordinator"]: r["permit_join"] for r in table} == {
            "hub-flow": "closed",
            "hub-join": "closed",
        }
    # the canary password never left the process
    everything = json.dumps(slack.messages) + json.dumps(table)
    everything += (config_file.parent / "state.sqlite").read_bytes().decode("latin-1")
    everything += caplog.text
    assert "Zigbee coordinator hub-flow is offline" in everything  # the haystack is real
    assert PASSWORD not in everything


def test_retired_checks_resolve_by_hysteresis(tmp_path: Path) -> None:
    from fleet_alerting.core.policy import PolicyConfig, evaluate
    from fleet_alerting.sources.zigbee.client import Health, Observation
    from fleet_alerting.sources.zigbee.judge import unseen as retired

    before = make_config(
        tmp_path,
        coordinator("hub-a", "mqtt://127.0.0.1:1883", health_check=True),
        coordinator("hub-gone", "mqtt://127.0.0.1:1883"),
    ).zigbee.coordinators
    sick = [Observation(c, state="offline", health=Health(False, "x")) for c in before]
    sick[0] = Observation(before[0], state="online", health=Health(False, "sick"))
    opened = evaluate(
        [s for o in sick for s in signals(o, None)], {}, lambda _: PolicyConfig(open_after=1), T0
    ).incidents
    assert sorted(i.key for i in opened if i.signal.firing) == [
        "zigbee:check=health,coordinator=hub-a",
        "zigbee:check=offline,coordinator=hub-gone",
    ]
    after = [before[0].model_copy(update={"health_check": False})]
    assert sorted((s.key, s.firing, s.summary) for s in retired(opened, after)) == [
        ("zigbee:check=health,coordinator=hub-a", False, "health check no longer made"),
        ("zigbee:check=offline,coordinator=hub-gone", False, "offline check no longer made"),
    ]


# Zigbee tells -------------------------------------------------------------------------------------
@pytest.mark.integration
def test_legacy_permit_join_timeout_is_the_known_end(
    broker: Broker, sims: list, tmp_path: Path
) -> None:
    timed = sim(broker, sims, "hub-1x-timed", major=1, join_timeout=True)
    config = make_config(tmp_path, coordinator("hub-1x-timed", broker.url))
    timed.open_joining(254)
    now = datetime.now(UTC)
    alert = permit_signal(asyncio.run(watch(config, now)).signals, "hub-1x-timed")
    # first seen just now, but Zigbee2MQTT 1.x said how long it stays open: past the window at once
    assert alert.firing
    assert "open past the planned window: joining ends " in alert.summary
    ends = datetime.fromisoformat(alert.evidence["permit_join_end"])
    assert timedelta(seconds=240) < ends - now <= timedelta(seconds=255)
    timed.open_joining(0)


@pytest.mark.integration
def test_changed_cause_of_an_open_incident_is_told_once(broker: Broker, tmp_path: Path) -> None:
    from fleet_alerting.core.incidents import Kind
    from fleet_alerting.core.policy import PolicyConfig, cause_changes, evaluate
    from tests.servers import free_port

    (tmp_path / "wrong.password").write_text("not-the-password")
    refused = make_config(
        tmp_path, coordinator("hub-cause", broker.url, password={"file": "wrong.password"})
    )
    gone = make_config(tmp_path, coordinator("hub-cause", f"mqtt://127.0.0.1:{free_port()}"))
    policy = PolicyConfig(open_after=1, resolve_after=1)
    incidents: dict = {}
    t0 = datetime.now(UTC)

    def step(config: Config, minutes: int) -> list:
        now = t0 + timedelta(minutes=minutes)
        found = asyncio.run(watch(config, now)).signals
        evaluation = evaluate(found, incidents, lambda _s: policy, now)
        evaluation = cause_changes(incidents, evaluation, lambda _s: policy, now, sources={SOURCE})
        incidents.update({i.key: i for i in evaluation.incidents})
        return evaluation.notifications

    (opened,) = step(refused, 0)
    assert opened.kind == Kind.opened and "(auth refused)" in opened.incident.signal.summary
    assert step(refused, 1) == []
    (changed,) = step(gone, 2)  # the broker is now gone altogether: said once
    assert changed.kind == Kind.reminder
    summary = changed.incident.signal.summary
    assert summary.startswith("cause changed from auth refused to unreachable: MQTT broker ")
    assert "unreachable" in summary
    stored = incidents[changed.incident.key]
    assert stored.is_open and stored.signal.labels["cause"] == "unreachable"
    assert step(gone, 3) == []  # the same cause again: nothing
    assert "not-the-password" not in summary and PASSWORD not in summary


@pytest.mark.integration
def test_flow_auto_close_is_reported_whatever_open_after(
    prefect_api: str, broker: Broker, sims: list, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import zigbee_probe

    joiner = sim(broker, sims, "hub-autoclose")
    with SlackWebhookServer() as slack:
        (config_file.parent / "slack.url").write_text(f"{slack.url}/services/T0/B0/XX\n")
        (config_file.parent / "mqtt.password").write_text(PASSWORD)
        config_file.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {
                        "outbox_file": "outbox.jsonl",
                        "slack": {"webhook": {"file": "slack.url"}},
                    },
                    "policies": {
                        "warning": {"open_after": 2, "resolve_after": 2},
                        "critical": {"page": [], "mirror": False},  # Slack only: fail closed
                    },
                    "zigbee": {
                        "timeout": "2s",
                        "coordinators": [coordinator("hub-autoclose", broker.url, auto_close=True)],
                    },
                }
            )
        )
        joiner.open_joining(254)
        first = asyncio.run(zigbee_probe(str(config_file)))
        second = asyncio.run(zigbee_probe(str(config_file)))  # joining closed: nothing more
    assert joiner.permit_join is False
    assert first["notifications_sent"] == 1 and second["notifications_sent"] == 0
    (message,) = [m["text"] for m in slack.messages]
    assert message.startswith(
        "[WARNING] Permit join on hub-autoclose was open past the planned window (joining ends "
    )
    assert (
        "— closed automatically: closed, verified by bridge/info (request answered ok)" in message
    )


@pytest.mark.integration
def test_availability_of_names_with_slashes_and_nothing_else(
    broker: Broker, sims: list, tmp_path: Path
) -> None:
    """Zigbee2MQTT allows "/" in a friendly name: `<base>/floor 1/lamp/availability`. The bridge's
    own topics and device state messages under the same base are not devices, and a coordinator
    whose base lies under another's keeps its own devices."""
    outer, inner = sim(broker, sims, "hub-rooms"), sim(broker, sims, "hub-rooms/annex")
    devices = {"floor 1/lamp": "offline", "garden/shed/plug": "online", "hall": "offline"}
    published = []
    for name, state in devices.items():
        outer.publish_availability(name, state, legacy=name == "hall")
        outer.publish(name, json.dumps({"state": "ON", "linkquality": 80}))  # device state
        published += [f"{name}/availability", name]
    inner.publish_availability("desk/lamp", "offline")
    outer.publish("bridge/devices", "[]")
    outer.publish("bridge/logging", json.dumps({"level": "info", "message": "x/availability"}))
    outer.publish("bridge/extension/availability", "offline")  # the bridge's, never a device
    published += ["bridge/devices", "bridge/logging", "bridge/extension/availability"]
    config = make_config(
        tmp_path,
        coordinator("hub-rooms", broker.url, availability={}),
        coordinator("hub-rooms/annex", broker.url, availability={}),
    )
    try:
        rooms, annex = asyncio.run(observe_all(config.zigbee.coordinators, config.zigbee))
    finally:
        for topic in published:
            outer.publish(topic, b"")
        inner.publish("desk/lamp/availability", b"")
    assert rooms.availability == devices
    assert annex.availability == {"desk/lamp": "offline"}
    assert rooms.problems == annex.problems == {}


@pytest.mark.parametrize(
    "extra, words",
    [
        ({}, ["-h", "pi-video-01", "-p", "1883", "-u", USER, "-P", PASSWORD]),
        ({"broker": "mqtts://pi-video-01"}, ["-h", "pi-video-01", "-p", "8883", "--capath",
          "/etc/ssl/certs", "-u", USER, "-P", PASSWORD]),
        ({"username": None, "password": None}, ["-h", "pi-video-01", "-p", "1883"]),
        ({"password": {"env": "FLEET_TEST_MQTT_PASSWORD"}},
         ["-h", "pi-video-01", "-p", "1883", "-u", USER, "-P", "from-the-environment"]),
    ],
)  # fmt: skip
def test_the_close_command_reaches_the_broker_as_configured(
    tmp_path: Path, extra: dict, words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the shell makes of the command (mosquitto_pub swapped for printf): host, port, TLS,
    login, the password read from its file or variable where the command runs."""
    import subprocess

    monkeypatch.setenv("FLEET_TEST_MQTT_PASSWORD", "from-the-environment")
    hub = coordinator("hub", "mqtt://pi-video-01:1883") | {"base_topic": "zigbee2mqtt"} | extra
    (c,) = make_config(tmp_path, hub).zigbee.coordinators
    command = close_command(c, 2)
    assert PASSWORD not in command
    shown = subprocess.run(
        ["bash", "-c", command.replace("mosquitto_pub", "printf '%s\\n'", 1)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    topic = ["-t", "zigbee2mqtt/bridge/request/permit_join", "-m", '{"time":0}']
    assert shown == [*words, *topic]
    assert close_command(c, 1).endswith("""-m '{"value":false}'""")
