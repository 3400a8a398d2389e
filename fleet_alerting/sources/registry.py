"""Every watch, in the order deployments list them. A new watch is one package under sources/
exporting `WATCH`, and one line here: its flow, entry point, schedule and config name follow."""

from __future__ import annotations

from fleet_alerting.sources import alertmanager, blackbox, fleet_events, prometheus, zigbee
from fleet_alerting.sources.watch import Watch

WATCHES: list[Watch] = [
    blackbox.WATCH,
    alertmanager.WATCH,
    fleet_events.WATCH,
    zigbee.WATCH,
    prometheus.WATCH,
]


def flow_attribute(watch: Watch) -> str:
    """The name of the watch's flow in flows/watches.py (an entry point's function)."""
    return watch.name.replace("-", "_")
