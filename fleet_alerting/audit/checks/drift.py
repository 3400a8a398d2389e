"""Drift between alertmanager.yml and the running configuration (/api/v2/status).

The running config comes back re-marshalled (defaults filled in, matchers re-sorted, `24h`
written `1d`, secrets as `<secret>`), so the comparison is semantic: routes, receivers and their
integration kinds, inhibit rules, time intervals, and where each alert rule is routed. Values of
receiver settings are never compared or shown (they may be secrets)."""

from __future__ import annotations

from typing import Any

from fleet_alerting.alertmanager.routing import AlertmanagerYml, Route
from fleet_alerting.audit.model import AuditInput, Finding
from fleet_alerting.core.durations import seconds_str

CHECK_ID = "config-drift"
TITLE = "The running Alertmanager differs from the file"
WHY = "What is reviewed is not what runs: the file's routing is not the routing alerts get."
FIX = "Reload Alertmanager with the reviewed file (`POST /-/reload`), or commit what runs."


def route_facts(r: Route) -> dict[str, Any]:
    o = r.opts
    return {
        "matchers": sorted(str(m) for m in r.matchers),
        "receiver": o.receiver,
        "continue": r.continue_,
        "group_by": "..." if o.group_by_all else sorted(o.group_by),
        "group_wait": seconds_str(o.group_wait),
        "group_interval": seconds_str(o.group_interval),
        "repeat_interval": seconds_str(o.repeat_interval),
        "mute_time_intervals": list(o.mute_time_intervals),
        "active_time_intervals": list(o.active_time_intervals),
    }


def _integrations(rc: dict[str, Any]) -> dict[str, int]:
    return {k: len(v or []) for k, v in rc.items() if k.endswith("_configs") and v}


def _inhibit(am: AlertmanagerYml) -> list[tuple[Any, ...]]:
    return sorted(
        (sorted(map(str, r.source)), sorted(map(str, r.target)), sorted(r.equal))
        for r in am.inhibit_rules
    )


def semantic_diff(file: AlertmanagerYml, live: AlertmanagerYml) -> list[tuple[str, str, str]]:
    """(where, subject, what) describing how the running config differs from the file."""
    out: list[tuple[str, str, str]] = []
    a = {r.id: r for r in file.route.walk()}
    b = {r.id: r for r in live.route.walk()}
    for rid in sorted(set(a) | set(b)):
        if rid not in b:
            out.append((rid, "route", f"route {a[rid].slug()} is not in the running config"))
        elif rid not in a:
            out.append((rid, "route", f"running route {b[rid].slug()} is not in the file"))
        else:
            fa, fb = route_facts(a[rid]), route_facts(b[rid])
            for key in fa:
                if fa[key] != fb[key]:
                    out.append((rid, key, f"{key}: file {fa[key]} vs running {fb[key]}"))
    for name in sorted(set(file.receivers) | set(live.receivers)):
        if name not in live.receivers:
            out.append((f"receiver {name}", "receiver", "receiver is not in the running config"))
        elif name not in file.receivers:
            out.append((f"receiver {name}", "receiver", "running receiver is not in the file"))
        else:
            ia, ib = _integrations(file.receivers[name]), _integrations(live.receivers[name])
            if ia != ib:
                out.append(
                    (f"receiver {name}", "integrations", f"integrations: file {ia} vs running {ib}")
                )
    if _inhibit(file) != _inhibit(live):
        out.append(("inhibit_rules", "inhibit_rules", "inhibit rules differ"))
    if file.time_intervals != live.time_intervals:
        names = sorted(
            n
            for n in set(file.time_intervals) | set(live.time_intervals)
            if file.time_intervals.get(n) != live.time_intervals.get(n)
        )
        what = f"time intervals differ: {', '.join(names)}"
        out.append(("time_intervals", "time_intervals", what))
    return out


def check(inp: AuditInput) -> list[Finding]:
    if inp.running is None:
        return []
    out = [
        Finding(
            CHECK_ID,
            "warning",
            route_path=where,
            message=f"file and running config differ: {what}",
            subject=subject,
        )
        for where, subject, what in semantic_diff(inp.am, inp.running)
    ]
    for rule in inp.alert_rules:
        file_rx = inp.am.receivers_for(rule.routing_labels)
        live_rx = inp.running.receivers_for(rule.routing_labels)
        if file_rx != live_rx:
            out.append(
                Finding(
                    CHECK_ID,
                    "error",
                    rule.name,
                    message=f"file routes to {','.join(file_rx)}, running config to "
                    f"{','.join(live_rx)}",
                )
            )
    return out
