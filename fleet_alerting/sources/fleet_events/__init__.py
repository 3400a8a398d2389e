"""Read the Fleet API event feed; command.failed and audio.upload errors to Slack"""

from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    __name__,
    __doc__,
    "fleet-events",
    "fleet_api",
    lambda c: c.fleet_api is not None,
    required="fleet_api: section missing (url, token)",
)
