"""Reading the YAML config: every problem as `file:line: key.path: what was expected`, never the
value (an inline secret must not reach a terminal or a log)."""

from __future__ import annotations

import difflib
import functools
import os
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fleet_alerting.config.schema import Config
from fleet_alerting.config.secrets import read_small_file
from fleet_alerting.core.channels import DESTINATION_PATTERN, Channel

# A config is read in time linear in its size: an alias ("billion laughs") may not make the
# document much bigger than it is written, nor may nesting run deep (each level is a recursion).
MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 100
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a config is kilobytes; targets in bulk come from file_sd


class _Refused(yaml.MarkedYAMLError):
    def __init__(self, problem: str, mark: yaml.Mark | None):
        super().__init__(problem=problem, problem_mark=mark)


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's plain numbers: `1:30` (base 60 in YAML 1.1, 90), `0x10`,
    `017` (octal) and `1_000` stay strings, which a number or a duration then refuses, rather than
    surprising numbers. Counts nesting depth and the nodes every alias stands for."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float"))]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.aliases: list[tuple[yaml.Node, yaml.Mark]] = []

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if node is not None:
                self.aliases.append((node, mark))
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]{0,29})$"), list("-+0123456789")
)
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def compose(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node graph and its Python value, alias expansion bounded."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _bound_aliases(loader.aliases)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _bound_aliases(aliases: list[tuple[yaml.Node, yaml.Mark]]) -> None:
    """Refuse at the alias that makes the expanded document more than MAX_ALIAS_NODES bigger
    than it is written. Sizes are counted once per node, so this is linear too."""
    sizes: dict[int, int] = {}
    added = 0
    for node, mark in aliases:
        added += _expanded_size(node, sizes)
        if added > MAX_ALIAS_NODES:
            raise _Refused(
                f"aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)", mark
            )


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    if id(node) in sizes:
        return sizes[id(node)]
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = min(size, MAX_ALIAS_NODES + 1)
    return sizes[id(node)]


CONFIG_ENV = "FLEET_ALERTING_CONFIG"
DEFAULT_CONFIG = "config/example.yaml"


def find_config(
    given: str | None, environ: Mapping[str, str] = os.environ
) -> tuple[str, str | None]:
    """The config file a command reads, and where that choice came from when it was not given:
    `--config`, else $FLEET_ALERTING_CONFIG, else config/example.yaml (from the working
    directory). No file is looked for anywhere else: what is used is always named."""
    if given:
        return given, None
    named = environ.get(CONFIG_ENV, "").strip()
    if named:
        return named, f"from {CONFIG_ENV}"
    return DEFAULT_CONFIG, f"the default: no --config, {CONFIG_ENV} not set"


class ConfigError(Exception):
    """Every problem of one config file, one per line: `file:line: key.path: what was expected`."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = read_small_file(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(path, [f"{path}: cannot read config: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            path, [f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"]
        ) from None
    try:
        node, data = compose(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            path,
            [
                f"{path}:{line}: malformed YAML: a control character (#x{exc.character:04x}) "
                "YAML does not allow; remove it"
            ],
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(path, [f"{where}: malformed YAML: {problem}"]) from None
    duplicates = list(_duplicate_keys(path, node, "", set()))
    if duplicates:
        raise ConfigError(path, duplicates)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"{path}:1: expected a mapping of sections at the top level"])
    lines = _Lines(node)
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(path, [_describe(path, lines, err) for err in exc.errors()]) from None
    problems = [
        f"{path}:{lines.of(list(loc))}: {key_path(list(loc))}: {message}"
        for loc, message in config.channel_problems()
    ]
    if problems:
        raise ConfigError(path, problems)
    return config.model_copy(update={"source_file": path})


def _duplicate_keys(
    path: Path, node: yaml.Node | None, where: str, seen_nodes: set[int]
) -> Iterator[str]:
    """A key given twice in one mapping: YAML loaders keep the last silently; we refuse.
    A node an alias repeats is looked at once."""
    if node is None or id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            here = f"{where}.{name}" if where else name
            if name in seen:
                yield f"{path}:{key.start_mark.line + 1}: {here}: duplicate key (given twice)"
            seen.add(name)
            yield from _duplicate_keys(path, value, here, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(path, item, f"{where}[{i}]", seen_nodes)


def locate(path: Path, loc: Sequence[str | int]) -> str:
    """`file:line: key.path` for a key path of a config file that loaded (for later checks)."""
    try:
        stat = path.stat()
        lines = _lines_of_file(path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        lines = _Lines(None)
    return f"{path}:{lines.of(list(loc))}: {key_path(loc) or '(top level)'}"


@functools.lru_cache(maxsize=4)
def _lines_of_file(path: Path, _mtime_ns: int, _size: int) -> _Lines:
    """One parse per file version, however many findings ask for a line."""
    try:
        node, _data = compose(read_small_file(path, MAX_CONFIG_BYTES).decode())
    except (OSError, ValueError, yaml.YAMLError):
        node = None
    return _Lines(node)


def key_path(loc: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _describe(path: Path, lines: _Lines, error: Any) -> str:
    loc = [part for part in error["loc"] if not _is_pydantic_branch(part)]
    line = lines.of(loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(str(loc[-1]), _keys_at(Config, loc[:-1]))
    elif _is_channel_pattern(error):
        message = f"unknown channel {error['input']!r} ({KNOWN_CHANNELS})"
        message += _did_you_mean(error["input"], [str(c) for c in Channel])
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{path}:{line}: {key_path(loc) or '(top level)'}: {message}"


KNOWN_CHANNELS = "known: slack, slack_mirror, pagerduty, oncall, or pagerduty_NAME / oncall_NAME"


def _is_channel_pattern(error: Any) -> bool:
    pattern = (error.get("ctx") or {}).get("pattern")
    return error["type"] == "string_pattern_mismatch" and pattern == DESTINATION_PATTERN


def _did_you_mean(typed: object, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(typed), known, n=1) if isinstance(typed, str) else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _keys_at(kind: Any, loc: Sequence[str | int]) -> list[str]:
    """The keys the model at `loc` (below the model `kind`) accepts, [] if none is found."""
    if not loc:
        fields = getattr(kind, "model_fields", None)
        return list(fields) if isinstance(fields, dict) else []
    part, rest = loc[0], loc[1:]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
        field = kind.model_fields.get(part)
        return _keys_at(field.annotation, rest) if field else []
    if origin in (list, tuple, Sequence) and isinstance(part, int) and args:
        return _keys_at(args[0], rest)
    if origin in (dict, Mapping) and len(args) == 2:
        return _keys_at(args[1], rest)
    return next((keys for arg in args if (keys := _keys_at(arg, loc))), [])


def _is_pydantic_branch(part: object) -> bool:
    # Unions add loc entries such as 'function-after[...]' or 'FileSecret'; they are not keys.
    return isinstance(part, str) and (
        "[" in part or part in {"FileSecret", "SecretRef", "timedelta", "none"}
    )


class _Lines:
    """Line numbers of key paths; each mapping's keys are indexed once, so looking up the lines
    of many errors stays linear in the size of the file."""

    def __init__(self, root: yaml.Node | None):
        self.root = root
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def of(self, loc: list[Any]) -> int:
        """Line (1-based) of the deepest YAML node along the key path."""
        node = self.root
        line = node.start_mark.line + 1 if node else 1
        for part in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                pair = self._index(node).get(str(part))
                child = pair[1] if pair else None
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                child = node.value[part] if 0 <= part < len(node.value) else None
            if child is None:
                break
            node, line = child, child.start_mark.line + 1
        return line

    def _index(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if id(node) not in self._keys:
            index: dict[str, tuple[yaml.Node, yaml.Node]] = {}
            for key, value in node.value:
                index.setdefault(str(key.value), (key, value))
            self._keys[id(node)] = index
        return self._keys[id(node)]
