"""Incident keys: `source:name=value,...`, labels sorted, stable across runs."""

from __future__ import annotations

from collections.abc import Mapping


def incident_key(source: str, labels: Mapping[str, str]) -> str:
    return source + ":" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def signal_key(source: str, **labels: str) -> str:
    """`incident_key` with the labels as keyword arguments."""
    return incident_key(source, labels)
