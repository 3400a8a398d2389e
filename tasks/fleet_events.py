"""Fleet API event feed as Prefect tasks: fetch the newest events, record what is new."""

from __future__ import annotations

from datetime import datetime

from fleet_alerting.config import Config
from fleet_alerting.config.schema import FleetApiConfig
from fleet_alerting.config.secrets import SecretError
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.http.clients import shared_client
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import FleetApi, FleetEvent
from fleet_alerting.sources.fleet_events.judge import (
    CURSOR_KEY,
    Advance,
    Cursor,
    advance,
    alerting,
    event_notifications,
)
from fleet_alerting.sources.records import Malformed
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.runtime import run_logger, step


@step("fetch-fleet-events")
async def fetch_events(
    config: FleetApiConfig,
) -> tuple[list[FleetEvent], list[Malformed], str | None]:
    """The newest events, the malformed ones, and the run's problem (API down) if any."""
    logger = run_logger()
    try:
        token = config.token.resolve() if config.token else None
        client = shared_client(config.url, config.timeout.total_seconds())
        page, problems = await FleetApi(
            client, config.url, token, config.max_answer_bytes
        ).recent_events(config.limit)
    except (AdapterError, SecretError) as exc:
        logger.error("Fleet API events: %s", exc)
        return [], [], f"Fleet API events: {exc}"
    for problem in problems:
        logger.warning("Fleet API events: skipped malformed %s", problem)
    logger.info("Fleet API: %d event(s) (correlation id %s)", len(page.events), page.correlation_id)
    return page.events, problems, None


@step("record-new-events")
def record_new_events(
    config: Config, events: list[FleetEvent], now: datetime
) -> tuple[Advance, list[FleetEvent]]:
    """New events since the stored cursor; alerting ones queued for Slack; cursor moved on.

    Notifications are queued before the cursor moves: a crash in between replays the same events,
    whose notification ids are already queued, so nothing is sent twice and nothing is lost. Only
    the notifications are stored (each carries its one-off incident): an event is over at once
    and would otherwise leave an incident row behind per event."""
    fleet = config.fleet_api
    assert fleet is not None
    with Store(config.state) as store:
        advanced = advance(
            Cursor.from_json(store.get_value(CURSOR_KEY)), events, fleet.lookback, fleet.limit
        )
        loud = alerting(advanced.new, fleet)
        notifications = event_notifications(loud, config, now).notifications
        queued = store.record(Evaluation([], notifications), now)
        store.set_value(CURSOR_KEY, advanced.cursor.to_json())
    logger = run_logger()
    logger.info(
        "%d new event(s), %d alerting, %d notification(s) queued",
        len(advanced.new),
        len(loud),
        queued,
    )
    if advanced.possible_gap:
        logger.warning(
            "the Fleet API page was full and newer than the last run: events may have been "
            "missed; run more often or keep limit at 200"
        )
    return advanced, loud
