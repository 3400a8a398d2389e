"""How things are said in one style everywhere: that a name matched nothing (every surface:
`No incident "nosuch". Did you mean: 3kq7za blackbox:url=…?`), and how run sentences count and
list things (`3 targets probed, 1 failing (api)`)."""

from __future__ import annotations

from collections.abc import Sequence


def no_such(kind: str, typed: str, *, meant: Sequence[str] = (), hint: str = "") -> str:
    """`kind` is what was looked for ("incident"), `typed` what the operator gave; `meant` the
    close names to suggest, else `hint` (a sentence: where to list them)."""
    said = f'No {kind} "{typed}".'
    if meant:
        return f"{said} Did you mean: {', '.join(meant)}?"
    return f"{said} {hint}" if hint else said


def count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def listed(names: Sequence[str], most: int = 3) -> str:
    more = f", and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def described(whole: str, problems: Sequence[str], fine: str) -> str:
    """`3 targets probed, all healthy` or `3 targets probed, 1 failing (api)`; empty problems
    are left out."""
    said = [p for p in problems if p]
    return f"{whole}, {', '.join(said) if said else fine}"
