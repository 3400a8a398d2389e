from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    name="blackbox-probe",
    section="blackbox",
    description=(
        "Probe the Fleet API and device health endpoints; alert and page on persistent failures"
    ),
    observer="fleet_alerting.sources.blackbox.watch:observe",
    is_configured=lambda c: "blackbox" in c.model_fields_set,
)
