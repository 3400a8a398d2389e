"""Parameters an operator surface (MCP `trigger_deployment`) passes to a flow run, checked first.

Against the flow's own parameter schema (the one Prefect stores as the deployment's
`parameter_openapi_schema`): known names only, the right types, the required ones present. Every
path-like parameter (`*_path`, `*_file`, `*_dir`, `*_glob`) must stay inside the configuration
directory and is passed on as an absolute path, so a run cannot be pointed at `/etc/passwd`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema

from fleet_alerting.core.wording import no_such

PATH_SUFFIXES = ("_path", "_file", "_dir", "_glob")


class ParameterError(ValueError):
    """Why the parameters were refused (names and expectations, never the values)."""


def flow_schema(deployment: str) -> dict[str, Any]:
    """The parameter schema of the flow a `flow/deployment` name runs."""
    from fleet_alerting.flows import ENTRYPOINTS, get_flow

    flow = deployment.split("/", 1)[0]
    if flow not in ENTRYPOINTS:
        known = f"Known: {', '.join(sorted(ENTRYPOINTS))}."
        raise ParameterError(no_such("flow", flow, hint=known))
    return get_flow(flow).parameters.model_dump()


def check_parameters(
    parameters: dict[str, Any], schema: dict[str, Any], config_dir: Path
) -> dict[str, Any]:
    """The parameters, path-like ones made absolute; ParameterError if any is refused."""
    strict = dict(schema) | {"additionalProperties": False}
    validator = jsonschema.Draft202012Validator(strict)
    problems = sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or 'parameters'}: {_what(error)}"
        for error in validator.iter_errors(parameters)
    )
    if problems:
        raise ParameterError("; ".join(problems))
    return {name: _confined(name, value, config_dir) for name, value in parameters.items()}


def _what(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "none"
        return f"unknown parameter (known: {allowed})"
    if error.validator == "required":
        return "a required parameter is missing"
    if error.validator in ("type", "anyOf"):
        return "not of the expected type"
    return f"refused by the schema ({error.validator})"


def _confined(name: str, value: Any, config_dir: Path) -> Any:
    if not name.endswith(PATH_SUFFIXES) or not isinstance(value, str):
        return value
    root = config_dir.resolve()
    joined = root / value  # an absolute value replaces the root
    # globs cannot be resolved: judge them lexically; real paths with symlinks resolved
    target = Path(os.path.normpath(joined)) if name.endswith("_glob") else joined.resolve()
    if not target.is_relative_to(root):
        raise ParameterError(f"{name}: must stay inside the configuration directory {root}")
    return str(target)
