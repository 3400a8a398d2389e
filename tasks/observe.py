"""A watch's observation, and what it keeps for the next run: the one store write beside the
engine's (cursors, clocks, incidents over at once), made before the engine evaluates."""

from __future__ import annotations

from datetime import datetime

from fleet_alerting.config import Config
from fleet_alerting.sources.watch import Observation, Watch
from fleet_alerting.store.database import Store


async def observe(watch: Watch, config: Config, now: datetime) -> Observation:
    with Store(config.state) as store:
        observation = await watch.observe(config, now, store)
        keep(store, observation, now)
    return observation


def keep(store: Store, observation: Observation, now: datetime) -> None:
    """One-off incidents and their notifications are queued before the values move on: a crash
    in between replays the same observation, whose notifications are already queued (their ids
    say so), so nothing is told twice and nothing is lost."""
    if observation.one_offs is not None and (
        observation.one_offs.incidents or observation.one_offs.notifications
    ):
        store.record(observation.one_offs, now)
    for key, value in observation.values.items():
        store.set_value(key, value)
