"""The Fleet API event feed: every new event in the run's table (the UI feed); `command.failed`
and `audio.upload` errors at or above the configured severity to Slack. A cursor in the store
keeps events from being reported twice or skipped across runs."""

from __future__ import annotations

from fleet_alerting.core.clock import utcnow
from fleet_alerting.flows.common import (
    DEFAULT_CONFIG,
    RunFailed,
    Summary,
    count,
    described,
    finish,
    load,
    problem_signals,
    publish,
    store_errors_fail_the_run,
)
from fleet_alerting.sources.fleet_events.judge import (
    API_SOURCE,
    RECORDS_SOURCE,
    correlation_link,
    malformed_signals,
)
from fleet_alerting.tasks.fleet_events import fetch_events, record_new_events
from fleet_alerting.tasks.pipeline import deliver_notifications, record_signals
from fleet_alerting.tasks.runtime import watch_flow


@watch_flow("fleet-events")
@store_errors_fail_the_run
async def fleet_events(config_path: str = DEFAULT_CONFIG) -> Summary:
    config = load(config_path)
    fleet = config.fleet_api
    if fleet is None:
        raise RunFailed(f"{config.source_file}: fleet_api: section missing (url, token)")
    now = utcnow()
    events, skipped, failure = await fetch_events(fleet)
    new, loud, gap = [], [], False
    if failure is None:  # an unreachable API leaves the cursor where it was
        advanced, loud = record_new_events(config, events, now)
        new, gap = advanced.new, advanced.possible_gap
    problems = [failure] if failure else []
    # only an answer may resolve: while the API is down, its malformed-event warnings stay
    readable = {
        API_SOURCE: "Fleet API events readable again",
        RECORDS_SOURCE: "no malformed event of that name in the feed any more",
    }
    evaluation = record_signals(
        config,
        problem_signals(API_SOURCE, problems) + malformed_signals(skipped),
        now,
        vanished_sources={} if failure else readable,
    )
    report = await deliver_notifications(config)
    alerted = {e.id for e in loud}
    rows = []
    for event in reversed(new):  # newest first, as a feed reads
        link = correlation_link(config.links, fleet.log_labels, event)
        rows.append(
            {
                "timestamp": event.timestamp.isoformat(),
                "type": event.type,
                "severity": event.severity,
                "target": event.target,
                "message": event.message,
                "correlation_id": event.correlation_id or "",
                "logs": link.url if link else "",
                "slack": "yes" if event.id in alerted else "",
            }
        )
    await publish("fleet-events", rows, evaluation, report)
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
    seen = described(f"{count(len(new), 'new event')} read", troubles, "none alerting")
    return finish(seen, counters, evaluation, report)
