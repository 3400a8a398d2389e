from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    name="fleet-events",
    section="fleet_api",
    description="Read the Fleet API event feed; command.failed and audio.upload errors to Slack",
    observer="fleet_alerting.sources.fleet_events.watch:observe",
    is_configured=lambda c: c.fleet_api is not None,
    required="fleet_api: section missing (url, token)",
)
