from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    name="zigbee-probe",
    section="zigbee",
    description=(
        "Zigbee2MQTT coordinators: offline, broker unreachable, permit join open past its window"
    ),
    observer="fleet_alerting.sources.zigbee.watch:observe",
    is_configured=lambda c: "zigbee" in c.model_fields_set,
)
