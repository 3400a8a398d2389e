"""Every watch: its name (its flow's, its deployment's, its key in `schedule.every`) and the
package under fleet_alerting/sources/ that implements it, in the order deployments list them.
The one list: a new watch is one package exporting `WATCH` and one line here. It sits this low
so the config can name the watches without importing them (sources/registry.py loads them), and
listing them (every CLI start) loads nothing else."""

from __future__ import annotations

WATCH_PACKAGES: dict[str, str] = {
    "blackbox-probe": "blackbox",
    "alertmanager-escalation": "alertmanager",
    "fleet-events": "fleet_events",
    "zigbee-probe": "zigbee",
    "prometheus-watches": "prometheus",
}
