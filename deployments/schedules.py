"""Every deployment: which flow, how often, with which parameters. prefect.yaml mirrors this for a
process work pool; a test keeps the two in step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Schedule:
    flow: str  # a name from flows.ENTRYPOINTS
    name: str
    cron: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)  # paths relative to the repo


WATCH = {"config_path": "config/example.yaml"}  # `serve --config` replaces it

SCHEDULES: list[Schedule] = [
    Schedule(
        "blackbox-probe",
        "every-minute",
        "* * * * *",
        "Probe the Fleet API and device health endpoints; alert and page on persistent failures",
        WATCH,
    ),
    Schedule(
        "alertmanager-escalation",
        "every-minute",
        "* * * * *",
        "Page critical Alertmanager alerts that persist past the window; resolve when they clear",
        WATCH,
    ),
    Schedule(
        "fleet-events",
        "every-minute",
        "* * * * *",
        "Read the Fleet API event feed; command.failed and audio.upload errors to Slack",
        WATCH,
    ),
    Schedule(
        "zigbee-probe",
        "every-minute",
        "* * * * *",
        "Zigbee2MQTT coordinators: offline, broker unreachable, permit join open past its window",
        WATCH,
    ),
    Schedule(
        "prometheus-watches",
        "every-minute",
        "* * * * *",
        "Role agents failing or stale, device-failure spikes, open circuit breakers",
        WATCH,
    ),
    Schedule(
        "quarterly-audit",
        "quarterly",
        "0 9 1 1,4,7,10 *",
        "Audit Alertmanager routes against severity expectations and rules against reality",
        {
            "alertmanager_file": "config/audit/alertmanager.yml",
            "rules_glob": "config/audit/rules/*.yml",
            "expectations_file": "config/audit/expectations.yaml",
            "out_dir": "reports",
        },
    ),
]
