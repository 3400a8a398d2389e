"""The event snapshot posted into an incident's thread: the Fleet API's recent events related to
the incident, each with its correlation id and a Grafana Explore link to its logs.

A failing Fleet API never blocks the incident's messages: the snapshot then says why it is empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from fleet_alerting.config import Config
from fleet_alerting.config.secrets import SecretError
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.signals import Link
from fleet_alerting.delivery.notifiers.slack_api import (
    Snapshot,
    snapshot_message,
    unrelated_message,
)
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import FleetApi, FleetEvent
from fleet_alerting.sources.fleet_events.judge import (
    correlation_link,
    may_concern,
    related_events,
)


def make_snapshot(config: Config, client: httpx.AsyncClient) -> Snapshot | None:
    fleet = config.fleet_api
    if fleet is None:
        return None
    cache: dict[str, list[FleetEvent]] = {}  # one fetch per delivery run

    def link_for(event: FleetEvent) -> Link | None:
        return correlation_link(config.links, fleet.log_labels, event)

    async def snapshot(incident: Incident, now: datetime) -> dict[str, Any]:
        if not may_concern(incident):
            return unrelated_message(incident)
        try:
            if "events" not in cache:
                token = fleet.token.resolve() if fleet.token else None
                page, _problems = await FleetApi(
                    client, fleet.url, token, fleet.max_answer_bytes
                ).recent_events(fleet.limit)
                cache["events"] = page.events
        except (AdapterError, SecretError) as exc:
            note = f"Fleet API events unavailable: {exc}"
            return snapshot_message(incident, [], "unavailable", link_for, note=note)
        events, scope = related_events(
            cache["events"], incident, now, fleet.snapshot_minutes, fleet.snapshot_max_events
        )
        return snapshot_message(incident, events, scope, link_for)

    return snapshot
