"""Durations: one grammar to read them, one way to print them.

The grammar is Prometheus' (`1y2w3d4h5m6s7ms`, or `0`), as Alertmanager and Prometheus configs
write them. Our own config also takes a plain number of seconds and fractional seconds (`1.5s`).
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?\Z"
)
_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
EXPECTED = "expected a duration such as 30s, 5m, 1h30m or a number of seconds"
# timedelta's own limit is ~2.7 million years; anything past a century is a typo, and past the
# limit Python raises OverflowError instead of a message.
MAX_SECONDS = 100 * 365 * 86400
TOO_LONG = "expected a duration of at most 100 years"


def parse_duration(value: object, *, prometheus: bool = False) -> timedelta:
    """`'90s'`, `'5m'`, `'1h30m'`, `'2d'` (or, unless `prometheus`, a number of seconds and
    fractional seconds) → timedelta; ValueError otherwise. `prometheus=True` accepts exactly
    what Prometheus' model.ParseDuration accepts."""
    if not prometheus and isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or abs(value) > MAX_SECONDS:  # NaN, .inf, 1.0e+20
            raise ValueError(TOO_LONG if value == value else EXPECTED)
        return timedelta(seconds=value)
    text = str(value).strip() if not prometheus else str(value)
    if text == "0":
        return timedelta(0)
    match = _DURATION.match(text)
    if not text or match is None or (prometheus and "." in text):
        raise ValueError(f"not a valid duration string: {text!r}" if prometheus else EXPECTED)
    seconds = sum(float(g) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g)
    if prometheus and seconds > (2**63 - 1) / 1e9:  # Go's time.Duration, in nanoseconds
        raise ValueError(f"not a valid duration string: {text!r}")
    if not prometheus and seconds > MAX_SECONDS:
        raise ValueError(TOO_LONG)
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta, *, exact: bool = False) -> str:
    """For people: the two largest units, `7m12s`, `1h05m`, `2d3h`. With `exact`, Prometheus'
    own spelling of the whole value (`1h30m`, `5m`, `0s`), as Alertmanager prints a config."""
    seconds = max(0, int(delta.total_seconds()))
    if exact:
        if seconds == 0:
            return "0s"
        out = ""
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if seconds >= size:
                out += f"{seconds // size}{unit}"
                seconds %= size
        return out
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def seconds_str(seconds: float) -> str:
    """Prometheus' spelling of a number of seconds, as Alertmanager prints its config."""
    return format_duration(timedelta(seconds=seconds), exact=True)
