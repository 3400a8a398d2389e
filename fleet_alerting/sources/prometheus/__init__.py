"""Role agents failing or stale, device-failure spikes, open circuit breakers"""

from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    __name__,
    __doc__,
    "prometheus-watches",
    "prometheus.url",
    lambda c: c.prometheus.url is not None,
    required="prometheus.url is not set",
)
