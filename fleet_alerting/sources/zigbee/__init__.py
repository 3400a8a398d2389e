"""Zigbee2MQTT coordinators: offline, broker unreachable, permit join open past its window"""

from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    __name__, __doc__, "zigbee-probe", "zigbee", lambda c: "zigbee" in c.model_fields_set
)
