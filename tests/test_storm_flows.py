"""Storms end to end, through the real flows: forty device servers on loopback failing at once,
the Fleet API failing with them, twenty Zigbee devices going offline on a real mosquitto. What
Slack (webhook and mirror) and PagerDuty receive is counted on local servers speaking their
protocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.mosquitto import Broker, start_mosquitto
from tests.zigbee2mqtt_sim import Zigbee2MqttSim

DEVICES = 40


class Device(FakeServer):
    """One player's `/healthz`; `up` is switched by the test (503 while down)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = True

    def handle(self, request: Request) -> Response:
        if request.path == "/healthz" and self.up:
            return Response(200, {"status": "ok"})
        return Response(503, {"status": "down"})


@pytest.fixture(scope="module")
def devices() -> Iterator[list[Device]]:
    with ExitStack() as stack:
        yield [stack.enter_context(Device()) for _ in range(DEVICES)]


@pytest.fixture(scope="module")
def api() -> Iterator[Device]:
    with Device() as server:
        yield server


@pytest.fixture
def saas() -> Iterator[tuple[SlackWebhookServer, SlackWebhookServer, PagerDutyServer]]:
    with SlackWebhookServer() as slack, SlackWebhookServer() as mirror, PagerDutyServer() as pd:
        yield slack, mirror, pd


def write_config(
    config_file: Path,
    saas: tuple[SlackWebhookServer, SlackWebhookServer, PagerDutyServer],
    devices: list[Device],
    api: Device | None = None,
    **top: Any,
) -> None:
    folder = config_file.parent
    slack, mirror, pd = saas
    (folder / "slack.url").write_text(f"{slack.url}/services/T0/B0/XX\n")
    (folder / "mirror.url").write_text(f"{mirror.url}/services/T0/B1/YY\n")
    (folder / "pd.key").write_text("P" * 32)
    entries = [
        {"targets": [f"127.0.0.1:{d.port}"], "labels": {"instance": f"pi-{i:02}", "role": "audio"}}
        for i, d in enumerate(devices)
    ]
    (folder / "targets-players.json").write_text(json.dumps(entries))
    targets = []
    if api is not None:
        targets.append({"name": "Fleet API", "url": f"{api.url}/healthz", "severity": "critical"})
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "outbox_file": "outbox.jsonl",
            "slack": {
                "webhook": {"file": "slack.url"},
                "mirror_webhook": {"file": "mirror.url"},
            },
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd.url}/v2/enqueue"},
        },
        "policies": {
            "critical": {
                "open_after": 2,
                "resolve_after": 2,
                "notify": ["slack"],
                "mirror": True,
                "page": ["pagerduty"],
                "page_after": "0s",
            },
            "warning": {"open_after": 2, "resolve_after": 2, "notify": ["slack"], "mirror": True},
        },
        "blackbox": {
            "timeout": "2s",
            "targets": targets,
            "file_sd": [{"files": ["targets-players.json"], "path": "/healthz"}],
        },
    } | top
    config_file.write_text(yaml.safe_dump(config))


def incident_keys(messages: list[dict]) -> list[str]:
    """The incident each Slack message is about (its context block names it)."""
    keys = []
    for m in messages:
        context = json.dumps([b for b in m["blocks"] if b["type"] == "context"][-1])
        keys.append(context.split("incident `", 1)[1].split("`", 1)[0])
    return keys


@pytest.mark.integration
def test_forty_devices_down_is_one_fleet_page(
    prefect_api: str, devices: list[Device], saas: tuple, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import blackbox_probe

    slack, mirror, pd = saas
    write_config(config_file, saas, devices)
    run = lambda: asyncio.run(blackbox_probe(str(config_file)))  # noqa: E731
    assert run()["failing"] == 0
    for d in devices:
        d.up = False
    assert run()["failing"] == DEVICES  # pending: open_after 2
    assert slack.messages == [] and pd.events == []
    run()  # opens and pages at once (page_after 0s)
    run()  # still down: nothing new
    storm = {"slack": list(slack.messages), "mirror": list(mirror.messages)}
    for d in devices:
        d.up = True
    run()
    run()  # resolve_after 2

    for channel, during in storm.items():
        assert 1 <= len(during) <= 2, channel
        assert set(incident_keys(during)) == {"fleet:rule=fleet"}, channel  # 0 per-device messages
    opened = storm["slack"][0]["text"]
    assert opened.startswith("[CRITICAL] Fleet offline: 40/40 devices unreachable (pi-00, pi-01")
    assert "and 30 more" in opened
    assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [
        ("trigger", "fleet:rule=fleet"),
        ("resolve", "fleet:rule=fleet"),
    ]
    after = slack.messages[len(storm["slack"]) :]
    assert len(after) == 1 and after[0]["text"].startswith("[RESOLVED after ")
    assert incident_keys(after) == ["fleet:rule=fleet"]
    with Store(config_file.parent / "state.sqlite") as store:
        everything = store.incidents(include_resolved=True)
    devices_seen = [i for i in everything if i.source == "blackbox"]
    assert len(devices_seen) == DEVICES and all(i.state == "resolved" for i in devices_seen)


@pytest.mark.integration
def test_api_down_silences_devices_then_tells_once(
    prefect_api: str,
    devices: list[Device],
    api: Device,
    saas: tuple,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fleet_alerting.flows.watches import blackbox_probe
    from fleet_alerting.surfaces.cli import main

    slack, _mirror, pd = saas
    few = devices[:3]
    write_config(config_file, saas, few, api=api)
    run = lambda: asyncio.run(blackbox_probe(str(config_file)))  # noqa: E731
    api.up = False
    for d in few:
        d.up = False
    try:
        run()
        run()  # the API opens (and pages); the devices are inhibited by it
        assert set(incident_keys(slack.messages)) == {f"blackbox:url={api.url}/healthz"}
        with Store(config_file.parent / "state.sqlite") as store:
            inhibited = {i.key: i.inhibited_by for i in store.incidents() if i.inhibited_by}
        assert len(inhibited) == 3
        assert set(inhibited.values()) == {f"blackbox:url={api.url}/healthz"}
        capsys.readouterr()
        assert main(["incidents", "--config", str(config_file)]) == 0
        listed = capsys.readouterr().out
        assert listed.count(f"[inhibited by blackbox:url={api.url}/healthz]") == 3
        api.up = True
        run()
        told = len(slack.messages)
        run()  # the API resolves; the devices still fail: told once, as one group
        run()
    finally:
        api.up = True
        for d in few:
            d.up = True
    new = slack.messages[told:]
    assert [m["text"].split(" ")[0] for m in new] == ["[RESOLVED", "[WARNING]"]
    assert new[1]["text"].startswith("[WARNING] 3 blackbox incidents failing:")
    assert "(was inhibited by blackbox:url=" in new[1]["text"]
    assert [e["event_action"] for e in pd.events] == ["trigger", "resolve"]


# Zigbee per-device availability ---------------------------------------------------------------
USER, PASSWORD = "fleet-alerting", "mqtt-canary-Storm"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    server = start_mosquitto(
        tmp_path_factory.mktemp("mosquitto"), {USER: PASSWORD, "zigbee2mqtt": "z2m-secret"}
    )
    yield server
    server.stop()


@pytest.mark.integration
def test_twenty_zigbee_devices_offline_is_one_message(
    prefect_api: str, broker: Broker, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import zigbee_probe

    hub = Zigbee2MqttSim(broker.port, "zigbee2mqtt", "z2m-secret", base_topic="hub-avail")
    hub.start()
    names = [f"lamp-{i:02}" for i in range(20)]
    try:
        for i, name in enumerate(names):
            hub.publish_availability(name, "online", legacy=i % 2 == 1)  # both shapes
        hub.publish_availability("ignored-sensor", "offline")
        with SlackWebhookServer() as slack:
            folder = config_file.parent
            (folder / "slack.url").write_text(f"{slack.url}/services/T0/B0/XX\n")
            (folder / "mqtt.password").write_text(PASSWORD)
            coordinator = {
                "name": "hub-avail",
                "broker": broker.url,
                "username": USER,
                "password": {"file": "mqtt.password"},
                "base_topic": "hub-avail",
                "availability": {"match": "lamp-.*"},
            }
            config_file.write_text(
                yaml.safe_dump(
                    {
                        "state": {"path": "state.sqlite"},
                        "notify": {
                            "outbox_file": "outbox.jsonl",
                            "slack": {"webhook": {"file": "slack.url"}},
                        },
                        "policies": {
                            "warning": {"open_after": 1, "resolve_after": 1},
                            "critical": {"mirror": False, "page": []},  # fail closed
                        },
                        "zigbee": {"timeout": "2s", "coordinators": [coordinator]},
                    }
                )
            )
            run = lambda: asyncio.run(zigbee_probe(str(config_file)))  # noqa: E731
            run()
            assert slack.messages == []
            for i, name in enumerate(names):
                hub.publish_availability(name, "offline", legacy=i % 2 == 0)
            run()
            assert len(slack.messages) == 1
            text = slack.messages[0]["text"]
            assert text.startswith("[WARNING] 20 zigbee-device incidents failing: Zigbee device")
            assert "lamp-00 on hub-avail is offline" in text and "and 10 more" in text
            for name in names:
                hub.publish_availability(name, "online")
            run()
            assert len(slack.messages) == 2
            assert slack.messages[1]["text"].startswith("[RESOLVED after ")
    finally:
        hub.stop()


@pytest.mark.integration
def test_broker_down_with_three_coordinators_is_one_message(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import zigbee_probe
    from tests.servers import free_port

    dead = f"mqtt://127.0.0.1:{free_port()}"
    with SlackWebhookServer() as slack:
        folder = config_file.parent
        (folder / "slack.url").write_text(f"{slack.url}/services/T0/B0/XX\n")
        coordinators = [
            {"name": f"hub-{i}", "broker": dead, "base_topic": f"hub-{i}", "availability": {}}
            for i in range(3)
        ]
        config_file.write_text(
            yaml.safe_dump(
                {
                    "state": {"path": "state.sqlite"},
                    "notify": {
                        "outbox_file": "outbox.jsonl",
                        "slack": {"webhook": {"file": "slack.url"}},
                    },
                    "policies": {
                        "warning": {"open_after": 1, "resolve_after": 1},
                        "critical": {"mirror": False, "page": []},  # fail closed
                    },
                    "zigbee": {"timeout": "1s", "coordinators": coordinators},
                }
            )
        )
        summary = asyncio.run(zigbee_probe(str(config_file)))
    assert summary["broker_errors"] == 3
    assert len(slack.messages) == 1
    text = slack.messages[0]["text"]
    assert text.startswith("[WARNING] 3 zigbee incidents failing: MQTT broker mqtt://127.0.0.1:")
    assert "MQTT, not Zigbee (hub-0)" in text and "(hub-2)" in text
