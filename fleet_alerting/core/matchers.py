"""Alertmanager label matchers: one grammar for the config's escalation rules, the audit's routing
tree and inhibition. `foo="bar"`, `foo=~"a|b"`, `{a="b", c!="d"}`; regexes are Go's
(RE2 syntax, via google-re2), anchored as Alertmanager anchors them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

Labels = Mapping[str, str]


class MatcherError(ValueError):
    """A matcher that Alertmanager would refuse."""


def check_matcher(value: str) -> str:
    """Config validator: the matcher as written, or ValueError saying why it is refused."""
    try:
        parse_matcher(value)
    except MatcherError as exc:
        raise ValueError(
            f'expected an Alertmanager matcher such as severity="critical": {exc}'
        ) from None
    return value


# Go's \s is ASCII-only and its `$` means end of text: spell both out for Python.
_WS = "[\t\n\f\r ]"
_MATCHER_RE = re.compile(
    rf"^{_WS}*([a-zA-Z_:][a-zA-Z0-9_:]*){_WS}*(=~|=|!=|!~){_WS}*(.*?){_WS}*\Z", re.DOTALL
)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
OPS = ("=", "!=", "=~", "!~")


class GoRegexError(ValueError):
    """A regular expression Go's regexp package (and so Alertmanager) refuses."""


def _re2_options() -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # RE2 would print every refused expression to stderr
    opts.never_capture = True  # only "does it match" is asked: groups need not be tracked
    return opts


_RE2_OPTIONS = _re2_options()


def _go_only_refusals(expr: str) -> None:
    """The few things RE2 accepts and Go's regexp (Alertmanager 0.25) refuses: `\\C` (any byte)
    and `(?<name>…)` (Go accepts only `(?P<name>…)` before 1.22). Escapes, `\\Q…\\E` and
    character classes are skipped exactly as the parser reads them."""
    i, n, in_class = 0, len(expr), False
    while i < n:
        ch = expr[i]
        if ch == "\\" and i + 1 < n:
            nxt = expr[i + 1]
            if nxt == "C":
                raise GoRegexError("invalid escape sequence: `\\C`")
            if nxt == "Q" and not in_class:
                end = expr.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if in_class:
            if expr.startswith("[:", i):
                end = expr.find(":]", i + 2)
                if end >= 0:
                    i = end + 2
                    continue
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            i += 1
            if i < n and expr[i] == "^":
                i += 1
            if i < n and expr[i] == "]":  # a leading `]` is a literal
                i += 1
            continue
        elif expr.startswith("(?<", i):
            raise GoRegexError("invalid or unsupported Perl syntax: `(?<`")
        i += 1


class GoRegex:
    """A compiled matcher expression: `matches(value)` as Alertmanager's MatchString answers.

    Calls RE2's match directly (the google-re2 wrapper's `search` builds match objects and costs
    ~20 µs; this ~3 µs) and remembers answers per label value: the same few values are matched
    over and over when a tree routes thousands of alerts."""

    __slots__ = ("_cache", "_match", "pattern")
    CACHE_SIZE = 4096

    def __init__(self, compiled: Any) -> None:
        self.pattern = compiled
        raw = getattr(compiled, "_regexp", None)
        anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
        if raw is not None and anchor is not None:
            match = raw.Match

            def low(value: str) -> bool:
                b = value.encode("utf-8")
                return bool(match(anchor, b, 0, len(b))[0][0] != -1)

            self._match = low
        else:  # a future wrapper without these internals: the public, slower call
            self._match = lambda value: compiled.search(value) is not None
        self._cache: dict[str, bool] = {}

    def matches(self, value: str) -> bool:
        hit = self._cache.get(value)
        if hit is None:
            hit = self._match(value)
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[value] = hit
        return hit


def compile_go_regex(expr: str) -> GoRegex:
    """Compile a matcher's expression as Alertmanager does: Go's regexp (RE2 syntax, UTF-8,
    ASCII `\\d\\w\\s\\b`, Unicode classes and case folding), anchored as `^(?:expr)$` and
    matched with MatchString, so `(?i)a|b`, `\\pL`, `\\Q…\\E` or `[[:alpha:]]` mean what they
    mean to amtool, and `\\Z` or `a**` are refused as amtool refuses them."""
    _go_only_refusals(expr)
    try:
        return GoRegex(re2.compile("^(?:" + expr + ")$", _RE2_OPTIONS))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise GoRegexError(str(detail)) from None


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    pattern: GoRegex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def new(cls, name: str, op: str, value: str) -> Matcher:
        if op not in OPS:
            raise MatcherError(f"unknown match type {op!r}")
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = compile_go_regex(value)
            except GoRegexError as exc:
                raise MatcherError(f"invalid regular expression {value!r}: {exc}") from exc
        return cls(name, op, value, pattern)

    def matches(self, labels: Labels) -> bool:
        # A missing label has the empty value, exactly as in model.LabelSet lookups.
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        assert self.pattern is not None
        hit = self.pattern.matches(v)
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(s: str) -> Matcher:
    """One matcher, e.g. `foo=~"a|b"` or `foo = bar`; OpenMetrics escaping in quoted values."""
    m = _MATCHER_RE.match(s)
    if m is None:
        raise MatcherError(f"bad matcher format: {s}")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    expect_trailing_quote = raw.startswith('"')
    if expect_trailing_quote:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in '"\\':
                out.append(ch)
            else:
                out.append("\\" + ch)
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if not expect_trailing_quote or i < len(raw) - 1:
                raise MatcherError(f"matcher value contains unescaped double quote: {m.group(3)}")
            expect_trailing_quote = False
        else:
            out.append(ch)
    if expect_trailing_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {m.group(3)}")
    return Matcher.new(name, op, "".join(out))


def parse_matchers(s: str) -> list[Matcher]:
    """Comma-separated matchers with optional braces: `{a="b", c=~"d"}` or `a=b,c!=d`."""
    s = s.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for ch in s:
        if ch == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return [parse_matcher(t) for t in tokens]


def sort_key(m: Matcher) -> tuple[str, str, int]:
    return (m.name, m.value, OPS.index(m.op))


def matchers_str(ms: Sequence[Matcher]) -> str:
    return "{" + ",".join(str(m) for m in ms) + "}"
