"""How every surface (CLI, Slack, MCP) says that a name matched nothing, in one style:
`No incident "nosuch". Did you mean: 3kq7za blackbox:url=…?`"""

from __future__ import annotations

from collections.abc import Sequence


def no_such(kind: str, typed: str, *, meant: Sequence[str] = (), hint: str = "") -> str:
    """`kind` is what was looked for ("incident"), `typed` what the operator gave; `meant` the
    close names to suggest, else `hint` (a sentence: where to list them)."""
    said = f'No {kind} "{typed}".'
    if meant:
        return f"{said} Did you mean: {', '.join(meant)}?"
    return f"{said} {hint}" if hint else said
