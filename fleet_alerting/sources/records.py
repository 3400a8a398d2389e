"""Record-by-record parsing of a source's answer: what was wrong with one record, said safely.

Each source validates its answer record by record against pydantic models of the documented shape;
a record that does not fit becomes a `Malformed` (the record's identity, if it has one, and what was
wrong), never an exception that loses the well-formed records beside it. The text names fields and
expectations only, never the record's values, so a secret inside a bad record cannot leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.signals import Severity, Signal


@dataclass(frozen=True)
class Malformed:
    """One record of an answer that does not have the documented shape."""

    identity: str  # what names the record (labels, fingerprint, id), else its position
    why: str  # which fields were wrong and how (no values)
    labels: dict[str, str] = field(default_factory=dict)  # the record's labels, when readable

    def __str__(self) -> str:
        return f"{self.identity}: {self.why}"


def why(exc: ValidationError, limit: int = 3) -> str:
    """`field.path: what was expected` for the first `limit` errors, without the input values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def problem_signals(source: str, problems: Sequence[str]) -> list[Signal]:
    """A broken input (unreadable targets file, garbage payload) as a warning of its own, so an
    operator hears of it while everything else keeps being checked."""
    return [
        Signal(
            key=signal_key(source, problem=problem.split(":")[0]),
            source=source,
            firing=True,
            severity=Severity.warning,
            summary=problem,
        )
        for problem in problems
    ]


def malformed_signal(
    source: str, kind: str, bad: Malformed, summary: str, target: str, remediation: str
) -> Signal:
    """A warning for one malformed record, named by its `kind` ("alert", "event") and identity;
    the well-formed records beside it go on as usual."""
    return Signal(
        key=signal_key(source, **{kind: bad.identity}),
        source=source,
        firing=True,
        severity=Severity.warning,
        summary=summary,
        target=target,
        remediation=(remediation,),
        labels={kind: bad.identity},
    )


def text_only(value: Any) -> Any:
    """A value the standard `json` module decoded, with every lone surrogate in its strings (a
    `"\\ud800"` it reads, which no UTF-8 store can write) replaced by U+FFFD: one odd string in
    an answer must not stop the store that records every other."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {text_only(k): text_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [text_only(v) for v in value]
    return value
