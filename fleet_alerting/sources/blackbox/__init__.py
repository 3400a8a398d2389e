"""Probe the Fleet API and device health endpoints; alert and page on persistent failures"""

from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    __name__, __doc__, "blackbox-probe", "blackbox", lambda c: "blackbox" in c.model_fields_set
)
