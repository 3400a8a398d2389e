"""Drift between alertmanager.yml and the running configuration (/api/v2/status).
Reports differing key paths and changed routing per alert, never values (they may be secrets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet_alerting.audit.model import AuditInput, Finding

CHECK_ID = "config-drift"
MAX_PATHS = 25


def diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                out.append(sub)
            else:
                out.extend(diff_paths(a[k], b[k], sub))
        return out
    if isinstance(a, list) and isinstance(b, list):
        pairs = enumerate(zip(a, b, strict=False))
        out = [p for i, (x, y) in pairs for p in diff_paths(x, y, f"{path}[{i}]")]
        if len(a) != len(b):
            out.append(f"{path} (length {len(a)} vs {len(b)})")
        return out
    return [] if a == b else [path or "(root)"]


def check(inp: AuditInput) -> list[Finding]:
    if inp.running is None:
        return []
    out = [
        Finding(CHECK_ID, "warning", route_path=p, message=f"file and running config differ at {p}")
        for p in diff_paths(inp.am.raw, inp.running.raw)[:MAX_PATHS]
    ]
    for rule in inp.alert_rules:
        file_rx = inp.am.receivers_for(rule.routing_labels)
        live_rx = inp.running.receivers_for(rule.routing_labels)
        if file_rx != live_rx:
            out.append(Finding(CHECK_ID, "error", rule.name, receiver=",".join(live_rx),
                               message=f"file routes to {','.join(file_rx)}, running config to "
                                       f"{','.join(live_rx)}"))
    return out
