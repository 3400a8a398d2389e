"""A watch's observation, and what it keeps for the next run: the one store write beside the
engine's (cursors, clocks, incidents over at once), made before the engine evaluates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleet_alerting.config import Config
from fleet_alerting.core.incidents import Incident
from fleet_alerting.sources.watch import Observation, Watch
from fleet_alerting.store.database import Store


async def observe(watch: Watch, config: Config, now: datetime) -> Observation:
    with Store(config.state) as store:
        observation = await watch.observe(config, now, StoreView(store))
        keep(store, observation, now)
    return observation


class StoreView:
    """The store as a watch sees it while it observes: values and open incidents, no writes."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get_value(self, key: str, default: Any = None) -> Any:
        return self._store.get_value(key, default)

    def unresolved(self, source: str | None = None) -> dict[str, Incident]:
        return self._store.unresolved(source)


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
