"""Alert templates: the subset of Prometheus alert templating that summaries and steps need.

{{ $labels.NAME }}, {{ $value }}, {{ $watch }}, optionally piped to humanize, humanizeDuration or
humanizePercentage. Checked at config load, rendered by the sources.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping

NO_VALUE = "<no value>"  # what Prometheus' Go templates print for a missing label

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_EXPRESSION = re.compile(
    r"^\s*\$(?:labels\.(?P<label>[A-Za-z_][A-Za-z0-9_]*)|(?P<var>value|watch))"
    r"\s*(?:\|\s*(?P<func>humanize|humanizeDuration|humanizePercentage)\s*)?$"
)
TEMPLATE_HELP = (
    "use {{ $labels.NAME }}, {{ $value }} or {{ $watch }}, optionally "
    "| humanize, | humanizeDuration or | humanizePercentage"
)


def check_template(template: str) -> None:
    """ValueError naming the first placeholder this renderer does not understand."""
    for match in _PLACEHOLDER.finditer(template):
        if not _EXPRESSION.match(match.group(1)):
            raise ValueError(f"unknown template expression {match.group(0)!r}: {TEMPLATE_HELP}")
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"unbalanced {{{{ or }}}} in template: {TEMPLATE_HELP}")


def render(template: str, labels: Mapping[str, str], value: float | None, watch: str = "") -> str:
    parts = _compiled(template)
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]
    return "".join(
        part if isinstance(part, str) else _evaluate(part, labels, value, watch) for part in parts
    )


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> tuple[str | re.Match[str], ...]:
    """Literal text and parsed placeholders, parsed once per template (a watch renders the same
    templates for every series of a fleet-wide failure)."""
    parts: list[str | re.Match[str]] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[last : match.start()])
        parsed = _EXPRESSION.match(match.group(1))
        parts.append(parsed if parsed else match.group(0))  # invalid: refused at config load
        last = match.end()
    parts.append(template[last:])
    return tuple(p for p in parts if p != "") or ("",)


def _evaluate(
    parsed: re.Match[str], labels: Mapping[str, str], value: float | None, watch: str
) -> str:
    if parsed["label"]:
        return labels.get(parsed["label"], NO_VALUE)
    if parsed["var"] == "watch":
        return watch
    if value is None:
        return NO_VALUE
    func = parsed["func"]
    if func == "humanize":
        return humanize(value)
    if func == "humanizeDuration":
        return humanize_duration(value)
    if func == "humanizePercentage":
        return f"{value * 100:.4g}%"
    return format_value(value)


def format_value(value: float) -> str:
    value = float(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def humanize(value: float) -> str:
    """Prometheus' humanize: SI prefixes, 4 significant digits (1234 → 1.234k, 0.005 → 5m)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.4g}"
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
    if abs(value) < 1:
        prefixes = ["", "m", "u", "n", "p", "f", "a", "z", "y"]
        index = 0
        while abs(value) < 1 and index < len(prefixes) - 1:
            value, index = value * 1000, index + 1
        return f"{value:.4g}{prefixes[index]}"
    index = 0
    while abs(value) >= 1000 and index < len(prefixes) - 1:
        value, index = value / 1000, index + 1
    return f"{value:.4g}{prefixes[index]}"


def humanize_duration(value: float) -> str:
    """Prometheus' humanizeDuration: 1d 2h 3m 4s; below a second in ms/us/ns."""
    if not math.isfinite(value):
        return f"{value:.4g}"
    if value == 0:
        return "0s"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        whole = int(value)
        days, hours = whole // 86400, whole // 3600 % 24
        minutes, seconds = whole // 60 % 60, whole % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{value:.4g}s"
    return sign + humanize(value) + "s"
