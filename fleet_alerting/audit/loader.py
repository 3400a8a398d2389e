"""Load alertmanager.yml (file or live text), Prometheus rule files and the expectations file.

Every malformed input raises AuditInputError naming the file and the line."""

from __future__ import annotations

import glob as globmod
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fleet_alerting.alertmanager.routing import (
    AlertmanagerYml,
    RoutingConfigError,
    format_path,
    parse_config,
)
from fleet_alerting.audit.model import Expectation, Expectations, Rule, SecretFile

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AuditInputError(ValueError):
    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source, self.line, self.message = source, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def read_text(path: str | Path) -> str:
    """A file's text, or AuditInputError naming it (missing, a directory, unreadable, binary)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditInputError(str(path), None, f"cannot read: {_reason(exc)}") from None


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    # One pass: compose (keeping line marks) then construct from the same node tree.
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise AuditInputError(source, line, f"invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, path: Iterable[str | int]) -> int | None:
    """1-based line of the value at `path` in a composed YAML tree (the deepest one found)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    nxt = v
                    line = k.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


# --- alertmanager.yml ---------------------------------------------------------------------


def load_alertmanager_text(text: str, source: str) -> AlertmanagerYml:
    data, node = _parse_yaml(text, source)
    if not isinstance(data, Mapping):
        raise AuditInputError(source, 1, "an Alertmanager configuration must be a YAML mapping")
    try:
        return parse_config(data)
    except RoutingConfigError as exc:
        line = line_of(node, exc.path)
        where = format_path(exc.path)
        msg = f"{where}: {exc.message}" if where else exc.message
        raise AuditInputError(source, line, msg) from None


def load_alertmanager(path: str | Path) -> AlertmanagerYml:
    return load_alertmanager_text(read_text(path), str(path))


# --- Prometheus rule files ----------------------------------------------------------------


def _str_map(value: Any, source: str, line: int | None, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AuditInputError(source, line, f"{what} must be a mapping")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def load_rule_text(text: str, source: str) -> list[Rule]:
    data, node = _parse_yaml(text, source)
    if data is None:
        return []
    if not isinstance(data, Mapping) or not isinstance(data.get("groups"), list):
        raise AuditInputError(source, 1, "a rule file needs a top-level `groups:` list")
    rules: list[Rule] = []
    for gi, group in enumerate(data["groups"]):
        gline = line_of(node, ("groups", gi))
        if not isinstance(group, Mapping) or not group.get("name"):
            raise AuditInputError(source, gline, f"groups[{gi}]: a group needs a name")
        for ri, r in enumerate(group.get("rules") or []):
            path = ("groups", gi, "rules", ri)
            line = line_of(node, path)
            if not isinstance(r, Mapping):
                raise AuditInputError(source, line, "a rule must be a mapping")
            kind = "alert" if "alert" in r else "record" if "record" in r else None
            if kind is None:
                raise AuditInputError(source, line, "a rule needs `alert:` or `record:`")
            if not isinstance(r.get("expr"), str | int | float) or r.get("expr") == "":
                raise AuditInputError(source, line, f"rule {r.get(kind)!r} has no `expr`")
            rules.append(
                Rule(
                    name=str(r[kind]),
                    expr=str(r["expr"]),
                    labels=_str_map(r.get("labels"), source, line, "labels"),
                    annotations=_str_map(r.get("annotations"), source, line, "annotations"),
                    kind=kind,
                    file=source,
                    line=line or 0,
                    group=str(group["name"]),
                )
            )
    return rules


def load_rules(pattern: str) -> list[Rule]:
    files = sorted(globmod.glob(pattern, recursive=True))
    if not files:
        raise AuditInputError(pattern, None, "no rule files match")
    rules: list[Rule] = []
    for f in files:
        rules.extend(load_rule_text(read_text(f), f))
    return rules


# --- expectations -------------------------------------------------------------------------


def _expectation(d: Mapping[str, Any]) -> Expectation:
    ann = d.get("required_annotations")
    return Expectation(
        must_reach=tuple(d.get("must_reach") or ()),
        must_not_reach=tuple(d.get("must_not_reach") or ()),
        pages=d.get("pages"),
        required_annotations=None if ann is None else tuple(ann),
    )


def load_expectations(path: str | Path) -> Expectations:
    source = str(path)
    data, _ = _parse_yaml(read_text(path), source)
    return expectations_from_dict(data, source)


def expectations_from_dict(data: Any, source: str = "expectations") -> Expectations:
    if not isinstance(data, Mapping):
        raise AuditInputError(source, 1, "expectations must be a YAML mapping")
    try:
        defaults = Expectations()
        out = Expectations(
            paging_receivers=frozenset(data.get("paging_receivers") or ()),
            severities={
                str(k): _expectation(v or {}) for k, v in (data.get("severities") or {}).items()
            },
            alerts={str(k): _expectation(v or {}) for k, v in (data.get("alerts") or {}).items()},
            required_annotations=tuple(
                data.get("required_annotations", defaults.required_annotations)
            ),
            required_group_by=tuple(data.get("required_group_by", defaults.required_group_by)),
            secret_rotation_days=int(
                data.get("secret_rotation_days", defaults.secret_rotation_days)
            ),
            coverage_ignore=tuple(data.get("coverage_ignore", defaults.coverage_ignore)),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise AuditInputError(source, None, f"invalid expectations: {exc}") from None
    for pattern in out.coverage_ignore:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise AuditInputError(
                source, None, f"coverage_ignore: invalid regular expression {pattern!r}: {exc}"
            ) from None
    return out


# --- facts about secret files (I/O, kept out of the checks) ---------------------------------


def secret_file_refs(raw: Any, path: str = "") -> list[tuple[str, str]]:
    """(config path, file path) for every `*_file` / `password_file` / `credentials_file` key."""
    out: list[tuple[str, str]] = []
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            sub = f"{path}.{k}" if path else str(k)
            if str(k).endswith("_file") and isinstance(v, str) and v:
                out.append((sub, v))
            else:
                out.extend(secret_file_refs(v, sub))
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            out.extend(secret_file_refs(v, f"{path}[{i}]"))
    return out


def _git_tracked(path: Path) -> bool:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--error-unmatch", path.name],
            cwd=path.parent,
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def gather_secret_files(raw: Mapping[str, Any], base_dir: str | Path) -> list[SecretFile]:
    facts = []
    for cpath, fpath in secret_file_refs(raw):
        p = Path(fpath) if os.path.isabs(fpath) else Path(base_dir) / fpath
        try:
            st = p.stat() if p.is_file() else None
        except OSError:
            st = None
        if st is None:
            facts.append(SecretFile(cpath, str(p), exists=False))
            continue
        facts.append(
            SecretFile(
                cpath,
                str(p),
                exists=True,
                git_tracked=_git_tracked(p),
                mode=st.st_mode & 0o777,
                mtime=datetime.fromtimestamp(st.st_mtime, UTC),
            )
        )
    return facts
