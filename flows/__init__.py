"""Every flow by name: the watches' (one factory builds them from the registry) and the quarterly
audit. Entrypoints are strings so listing them imports no Prefect."""

from __future__ import annotations

import importlib
from typing import Any

from fleet_alerting.sources.registry import WATCHES, flow_attribute

ENTRYPOINTS: dict[str, str] = {
    w.name: f"fleet_alerting.flows.watches:{flow_attribute(w)}" for w in WATCHES
} | {"quarterly-audit": "fleet_alerting.flows.quarterly_audit:quarterly_audit"}


def get_flow(name: str) -> Any:
    module, attribute = ENTRYPOINTS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
