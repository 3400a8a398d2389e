"""Seeded synthetic Alertmanager configs, label sets and rules (differential tests, benchmark)."""

from __future__ import annotations

import random
from typing import Any

VOCAB: dict[str, list[str]] = {
    "severity": ["critical", "warning", "info", "page", ""],
    "team": ["a", "b", "ops", "db"],
    "service": ["api", "device", "zigbee", "web-1", "web-22"],
    # non-ASCII values catch regex-class differences (RE2's \d and \w are ASCII-only)
    "instance": ["dev1", "dev-22", "api.example:443", "pi-07", "pi-٠٧", "dév-1"],
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
]


def _value(rng: random.Random, name: str) -> str:
    return rng.choice(VOCAB[name][:-1] if VOCAB[name][-1] == "" else VOCAB[name])


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _matcher_text(rng: random.Random) -> str:
    name = rng.choice(list(VOCAB))
    op = rng.choice(["=", "!=", "=~", "!~"])
    value = rng.choice(REGEXES) if op in ("=~", "!~") else _value(rng, name)
    quoted = rng.random() < 0.6 or "|" in value or "(" in value
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


def label_args(labels: dict[str, str]) -> list[str]:
    return [f"{k}={_quote(v)}" for k, v in labels.items()]


def count_routes(route: dict[str, Any]) -> int:
    return 1 + sum(count_routes(r) for r in route.get("routes") or [])
