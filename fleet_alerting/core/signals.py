"""What one observation says. Sources produce signals; only the engine turns them into incidents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Signal:
    """One check of one thing. `key` identifies the thing across runs (source + identifying labels).

    `since` is when the failure began if the source knows it (Alertmanager's startsAt); otherwise
    the engine takes the first failing observation as the onset.
    """

    key: str
    source: str
    firing: bool
    severity: Severity
    summary: str
    target: str = ""
    since: datetime | None = None
    runbook_url: str | None = None
    remediation: tuple[str, ...] = ()
    correlation_ids: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
