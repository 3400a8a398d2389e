"""A Zigbee2MQTT health_check answer with the matching transaction whose `data` is not an object
(`"data": "ok"`, `"data": [..]`, `1`) is a health problem of its coordinator ("lacks
data.healthy"), as the client promises ("parsing never raises"): the broker's observation goes
on, so a coordinator beside it that is offline (its last will published) is still reported.

Real mosquitto (tests/mosquitto.py) and the Zigbee2MQTT simulator on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleet_alerting.config import Config
from fleet_alerting.tasks.zigbee import watch
from tests.mosquitto import Broker
from tests.test_zigbee import PASSWORD, USER
from tests.test_zigbee import broker as zigbee_broker
from tests.zigbee2mqtt_sim import Zigbee2MqttSim

broker = zigbee_broker  # the same real mosquitto fixture


class OddHealthSim(Zigbee2MqttSim):
    """Answers health_check with the request's transaction and `data` of another type."""

    def __init__(self, *args: Any, data: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.odd_data = data

    def _answer(self, name: str, request: Any) -> None:
        if name != "health_check":
            return super()._answer(name, request)
        response = {"data": self.odd_data, "status": "ok", "transaction": request["transaction"]}
        self.publish("bridge/response/health_check", json.dumps(response), retain=False)


def config_for(tmp: Path, broker: Broker, *names: str) -> Config:
    (tmp / "mqtt.password").write_text(PASSWORD + "\n")
    coordinators = [
        {
            "name": name,
            "broker": broker.url,
            "username": USER,
            "password": {"file": "mqtt.password"},
            "base_topic": name,
            "health_check": True,
        }
        for name in names
    ]
    data = {
        "state": {"path": "state.sqlite"},
        "notify": {"dry_run": True, "outbox_file": "outbox.jsonl"},
        "zigbee": {"timeout": "1s", "coordinators": coordinators},
    }
    return Config.model_validate(data, context={"base_dir": tmp})


def scenario(tmp: Path, broker: Broker, data: Any) -> list:
    odd = OddHealthSim(broker.port, "zigbee2mqtt", "z2m-secret", base_topic="hub-odd", data=data)
    dead = Zigbee2MqttSim(broker.port, "zigbee2mqtt", "z2m-secret", base_topic="hub-dead")
    odd.start()
    dead.start()
    dead.crash()  # the broker publishes its last will: bridge/state offline
    try:
        config = config_for(tmp, broker, "hub-odd", "hub-dead")
        return asyncio.run(watch(config, datetime.now(UTC))).signals
    finally:
        with contextlib.suppress(Exception):
            odd.stop()


@pytest.mark.parametrize("data", ["ok", [{"healthy": True}], 1], ids=["a string", "a list", "1"])
def test_an_odd_health_answer_never_hides_an_offline_coordinator(
    tmp_path: Path, broker: Broker, data: Any
) -> None:
    """The answer is a health problem of its coordinator; the broker's others are read."""
    found = scenario(tmp_path, broker, data)
    offline = [s for s in found if s.firing and s.labels.get("check") == "offline"]
    assert [s.labels["coordinator"] for s in offline] == ["hub-dead"]
    odd = [s for s in found if s.labels.get("coordinator") == "hub-odd"]
    assert any(s.firing and s.labels.get("check") == "health" for s in odd)


def test_control_a_documented_health_answer(tmp_path: Path, broker: Broker) -> None:
    found = scenario(tmp_path, broker, {"healthy": True})
    offline = [s for s in found if s.firing and s.labels.get("check") == "offline"]
    assert [s.labels["coordinator"] for s in offline] == ["hub-dead"]
