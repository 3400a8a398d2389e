"""Every flow by name. Entrypoints are strings so listing them imports no Prefect."""

from __future__ import annotations

import importlib
from typing import Any

ENTRYPOINTS: dict[str, str] = {
    "blackbox-probe": "fleet_alerting.flows.blackbox_probe:blackbox_probe",
    "quarterly-audit": "fleet_alerting.flows.quarterly_audit:quarterly_audit",
    "alertmanager-escalation": (
        "fleet_alerting.flows.alertmanager_escalation:alertmanager_escalation"
    ),
    "fleet-events": "fleet_alerting.flows.fleet_events:fleet_events",
    "zigbee-probe": "fleet_alerting.flows.zigbee_probe:zigbee_probe",
    "prometheus-watches": "fleet_alerting.flows.prometheus_watches:prometheus_watches",
}


def get_flow(name: str) -> Any:
    module, attribute = ENTRYPOINTS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
