"""The zigbee watch's observation as the run makes it (observed, then kept), callable without
Prefect: the benchmark times it."""

from __future__ import annotations

from datetime import datetime

from fleet_alerting.config import Config
from fleet_alerting.sources.watch import Observation
from fleet_alerting.sources.zigbee import WATCH
from fleet_alerting.sources.zigbee.watch import OPEN_SINCE
from fleet_alerting.tasks.observe import observe

__all__ = ["OPEN_SINCE", "watch"]


async def watch(config: Config, now: datetime) -> Observation:
    return await observe(WATCH, config, now)
