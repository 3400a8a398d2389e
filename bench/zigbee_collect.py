"""One zigbee watch over 50 coordinators on one local mosquitto vs a bare aiomqtt client.

The broker holds 50 coordinators' retained `bridge/state` and `bridge/info` (2.x shape, a third of
them with joining open). Measured, median of ROUNDS after one warm-up:
- bare: connect, subscribe to the 100 topics, return once all 100 retained messages arrived (it is
  told the count in advance; the watch is not);
- watch: `tasks.zigbee.watch` (connect, read, parse, judge windows, first-seen times in SQLite)
  plus the engine's evaluate and the store's record: what one flow run does before delivery;
- flow (unless --no-flow): the whole Prefect flow run, in Prefect's ephemeral mode.
Run: PYTHONPATH=. python bench/zigbee_collect.py [--no-flow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
import yaml

from fleet_alerting.config import Config, load_config
from fleet_alerting.core.policy import evaluate
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.zigbee import watch
from tests.mosquitto import start_mosquitto

COORDINATORS = 50
ROUNDS = 15
USER, PASSWORD = "bench", "bench-password"


def seed(port: int) -> list[str]:
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-seed")
    publisher.username_pw_set(USER, PASSWORD)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    topics = []
    end = int((time.time() + 50) * 1000)
    for i in range(COORDINATORS):
        base = f"zigbee2mqtt-{i:02d}"
        info = {"version": "2.1.3", "permit_join": i % 3 == 0, "network": {"channel": 11}}
        if i % 3 == 0:
            info["permit_join_end"] = end
        for suffix, payload in (
            ("bridge/state", json.dumps({"state": "online"})),
            ("bridge/info", json.dumps(info)),
        ):
            publisher.publish(f"{base}/{suffix}", payload, qos=1, retain=True).wait_for_publish(5)
            topics.append(f"{base}/{suffix}")
    publisher.disconnect()
    publisher.loop_stop()
    return topics


async def bare(port: int, topics: list[str], marker: bool = False) -> float:
    """Subscribe and wait for every retained message; with `marker`, also publish to a topic of
    its own right after subscribing, as the watch does (see the README for why that matters)."""
    started = time.perf_counter()
    async with aiomqtt.Client("127.0.0.1", port, username=USER, password=PASSWORD) as client:
        await client.subscribe([(t, 1) for t in topics])
        if marker:
            await client.publish("bench/marker", b"", qos=1)
        seen = set()
        async for message in client.messages:
            seen.add(message.topic.value)
            if len(seen) == len(topics):
                break
    return time.perf_counter() - started


async def watch_and_evaluate(config: Config) -> float:
    started = time.perf_counter()
    now = datetime.now(UTC)
    run = await watch(config, now)
    with Store(config.state.path) as store:
        store.record(evaluate(run.signals, store.unresolved(), config.policy, now), now)
    assert len(run.rows) == COORDINATORS and not any(s.firing for s in run.signals), run.rows[:2]
    return time.perf_counter() - started


def write_config(folder: Path, port: int) -> Path:
    (folder / "mqtt.password").write_text(PASSWORD)
    coordinators = [
        {
            "name": f"hub-{i:02d}",
            "broker": f"mqtt://127.0.0.1:{port}",
            "username": USER,
            "password": {"file": "mqtt.password"},
            "base_topic": f"zigbee2mqtt-{i:02d}",
            "permit_join": {"max_duration": "60s"},
        }
        for i in range(COORDINATORS)
    ]
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"outbox_file": "outbox.jsonl"},
                "zigbee": {"coordinators": coordinators},
            }
        )
    )
    return path


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-flow", action="store_true", help="skip the Prefect flow timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = start_mosquitto(folder / "mosquitto", {USER: PASSWORD})
        try:
            topics = seed(broker.port)
            config = load_config(write_config(folder, broker.port))
            asyncio.run(bare(broker.port, topics))
            asyncio.run(watch_and_evaluate(config))
            bare_t, marked_t, watch_t = [], [], []
            for _ in range(ROUNDS):  # interleaved, so machine noise hits all three alike
                bare_t.append(asyncio.run(bare(broker.port, topics)))
                marked_t.append(asyncio.run(bare(broker.port, topics, marker=True)))
                watch_t.append(asyncio.run(watch_and_evaluate(config)))
            b, m, w = median_ms(bare_t), median_ms(marked_t), median_ms(watch_t)
            print(f"{COORDINATORS} coordinators, {len(topics)} retained topics, median of {ROUNDS}")
            print(f"bare aiomqtt client:          {b:7.1f} ms")
            print(f"bare client + marker publish: {m:7.1f} ms")
            print(
                f"watch + evaluate + record:    {w:7.1f} ms   ratio {w / b:.2f} vs bare, "
                f"{w / m:.2f} vs bare + marker (goal <= 2)"
            )
            if not args.no_flow:
                os.environ.setdefault("PREFECT_HOME", str(folder / "prefect"))
                os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
                from fleet_alerting.flows.watches import zigbee_probe

                asyncio.run(zigbee_probe(str(folder / "config.yaml")))  # starts the ephemeral API
                flow_t = []
                for _ in range(5):
                    started = time.perf_counter()
                    asyncio.run(zigbee_probe(str(folder / "config.yaml")))
                    flow_t.append(time.perf_counter() - started)
                f = median_ms(flow_t)
                print(
                    f"whole Prefect flow run:       {f:7.1f} ms   ratio {f / b:.2f} vs bare, "
                    f"{f / m:.2f} vs bare + marker (median of 5)"
                )
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
