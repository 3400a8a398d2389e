"""Zigbee2MQTT coordinators as one Prefect task: read every broker, judge, auto-close if asked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fleet_alerting.config import Config
from fleet_alerting.core.signals import Signal
from fleet_alerting.sources.zigbee import judge as zigbee
from fleet_alerting.sources.zigbee.client import close_permit_join, observe_all
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.runtime import run_logger, step


@dataclass(frozen=True)
class ZigbeeRun:
    signals: list[Signal]
    rows: list[dict[str, object]]


OPEN_SINCE = "zigbee:permit_join_open_since"  # store value: {coordinator: first seen open}


@step("watch-coordinators")
async def watch_coordinators(config: Config, now: datetime) -> ZigbeeRun:
    return await watch(config, now)


async def watch(config: Config, now: datetime) -> ZigbeeRun:
    """The task's body, callable without Prefect (the benchmark times it)."""
    zconfig = config.zigbee
    observations = await observe_all(zconfig.coordinators, zconfig)
    signals: list[Signal] = []
    rows: list[dict[str, object]] = []
    with Store(config.state) as store:
        stored: dict[str, str] = store.get_value(OPEN_SINCE) or {}
        open_since = dict(stored)
        for obs in observations:
            name = obs.coordinator.name
            since = datetime.fromisoformat(stored[name]) if name in stored else None
            permit = zigbee.judge_permit_join(obs, since, now, zconfig.clock_skew)
            if permit is not None and permit.open_since is None:
                open_since.pop(name, None)
            elif permit is not None and permit.open_since is not None:
                open_since[name] = permit.open_since.isoformat()
            closed = None
            if zigbee.should_close(obs, permit) and obs.info is not None and permit is not None:
                closed = await close_permit_join(obs.coordinator, obs.info.major, zconfig)
                channels = config.policy(obs.coordinator.severity).channels()
                store.record(zigbee.auto_close_report(obs, permit, closed, channels, now), now)
            signals += zigbee.signals(obs, permit, closed)
            signals += zigbee.device_signals(obs)
            rows.append(zigbee.row(obs, permit, now, closed))
        if open_since != stored:
            store.set_value(OPEN_SINCE, open_since)
        signals += zigbee.retired(store.unresolved(zigbee.SOURCE).values(), zconfig.coordinators)
        devices = store.unresolved(zigbee.DEVICE_SOURCE).values()
        signals += zigbee.retired_devices(devices, observations, signals)
    return ZigbeeRun(signals, rows)


def log_run(run: ZigbeeRun) -> None:
    logger = run_logger()
    for signal in run.signals:
        if signal.firing:
            logger.warning("%s", signal.summary)
