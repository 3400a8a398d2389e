"""Reading the YAML config: every problem as `file:line: key.path: what was expected`, never the
value (an inline secret must not reach a terminal or a log)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fleet_alerting.config.schema import Config


class ConfigError(Exception):
    """Every problem of one config file, one per line: `file:line: key.path: what was expected`."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(path, [f"{path}: cannot read config: {exc.strerror}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(path, [f"{where}: malformed YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [f"{path}:1: expected a mapping of sections at the top level"])
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(path, [_describe(path, node, err) for err in exc.errors()]) from None
    problems = [
        f"{path}:{_line_of(node, list(loc))}: {'.'.join(loc)}: {message}"
        for loc, message in config.channel_problems()
    ]
    if problems:
        raise ConfigError(path, problems)
    return config.model_copy(update={"source_file": path})


def _describe(path: Path, root: yaml.Node | None, error: Any) -> str:
    loc = [part for part in error["loc"] if not _is_pydantic_branch(part)]
    key_path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    line = _line_of(root, loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{path}:{line}: {key_path or '(top level)'}: {message}"


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
