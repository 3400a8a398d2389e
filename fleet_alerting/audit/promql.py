"""A small PromQL tokenizer that finds vector selectors (metric names and label matchers).

Not a parser: it only needs to tell metric names from functions, keywords, label lists of
`by`/`without`/`on`/`ignoring`/`group_*`, durations and strings."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<num>0x[0-9a-fA-F]+
        |(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE | re.DOTALL,
)
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}
AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


@dataclass(frozen=True)
class Selector:
    metric: str | None
    matchers: tuple[tuple[str, str, str], ...] = ()

    def text(self) -> str:
        inner = ",".join(f'{n}{op}"{_escape(v)}"' for n, op, v in self.matchers)
        return f"{self.metric or ''}{{{inner}}}" if inner else (self.metric or "{}")

    def label(self, name: str) -> str | None:
        return next((v for n, op, v in self.matchers if n == name and op == "="), None)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unquote(s: str) -> str:
    if s[0] == "`":
        return s[1:-1]
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class PromQLError(ValueError):
    pass


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLError(f"unexpected character {expr[pos]!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, m.group()))
    return tokens


Token = tuple[str, str]
LabelMatcher = tuple[str, str, str]


def _matchers(tokens: list[Token], i: int) -> tuple[tuple[LabelMatcher, ...], int]:
    """Parse `{a="b", c=~"d"}` starting at the `{`; return matchers and the index after `}`."""
    out, i = [], i + 1
    while i < len(tokens) and tokens[i][1] != "}":
        if tokens[i][1] == ",":
            i += 1
            continue
        if i + 2 >= len(tokens) or tokens[i + 2][0] != "str":
            raise PromQLError(f"bad label matcher near {tokens[i][1]!r}")
        out.append((tokens[i][1], tokens[i + 1][1], _unquote(tokens[i + 2][1])))
        i += 3
    return tuple(out), i + 1


def selectors(expr: str) -> list[Selector]:
    tokens = tokenize(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text.lower() in LABEL_LIST_KEYWORDS and nxt == "(":
            i += 2
            while i < len(tokens) and tokens[i][1] != ")":
                i += 1
            i += 1
        elif kind == "ident" and (
            text.lower() in KEYWORDS
            or nxt == "("
            or (text in AGGREGATIONS and nxt.lower() in ("by", "without"))
        ):
            i += 1
        elif kind == "ident":
            if nxt == "{":
                ms, i = _matchers(tokens, i + 1)
                found.append(Selector(text, ms))
            else:
                found.append(Selector(text))
                i += 1
        elif text == "{":
            ms, i = _matchers(tokens, i)
            name = next((v for n, op, v in ms if n == "__name__" and op == "="), None)
            found.append(Selector(name, tuple(m for m in ms if m[0] != "__name__" or m[1] != "=")))
        elif text == "[":
            while i < len(tokens) and tokens[i][1] != "]":
                i += 1
            i += 1
        else:
            i += 1
    return found


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr) if s.metric}
