"""Zigbee2MQTT coordinators as one Prefect task: read every broker, judge, auto-close if asked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from fleet_alerting import zigbee
from fleet_alerting.adapters.zigbee2mqtt import close_permit_join, observe_all
from fleet_alerting.config import Config
from fleet_alerting.signals import Signal
from fleet_alerting.store import Store


@dataclass(frozen=True)
class ZigbeeRun:
    signals: list[Signal]
    rows: list[dict[str, object]]


def open_since_key(name: str) -> str:
    return f"zigbee:permit_join_open_since:{name}"


@task(name="watch-coordinators", cache_policy=NO_CACHE)
async def watch_coordinators(config: Config, now: datetime) -> ZigbeeRun:
    return await watch(config, now)


async def watch(config: Config, now: datetime) -> ZigbeeRun:
    """The task's body, callable without Prefect (the benchmark times it)."""
    zconfig = config.zigbee
    observations = await observe_all(zconfig.coordinators, zconfig)
    signals: list[Signal] = []
    rows: list[dict[str, object]] = []
    store = Store(config.state.path)
    try:
        for obs in observations:
            name = obs.coordinator.name
            stored = store.get_value(open_since_key(name))
            since = datetime.fromisoformat(stored) if stored else None
            permit = zigbee.judge_permit_join(obs, since, now, zconfig.clock_skew)
            if permit is not None and permit.open_since != since:
                first_seen = permit.open_since.isoformat() if permit.open_since else None
                store.set_value(open_since_key(name), first_seen)
            closed = None
            if zigbee.should_close(obs, permit) and obs.info is not None:
                closed = await close_permit_join(obs.coordinator, obs.info.major, zconfig)
            signals += zigbee.signals(obs, permit, closed)
            rows.append(zigbee.row(obs, permit, now))
        names = [c.name for c in zconfig.coordinators]
        signals += zigbee.retired(store.unresolved(zigbee.SOURCE).values(), names)
    finally:
        store.close()
    return ZigbeeRun(signals, rows)


def log_run(run: ZigbeeRun) -> None:
    logger = get_run_logger()
    for signal in run.signals:
        if signal.firing:
            logger.warning("%s", signal.summary)
