"""Differential test: our routing vs the real `amtool config routes test` (Alertmanager 0.25)."""

from __future__ import annotations

import json
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from fleet_alerting.alertmanager.routing import RoutingConfigError, matching_tree, parse_config
from fleet_alerting.audit import amtool, synth

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(amtool.amtool_path() is None, reason="amtool not installed"),
]

N_CONFIGS = 12
LABEL_SETS_PER_CONFIG = 100


def test_routing_equals_amtool(tmp_path: Path) -> None:
    jobs: list[tuple[str, dict[str, str]]] = []
    ours: list[str] = []
    for seed in range(N_CONFIGS):
        doc = synth.random_config(seed)
        path = tmp_path / f"am{seed}.yml"
        path.write_text(yaml.safe_dump(doc))
        cfg = parse_config(yaml.safe_load(path.read_text()))
        rng = random.Random(10_000 + seed)
        for _ in range(LABEL_SETS_PER_CONFIG):
            labels = synth.random_labels(rng)
            jobs.append((str(path), labels))
            ours.append(",".join(cfg.receivers_for(labels)))
    theirs = amtool.routes_test_many(jobs, workers=2)
    mismatches = [(j, o, t) for j, o, t in zip(jobs, ours, theirs, strict=True) if o != t]
    assert len(jobs) >= 1000
    assert mismatches == []
    # guard against a degenerate generator: several fan-outs and many distinct answers
    assert len(set(theirs)) >= 10
    assert sum("," in t for t in theirs) >= 20


def test_matching_tree_equals_amtool(tmp_path: Path) -> None:
    doc = synth.random_config(3)
    path = tmp_path / "am.yml"
    path.write_text(yaml.safe_dump(doc))
    cfg = parse_config(doc)
    rng = random.Random(7)
    drawn = []
    for _ in range(10):
        labels = synth.random_labels(rng)
        out = subprocess.run(
            [
                "amtool",
                "config",
                "routes",
                "test",
                f"--config.file={path}",
                "--tree",
                *synth.label_args(labels),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        receivers = ",".join(cfg.receivers_for(labels))
        want = f"Matching routes:\n{matching_tree(cfg.route, labels)}\n\n\n{receivers}\n"
        assert out == want
        drawn.append(out)
    assert any("│\u00a0\u00a0 " in out for out in drawn)  # an open level was drawn


N_REGEXES = 200


def _amtool_answer(path: Path, labels: dict[str, str]) -> str:
    """amtool's receivers, or its error line (it exits 1 on a config it refuses)."""
    proc = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={path}", *synth.label_args(labels)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.stdout.strip() if proc.returncode == 0 else "error: " + proc.stderr.strip()


def _one_route(expr: str, use_match_re: bool) -> dict:
    route = {"receiver": "hit"}
    if use_match_re:
        route["match_re"] = {"x": expr}
    else:
        route["matchers"] = ["x=~" + json.dumps(expr, ensure_ascii=False)]
    return {
        "route": {"receiver": "miss", "routes": [route]},
        "receivers": [{"name": "miss"}, {"name": "hit"}],
    }


def test_regex_semantics_equal_amtool(tmp_path: Path) -> None:
    """Generated regexes full of Go/RE2-vs-Python differences (inline flags, \\p classes, POSIX
    classes, \\x{..}, \\Q…\\E, non-ASCII case folding, repetition edge cases, \\Z, \\C, (?<n>)):
    amtool and we accept the same ones and match the same label values."""
    rng = random.Random(2026)
    generated = [synth.random_regex(rng) for _ in range(N_REGEXES)]
    # 1. accepted or refused: one config per regex, one amtool call each
    ours_ok: list[bool] = []
    calls: list[tuple[Path, dict[str, str]]] = []
    for i, (expr, values) in enumerate(generated):
        doc = _one_route(expr, use_match_re=i % 2 == 1)
        path = tmp_path / f"re{i}.yml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        try:
            parse_config(yaml.safe_load(path.read_text()))
            ours_ok.append(True)
        except RoutingConfigError:
            ours_ok.append(False)
        calls.append((path, {"x": values[0]}))
    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(lambda c: _amtool_answer(*c), calls))
    disagree = [
        (expr, ok, t)
        for (expr, _), ok, t in zip(generated, ours_ok, theirs, strict=True)
        if ok == t.startswith("error:")
    ]
    assert disagree == []
    refused = sum(not ok for ok in ours_ok)
    assert 20 <= refused <= N_REGEXES - 60, refused  # the generator exercises both sides

    # 2. matching: every accepted regex is a `continue` route on its own label x<i>, so one
    # amtool call tests every regex against one value each
    valid = [(e, v) for (e, v), ok in zip(generated, ours_ok, strict=True) if ok]
    routes = []
    for i, (expr, _) in enumerate(valid):
        route = {"receiver": f"r{i}", "continue": True}
        if i % 2:
            route["match_re"] = {f"x{i}": expr}
        else:
            route["matchers"] = [f"x{i}=~" + json.dumps(expr, ensure_ascii=False)]
        routes.append(route)
    doc = {
        "route": {"receiver": "none", "routes": routes},
        "receivers": [{"name": "none"}, *({"name": f"r{i}"} for i in range(len(valid)))],
    }
    path = tmp_path / "all.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    cfg = parse_config(yaml.safe_load(path.read_text()))
    rounds = max(len(v) for _, v in valid)
    label_sets = [
        {f"x{i}": values[j % len(values)] for i, (_, values) in enumerate(valid)}
        for j in range(rounds)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(lambda ls: _amtool_answer(path, ls), label_sets))
    hits = 0
    for labels, their in zip(label_sets, theirs, strict=True):
        ours = cfg.receivers_for(labels)
        assert set(ours) == set(their.split(",")), _explain(valid, labels, ours, their)
        hits += len([r for r in ours if r != "none"])
    pairs = len(valid) * rounds
    assert pairs >= 300 and 0.15 * pairs <= hits <= 0.85 * pairs, (hits, pairs)


def _explain(valid: list, labels: dict[str, str], ours: list[str], their: str) -> str:
    diff = set(ours) ^ set(their.split(","))
    rows = [
        f"{valid[int(r[1:])][0]!r} on {labels[f'x{r[1:]}']!r}: "
        f"{'we' if r in ours else 'amtool'} matched"
        for r in sorted(diff)
        if r != "none"
    ]
    return "\n".join(rows)
