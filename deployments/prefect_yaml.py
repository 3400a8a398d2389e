"""prefect.yaml, written from SCHEDULES (the watches' from the registry): the deployments for a
process work pool, with the example config's paths (the repository's root is the working
directory). `python -m fleet_alerting.deployments.prefect_yaml > prefect.yaml` rewrites it; a
test fails while the file in the repository differs."""

from __future__ import annotations

import json
import os

import yaml

from fleet_alerting.deployments.schedules import SCHEDULES, Schedule
from fleet_alerting.flows import ENTRYPOINTS

CONFIG = "config/example.yaml"  # the repository's example; parameters are relative to its dir

HEADER = """\
# Deployments for a process work pool:
#   prefect work-pool create fleet --type process
#   prefect --no-prompt deploy --all
#   prefect worker start --pool fleet
# Or, with no work pool at all: fleet-alerting serve --config config/example.yaml
# Written from deployments/schedules.py (its watches from the registry, core/watches.py):
#   python -m fleet_alerting.deployments.prefect_yaml > prefect.yaml
name: fleet-alerting
prefect-version: 3.9.1

pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ $PWD }}"

definitions:
  work_pool: &pool
    name: fleet
    work_queue_name: default

deployments:
"""


def render() -> str:
    return HEADER + "\n".join(_deployment(s) for s in SCHEDULES)


def _deployment(s: Schedule) -> str:
    module, function = ENTRYPOINTS[s.flow].removeprefix("fleet_alerting.").split(":")
    lines = [
        f"  - name: {s.name}",
        f"    entrypoint: {module.replace('.', '/')}.py:{function}",
        f"    description: {_scalar(s.description)}",
        "    parameters:",
        *(f"      {key}: {_parameter(key, value)}" for key, value in s.parameters.items()),
        "    schedules:",
        f'      - cron: "{s.cron}"',
        "    concurrency_limit: 1",
        "    tags: [fleet-alerting]",
        "    work_pool: *pool",
    ]
    return "\n".join(lines) + "\n"


def _parameter(key: str, value: str) -> str:
    """A schedule's parameter is relative to the config's directory; here, to the repository."""
    if key == "config_path":
        return CONFIG
    return os.path.normpath(os.path.join(os.path.dirname(CONFIG), value))


def _scalar(text: str) -> str:
    """Plain when YAML reads it back as the same string, else double-quoted."""
    try:
        plain = yaml.safe_load(f"text: {text}") == {"text": text}
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


if __name__ == "__main__":
    print(render(), end="")
