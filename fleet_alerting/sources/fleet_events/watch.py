"""The Fleet API event feed: every new event in the run's table (the UI feed); `command.failed`
and `audio.upload` errors at or above the configured severity to Slack. A cursor in the store
keeps events from being reported twice or skipped across runs."""

from __future__ import annotations

from datetime import datetime

from fleet_alerting.config import Config
from fleet_alerting.config.schema import FleetApiConfig
from fleet_alerting.config.secrets import SecretError
from fleet_alerting.core.clock import ahead_by
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import Evaluation
from fleet_alerting.core.wording import count, described
from fleet_alerting.http.clients import shared_client
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.fleet_events.client import FleetApi, FleetEvent
from fleet_alerting.sources.fleet_events.judge import (
    API_SOURCE,
    CURSOR_KEY,
    RECORDS_SOURCE,
    Advance,
    Cursor,
    advance,
    alerting,
    correlation_link,
    event_notifications,
    malformed_signals,
)
from fleet_alerting.sources.records import Malformed, problem_signals
from fleet_alerting.sources.watch import Observation, Row, StoreReader, run_log, step

# only an answer may resolve: while the API is down, its malformed-event warnings stay
READABLE = {
    API_SOURCE: "Fleet API events readable again",
    RECORDS_SOURCE: "no malformed event of that name in the feed any more",
}


@step("fetch-fleet-events")
async def fetch_events(
    config: FleetApiConfig,
) -> tuple[list[FleetEvent], list[Malformed], str | None]:
    """The newest events, the malformed ones, and the run's problem (API down) if any."""
    logger = run_log()
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


def record_new_events(
    config: Config, events: list[FleetEvent], now: datetime, store: StoreReader
) -> tuple[Advance, list[FleetEvent], Evaluation]:
    """New events since the stored cursor, the alerting ones, and their notifications.

    The run queues the notifications before it moves the cursor on: a crash in between replays
    the same events, whose notification ids are already queued, so nothing is sent twice and
    nothing is lost. Only the notifications are stored (each carries its one-off incident): an
    event is over at once and would otherwise leave an incident row behind per event."""
    fleet = config.fleet_api
    assert fleet is not None
    cursor = Cursor.from_json(store.get_value(CURSOR_KEY))
    advanced = advance(cursor, events, fleet.lookback, fleet.limit, now)
    loud = alerting(advanced.new, fleet)
    notifications = event_notifications(loud, config, now).notifications
    logger = run_log()
    logger.info(
        "%d new event(s), %d alerting, %d notification(s) queued",
        len(advanced.new),
        len(loud),
        len(notifications),
    )
    if advanced.possible_gap:
        logger.warning(
            "the Fleet API page was full and newer than the last run: events may have been "
            "missed; run more often or keep limit at 200"
        )
    if advanced.ahead:
        logger.warning(
            "%d event(s) stamped later than this machine's clock, up to %s ahead (%s): reported, "
            "and taken as of now for the cursor; check the clock of the Fleet API's host and "
            "that its timestamps carry an offset",
            len(advanced.ahead),
            ahead_by(max(e.timestamp for e in advanced.ahead), now),
            sorted({e.target or e.type for e in advanced.ahead})[:5],
        )
    return advanced, loud, Evaluation([], notifications)


async def observe(config: Config, now: datetime, store: StoreReader) -> Observation:
    fleet = config.fleet_api
    assert fleet is not None
    events, skipped, failure = await fetch_events(fleet)
    new: list[FleetEvent] = []
    loud: list[FleetEvent] = []
    gap, told, kept = False, None, {}
    if failure is None:  # an unreachable API leaves the cursor where it was
        advanced, loud, told = record_new_events(config, events, now, store)
        new, gap = advanced.new, advanced.possible_gap
        kept = {CURSOR_KEY: advanced.cursor.to_json()}
    problems = [failure] if failure else []
    counters = {
        "events_seen": len(events),
        "new_events": len(new),
        "alerting_events": len(loud),
        "possible_gap": int(gap),
        "api_problems": len(problems),
        "malformed_events": len(skipped),
    }
    troubles = [
        f"{len(loud)} alerting" if loud else "",
        "some may have been missed (a gap in the feed)" if gap else "",
        count(len(problems), "Fleet API problem") if problems else "",
        count(len(skipped), "malformed event") if skipped else "",
    ]
    return Observation(
        problem_signals(API_SOURCE, problems) + malformed_signals(skipped),
        described(f"{count(len(new), 'new event')} read", troubles, "none alerting"),
        counters,
        rows=feed_rows(new, loud, config.links, fleet),
        unseen_sources={} if failure else dict(READABLE),
        one_offs=told,
        values=kept,
    )


def feed_rows(
    new: list[FleetEvent], loud: list[FleetEvent], links: LinksConfig, fleet: FleetApiConfig
) -> list[Row]:
    """Every new event, newest first as a feed reads; `slack` marks those told."""
    alerted = {e.identity for e in loud}
    rows: list[Row] = []
    for event in reversed(new):
        link = correlation_link(links, fleet.log_labels, event)
        rows.append(
            {
                "timestamp": event.timestamp.isoformat(),
                "type": event.type,
                "severity": event.severity,
                "target": event.target,
                "message": event.message,
                "correlation_id": event.correlation_id or "",
                "logs": link.url if link else "",
                "slack": "yes" if event.identity in alerted else "",
            }
        )
    return rows
