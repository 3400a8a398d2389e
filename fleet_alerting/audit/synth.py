"""Seeded synthetic Alertmanager configs, label sets and rules (differential tests, benchmark)."""

from __future__ import annotations

import random
from typing import Any

VOCAB: dict[str, list[str]] = {
    "severity": ["critical", "warning", "info", "page", ""],
    "team": ["a", "b", "ops", "db"],
    "service": ["api", "device", "zigbee", "web-1", "web-22", "WatchDog", "Deadmansswitch"],
    # non-ASCII values catch regex-class differences (RE2's \d and \w are ASCII-only)
    "instance": ["dev1", "dev-22", "api.example:443", "pi-07", "pi-٠٧", "dév-1", "DÉV-1"],
    "env": ["prod", "staging", "dev"],
    "job": ["fleet-api", "blackbox", "node"],
}
REGEXES = [
    "crit.*",
    "web-[0-9]+",
    "a|b",
    "dev.*",
    ".*",
    ".+",
    "(prod|staging)",
    r"api\..*",
    "pi-0[0-9]",
    r"pi-\d+",
    r"\w+-\d+",
    "d.v-1",
    # Go/RE2 constructs that Python's re refuses or reads differently
    "(?i)watchdog|deadmansswitch",
    r"\pL+-\d+",
    r"(?i:DÉV)-1",
    r"[[:alpha:]]+",
    r"\Qapi.example\E:443",
    r"\x{64}ev.*",
    "(?U)de.+",
    "pi-0{,3}",
]


def _value(rng: random.Random, name: str) -> str:
    return rng.choice(VOCAB[name][:-1] if VOCAB[name][-1] == "" else VOCAB[name])


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _matcher_text(rng: random.Random) -> str:
    name = rng.choice(list(VOCAB))
    op = rng.choice(["=", "!=", "=~", "!~"])
    value = rng.choice(REGEXES) if op in ("=~", "!~") else _value(rng, name)
    quoted = rng.random() < 0.6 or any(c in value for c in "|(,{")
    space = " " if rng.random() < 0.2 else ""
    return f"{name}{space}{op}{space}{_quote(value) if quoted else value}"


def _matchers(rng: random.Random) -> dict[str, Any]:
    style = rng.random()
    if style < 0.2:
        return {"match": {n: _value(rng, n) for n in rng.sample(list(VOCAB), rng.randint(1, 2))}}
    if style < 0.35:
        return {"match_re": {n: rng.choice(REGEXES) for n in rng.sample(list(VOCAB), 1)}}
    texts = [_matcher_text(rng) for _ in range(rng.randint(1, 3))]
    if len(texts) > 1 and rng.random() < 0.5:
        joined = ", ".join(texts)
        return {"matchers": ["{" + joined + "}" if rng.random() < 0.5 else joined]}
    return {"matchers": texts}


def random_route(rng: random.Random, receivers: list[str], depth: int, max_children: int) -> dict:
    route: dict[str, Any] = _matchers(rng)
    if rng.random() < 0.6:
        route["receiver"] = rng.choice(receivers)
    if rng.random() < 0.3:
        route["continue"] = True
    if depth > 0 and rng.random() < 0.5:
        route["routes"] = [
            random_route(rng, receivers, depth - 1, max_children)
            for _ in range(rng.randint(1, max_children))
        ]
    return route


def random_config(seed: int, depth: int = 3, max_children: int = 4) -> dict[str, Any]:
    rng = random.Random(seed)
    receivers = [f"r{i}" for i in range(6)]
    return {
        "route": {
            "receiver": "r0",
            "group_by": ["alertname"],
            "routes": [
                random_route(rng, receivers, depth - 1, max_children)
                for _ in range(rng.randint(2, max_children + 1))
            ],
        },
        "receivers": [{"name": r} for r in receivers],
    }


def sized_config(seed: int, n_routes: int) -> dict[str, Any]:
    """A tree of about `n_routes` routes: teams × services × severities with regex and continue."""
    rng = random.Random(seed)
    receivers = [f"r{i}" for i in range(20)]
    top: list[dict[str, Any]] = []
    count = 0
    while count < n_routes:
        team = {**_matchers(rng), "receiver": rng.choice(receivers), "routes": []}
        count += 1
        for _ in range(rng.randint(3, 9)):
            if count >= n_routes:
                break
            child = random_route(rng, receivers, 1, 3)
            count += 1 + len(child.get("routes", []))
            team["routes"].append(child)
        top.append(team)
    return {
        "route": {"receiver": "r0", "group_by": ["alertname"], "routes": top},
        "receivers": [{"name": r} for r in receivers],
    }


def random_labels(rng: random.Random) -> dict[str, str]:
    labels = {"alertname": f"Alert{rng.randint(0, 50)}"}
    for name in VOCAB:
        if rng.random() < 0.7:
            labels[name] = rng.choice(VOCAB[name])
    return {k: v for k, v in labels.items() if v != ""}


# --- regexes for the RE2-vs-Python differential test -----------------------------------------

# (pattern, texts it matches): Unicode classes, POSIX classes, escapes, literals that fold.
_ATOMS: list[tuple[str, list[str]]] = [
    ("a", ["a"]),
    ("k", ["k", "K", "\u212a"]),
    ("č", ["č", "Č"]),
    ("ß", ["ß", "ẞ", "SS"]),
    ("σ", ["σ", "Σ", "ς"]),
    (".", ["x", "\n", "é"]),
    (r"\pL", ["č", "a", "1"]),
    (r"\PL", ["1", "a"]),
    (r"\p{Greek}", ["α", "a"]),
    (r"\pN", ["٧", "7"]),
    (r"\d", ["7", "٧"]),
    (r"\w", ["_", "é"]),
    (r"\s", [" ", "\u00a0"]),
    ("[[:alpha:]]", ["a", "č"]),
    ("[[:^digit:]]", ["a", "1"]),
    ("[[:word:]]", ["_", "-"]),
    ("[^a]", ["b", "a", "\n"]),
    (r"\x{41}", ["A", "a"]),
    (r"\x41", ["A"]),
    (r"\Qa.b\E", ["a.b", "axb"]),
    (r"\Q(?<\E", ["(?<"]),
    (r"\z", [""]),
    (r"\b", [""]),
    ("$", [""]),
    ("^", [""]),
    ("watchdog", ["watchdog", "WatchDog"]),
    # refused by Go (and so by amtool), some accepted by Python's re or by RE2
    (r"\Z", [""]),
    (r"\C", ["a"]),
    (r"\e", ["\x1b"]),
    ("(?<n>a)", ["a"]),
    ("(?P<n>a)", ["a"]),
    ("[[:foo:]]", ["a"]),
]
_QUANTIFIERS = ["", "", "", "", "*", "+", "?", "{2}", "{,3}", "{1,}", "*?", "+?"] * 3 + [
    "{2,1}",
    "**",
    "{1001}",
]
_FLAGS = ["", "", "(?i)", "(?s)", "(?U)", "(?-s)", "(?m)", "(?is)", "(?i:", "(?s:", "(?x)"]


def random_regex(rng: random.Random) -> tuple[str, list[str]]:
    """A random expression mixing the constructs where Go's regexp and Python's re differ,
    and label values that may or may not match it (examples of each part, recombined)."""
    branches: list[tuple[str, list[str]]] = []
    for _ in range(rng.choice([1, 1, 2])):
        parts, texts = [], [""]
        for _ in range(rng.randint(1, 3)):
            atom, examples = rng.choice(_ATOMS)
            q = rng.choice(_QUANTIFIERS)
            parts.append(atom + q)
            reps = 2 if q in ("{2}", "+", "{1,}") and rng.random() < 0.5 else 1
            reps = 0 if q in ("*", "?", "{,3}", "*?") and rng.random() < 0.3 else reps
            texts = [t + rng.choice(examples) * reps for t in texts for _ in range(2)][:4]
        flag = rng.choice(_FLAGS)
        body = "".join(parts)
        branches.append((flag + body + (")" if flag.endswith(":") else ""), texts))
    expr = "|".join(b for b, _ in branches)
    values = sorted({t for _, ts in branches for t in ts} | {rng.choice(["", "a", "A", "x"])})
    return expr, values


def label_args(labels: dict[str, str]) -> list[str]:
    return [f"{k}={_quote(v)}" for k, v in labels.items()]


def count_routes(route: dict[str, Any]) -> int:
    return 1 + sum(count_routes(r) for r in route.get("routes") or [])


# --- ALERTS history (noise statistics tests and benchmark) ------------------------------------


def alert_history(
    alerts: list[dict[str, Any]], start: float, end: float, step: float = 60.0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Raw `ALERTS{alertstate="firing"}` and `ALERTS_FOR_STATE` series as the Prometheus API
    returns them: each alert {alert, severity, fires, minutes, pending_minutes?, labels?,
    offset_minutes?} fires `fires` times for `minutes`, spread evenly over [start, end)."""
    firing, for_state = [], []
    for a in alerts:
        labels = {"alertname": a["alert"], "severity": a.get("severity", ""), **a.get("labels", {})}
        labels = {k: v for k, v in labels.items() if v != ""}
        fires, minutes = int(a["fires"]), float(a["minutes"])
        if fires == 0:
            continue
        spacing = (end - start) / fires
        pending = float(a.get("pending_minutes", 0)) * 60
        values, active = [], []
        for i in range(fires):
            t0 = start + i * spacing + float(a.get("offset_minutes", 0)) * 60
            t0 -= t0 % step
            n = max(1, int(minutes * 60 // step))
            for k in range(n):
                t = t0 + k * step
                if t >= end:
                    break
                values.append([t, "1"])
                active.append([t, str(t0 - pending)])
        firing.append(
            {"metric": {"__name__": "ALERTS", "alertstate": "firing", **labels}, "values": values}
        )
        for_state.append({"metric": {"__name__": "ALERTS_FOR_STATE", **labels}, "values": active})
    return firing, for_state


def openmetrics(series: list[dict[str, Any]]) -> str:
    """The series as an OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`."""
    lines: list[str] = []
    families: dict[str, list[dict[str, Any]]] = {}
    for s in series:
        families.setdefault(s["metric"]["__name__"], []).append(s)
    for name, members in families.items():
        lines.append(f"# TYPE {name} gauge")
        for s in members:
            labels = ",".join(
                f'{k}="{v}"' for k, v in sorted(s["metric"].items()) if k != "__name__"
            )
            lines += [f"{name}{{{labels}}} {v} {t:.0f}" for t, v in s["values"]]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
