"""Routing matrix (alert × receiver) and escalation matrix (severity → receivers, timers)."""

from __future__ import annotations

import pandas as pd

from fleet_alerting.alertmanager.routing import AlertmanagerYml
from fleet_alerting.audit.model import Expectations, Rule
from fleet_alerting.core.durations import seconds_str


def alert_label(rule: Rule) -> str:
    sev = rule.labels.get("severity")
    return f"{rule.name} [{sev}]" if sev else f"{rule.name} [no severity]"


def routing_matrix(am: AlertmanagerYml, rules: list[Rule]) -> pd.DataFrame:
    """How many notifications each alert rule sends to each receiver (2 = a continue chain
    that notifies twice)."""
    rows: dict[str, dict[str, int]] = {}
    for rule in rules:
        if rule.kind != "alert":
            continue
        counts = rows.setdefault(alert_label(rule), dict.fromkeys(am.receivers, 0))
        for receiver in am.receivers_for(rule.routing_labels):
            counts[receiver] = max(counts[receiver], 0) + 1
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(am.receivers))
    df.index.name = "alert"
    return df.fillna(0).astype(int)


def escalation_matrix(
    am: AlertmanagerYml, rules: list[Rule], expectations: Expectations
) -> pd.DataFrame:
    """Per severity and receiver: the route taken, whether it pages, and its timers."""
    rows: dict[tuple[str, str, str], dict[str, object]] = {}
    for rule in rules:
        if rule.kind != "alert":
            continue
        sev = rule.labels.get("severity", "(none)")
        for route in am.routes_for(rule.routing_labels):
            o = route.opts
            key = (sev, o.receiver, route.id)
            row = rows.setdefault(
                key,
                {
                    "severity": sev,
                    "receiver": o.receiver,
                    "route": route.id,
                    "pages": o.receiver in expectations.paging_receivers,
                    "group_by": "..." if o.group_by_all else ",".join(sorted(o.group_by)),
                    "group_wait": seconds_str(o.group_wait),
                    "group_interval": seconds_str(o.group_interval),
                    "repeat_interval": seconds_str(o.repeat_interval),
                    "alerts": [],
                },
            )
            if rule.name not in row["alerts"]:  # type: ignore[operator]
                row["alerts"].append(rule.name)  # type: ignore[union-attr]
    cols = [
        "severity",
        "receiver",
        "route",
        "pages",
        "group_by",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "alerts",
    ]
    df = pd.DataFrame(list(rows.values()), columns=cols)
    if not df.empty:
        df["alerts"] = df["alerts"].map(", ".join)
        df = df.sort_values(["severity", "route"], kind="stable").reset_index(drop=True)
    return df
