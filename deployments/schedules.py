"""Every deployment: which flow, how often, with which parameters — and which of them `serve`
runs for a given config. The watches' come from the registry (sources/registry.py); prefect.yaml
mirrors SCHEDULES for a process work pool, and a test keeps the two in step."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_alerting.sources.registry import WATCHES

if TYPE_CHECKING:  # listing the schedules (every CLI start) must not load the config schema
    from fleet_alerting.config import Config


@dataclass(frozen=True)
class Schedule:
    flow: str  # a name from flows.ENTRYPOINTS
    name: str
    cron: str  # the default; a watch's interval comes from the config's `schedule.every`
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)  # paths relative to the config file


WATCH = {"config_path": "."}  # `serve --config` puts the config file's absolute path here
EVERY_MINUTE = "* * * * *"

SCHEDULES: list[Schedule] = [
    *(Schedule(w.name, "scheduled", EVERY_MINUTE, w.description, WATCH) for w in WATCHES),
    Schedule(
        "quarterly-audit",
        "quarterly",
        "0 9 1 1,4,7,10 *",
        "Audit Alertmanager routes against severity expectations and rules against reality",
        {
            "alertmanager_file": "audit/alertmanager.yml",
            "rules_glob": "audit/rules/*.yml",
            "expectations_file": "audit/expectations.yaml",
            "out_dir": "../reports",
        },
    ),
]

# What makes a flow worth serving: the config section it reads (README, "Which watches run").
CONFIGURED: dict[str, tuple[str, Callable[[Config], bool]]] = {
    w.name: (w.section, w.configured) for w in WATCHES
}
AUDIT_MARKER = "alertmanager_file"  # the audit is served when this file exists


@dataclass(frozen=True)
class Planned:
    schedule: Schedule
    parameters: dict[str, Any]
    cron: str | None  # one of cron and every is set
    every: timedelta | None

    @property
    def period(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.every.total_seconds():g}s"


def watch_interval(config: Config, flow: str) -> timedelta:
    """How often `serve` runs a watch: the config's `schedule.every`, else every minute."""
    return config.schedule.every.get(flow, timedelta(minutes=1))  # type: ignore[call-overload]


def timing(every: timedelta) -> tuple[str | None, timedelta | None]:
    """Whole minutes that divide an hour as cron (runs on the minute), anything else as an
    interval."""
    seconds = int(every.total_seconds())
    if seconds % 60 == 0 and 60 % (seconds // 60) == 0:
        minutes = seconds // 60
        return ("* * * * *" if minutes == 1 else f"*/{minutes} * * * *"), None
    return None, every


def plan(config: Config, config_file: Path) -> tuple[list[Planned], list[str]]:
    """The deployments `serve` runs for this config (parameters absolute), and a note for each
    one it leaves out."""
    base = config_file.resolve().parent
    planned, skipped = [], []
    for s in SCHEDULES:
        if s.flow in CONFIGURED:
            section, present = CONFIGURED[s.flow]
            if not present(config):
                skipped.append(f"{s.flow}: not served ({section} is not configured)")
                continue
            cron, interval = timing(watch_interval(config, s.flow))
            parameters = {"config_path": str(config_file.resolve())}
            planned.append(Planned(s, parameters, cron, interval))
            continue
        parameters = {k: os.path.normpath(base / v) for k, v in s.parameters.items()}
        if not Path(parameters[AUDIT_MARKER]).is_file():
            skipped.append(f"{s.flow}: not served (no {parameters[AUDIT_MARKER]})")
            continue
        planned.append(Planned(s, parameters, s.cron, None))
    return planned, skipped
