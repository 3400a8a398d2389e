"""Reading the YAML config: every problem as `file:line: key.path: what was expected`, never the
value (an inline secret must not reach a terminal or a log)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleet_alerting.config.schema import Config

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
        raw = path.read_bytes()
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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(path, [f"{where}: malformed YAML: {problem}"]) from None
    duplicates = list(_duplicate_keys(path, node, ""))
    if duplicates:
        raise ConfigError(path, duplicates)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"{path}:1: expected a mapping of sections at the top level"])
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(path, [_describe(path, node, err) for err in exc.errors()]) from None
    problems = [
        f"{path}:{_line_of(node, list(loc))}: {key_path(list(loc))}: {message}"
        for loc, message in config.channel_problems()
    ]
    if problems:
        raise ConfigError(path, problems)
    return config.model_copy(update={"source_file": path})


def _duplicate_keys(path: Path, node: yaml.Node | None, where: str) -> Iterator[str]:
    """A key given twice in one mapping: YAML loaders keep the last silently; we refuse."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            here = f"{where}.{name}" if where else name
            if name in seen:
                yield f"{path}:{key.start_mark.line + 1}: {here}: duplicate key (given twice)"
            seen.add(name)
            yield from _duplicate_keys(path, value, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(path, item, f"{where}[{i}]")


def locate(path: Path, loc: Sequence[str | int]) -> str:
    """`file:line: key.path` for a key path of a config file that loaded (for later checks)."""
    try:
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (OSError, ValueError, yaml.YAMLError):
        node = None
    return f"{path}:{_line_of(node, list(loc))}: {key_path(loc) or '(top level)'}"


def key_path(loc: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _describe(path: Path, root: yaml.Node | None, error: Any) -> str:
    loc = [part for part in error["loc"] if not _is_pydantic_branch(part)]
    line = _line_of(root, loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{path}:{line}: {key_path(loc) or '(top level)'}: {message}"


def _is_pydantic_branch(part: object) -> bool:
    # Unions add loc entries such as 'function-after[...]' or 'FileSecret'; they are not keys.
    return isinstance(part, str) and (
        "[" in part or part in {"FileSecret", "SecretRef", "timedelta", "none"}
    )


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int:
    """Line (1-based) of the deepest YAML node along the key path."""
    line = node.start_mark.line + 1 if node else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:  # unknown key: point at the key itself
                child = next((k for k, _ in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
