from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    name="prometheus-watches",
    section="prometheus.url",
    description="Role agents failing or stale, device-failure spikes, open circuit breakers",
    observer="fleet_alerting.sources.prometheus.watch:observe",
    is_configured=lambda c: c.prometheus.url is not None,
    required="prometheus.url is not set",
)
