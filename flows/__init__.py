"""Every flow by name. Entrypoints are strings so listing them imports no Prefect."""

from __future__ import annotations

import importlib
from typing import Any

ENTRYPOINTS: dict[str, str] = {
    "blackbox-probe": "flows.blackbox_probe:blackbox_probe",
    "quarterly-audit": "flows.quarterly_audit:quarterly_audit",
    "alertmanager-escalation": "flows.alertmanager_escalation:alertmanager_escalation",
    "fleet-events": "flows.fleet_events:fleet_events",
    "zigbee-probe": "flows.zigbee_probe:zigbee_probe",
    "prometheus-watches": "flows.prometheus_watches:prometheus_watches",
}


def get_flow(name: str) -> Any:
    module, attribute = ENTRYPOINTS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
