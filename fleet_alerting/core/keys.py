"""Incident keys: `source:name=value,...`, labels sorted, stable across runs."""

from __future__ import annotations

from collections.abc import Mapping

NUL, REPLACEMENT = "\x00", "\ufffd"


def incident_key(source: str, labels: Mapping[str, str]) -> str:
    return stored_key(
        source + ":" + ",".join(f"{k}={key_value(v)}" for k, v in sorted(labels.items()))
    )


def signal_key(source: str, **labels: str) -> str:
    """`incident_key` with the labels as keyword arguments."""
    return incident_key(source, labels)


def key_value(value: str) -> str:
    """A label value as a key spells it: `\\` and `,` escaped, so that no two label sets share a
    key (`{a="x,b=y"}` and `{a="x", b="y"}` would both be `a=x,b=y`). A label's name holds no
    `=` or `,`, so a key reads back one way. Values without either are spelled as they are."""
    if "," not in value and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace(",", "\\,")


def stored_key(key: str) -> str:
    """`key` as the store can keep it and read it back: a NUL (a label scraped from outside)
    becomes U+FFFD, as in the stored record (PostgreSQL refuses NUL in text). The engine must
    compare the key it will read back, or the incident is new on every run."""
    return key.replace(NUL, REPLACEMENT) if NUL in key else key
