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

    def open_keys(self, source: str) -> set[str]:
        return self._store.open_keys(source)


def keep(store: Store, observation: Observation, now: datetime) -> None:
    """Incidents over at once, their notifications and the values for the next run, in one
    transaction: a cursor never moves past events whose notifications are not queued, and a
    replayed observation queues nothing twice (a notification's id says it is queued)."""
    one_offs = observation.one_offs
    if not (observation.values or (one_offs and (one_offs.incidents or one_offs.notifications))):
        return
    with store.transaction() as unit:
        if one_offs is not None:
            unit.record(one_offs, now)
        for key, value in observation.values.items():
            unit.set_value(key, value)
