"""A watch's firing series made into signals in one pass (`judge._firing_signals`): each signal is
what the documented recipe makes of its series alone — key, target, labels shown, fingerprint,
texts — the first series of a key kept, and a present series told "ok" only when no firing series
names its key values, over random answers with odd labels."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.signals import TEXTS, Signal, digest_bytes
from fleet_alerting.sources.prometheus.judge import (
    Series,
    WatchOutcome,
    active_watches,
    evaluate_watches,
    source_of,
    watch_token,
)

LINKS = LinksConfig(grafana_url="https://grafana.test/", loki_datasource_uid="LOKI1")
BASE = next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")
COMPARED = ("key", "target", "labels", "fingerprint", "severity", "firing")
VALUES = ["pi-1", "pi-2", "pi,3", "pi\\4", "pi\x005", "", "pi-1"]


def watch(key_labels: list[str]) -> WatchConfig:
    return BASE.model_copy(update={"key_labels": key_labels})


def random_labels(rng: random.Random) -> dict[str, str]:
    labels = {}
    if rng.random() < 0.7:
        labels["__name__"] = "role_agent_last_run_success"
    for name in ("host", "instance", "job", "zone"):
        if rng.random() < 0.8:
            labels[name] = rng.choice(VALUES)
    return dict(sorted(labels.items()))  # Prometheus sends them sorted by name


def expected_signal(w: WatchConfig, series: Series) -> dict[str, Any]:
    """What one series alone makes, by the recipe `firing_signal` documents."""
    labels = series.labels
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    named = (
        {k: labels.get(k, "") for k in w.key_labels}
        if w.key_labels
        else {k: v for k, v in labels.items() if k != "__name__"}
    )
    payload = (watch_token(w, LINKS), repr(series.value), shown, labels.get("__name__"))
    target = " / ".join(v for v in named.values() if v) or w.name
    return {
        "key": incident_key(source_of(w), named),
        "target": target,
        "labels": shown,
        "fingerprint": digest_bytes(orjson.dumps(payload)),
        "severity": w.severity,
        "firing": True,
    }


def seen(signal: Signal) -> dict[str, Any]:
    return {name: getattr(signal, name) for name in COMPARED}


@pytest.mark.parametrize("key_labels", [["host"], ["host", "zone"], []])
@pytest.mark.parametrize("seed", range(6))
def test_each_firing_signal_is_its_series_alone(key_labels: list[str], seed: int) -> None:
    rng = random.Random(seed)
    w = watch(key_labels)
    values = [0.0, -0.0, float("nan"), float("inf"), 1.5]
    firing = [Series(random_labels(rng), rng.choice(values)) for _ in range(40)]
    present = [Series(random_labels(rng), 1.0) for _ in range(30)]
    signals = evaluate_watches([WatchOutcome(w, firing, present)], LINKS).signals
    first: dict[str, Series] = {}
    for series in firing:
        first.setdefault(expected_signal(w, series)["key"], series)
    told = [s for s in signals if s.firing and s.source == source_of(w)]
    assert [seen(s) for s in told] == [expected_signal(w, s) for s in first.values()]
    for signal, series in zip(told, first.values(), strict=True):
        alone = evaluate_watches([WatchOutcome(w, [series])], LINKS).signals[0]
        assert {t: getattr(signal, t) for t in TEXTS} == {t: getattr(alone, t) for t in TEXTS}
    if key_labels:
        firing_values = {tuple(s.labels.get(k, "") for k in key_labels) for s in firing}
        absent = f"{source_of(w)}:absent="  # the watch's "metric absent" signal
        ok = {s.key for s in signals if not s.firing and not s.key.startswith(absent)}
        wanted = {
            expected_signal(w, s)["key"]
            for s in present
            if tuple(s.labels.get(k, "") for k in key_labels) not in firing_values
        }
        assert ok == wanted - {expected_signal(w, s)["key"] for s in firing}
