"""Blackbox probing as Prefect tasks: the whole batch in one task run, fanned out inside it."""

from __future__ import annotations

from pathlib import Path

from fleet_alerting.config.schema import BlackboxConfig
from fleet_alerting.sources.blackbox.client import ProbeResult, ProbeTarget, load_targets, probe_all
from fleet_alerting.tasks.runtime import run_logger, step


@step("load-targets")
def resolve_targets(config: BlackboxConfig, base_dir: Path) -> tuple[list[ProbeTarget], list[str]]:
    targets, problems = load_targets(config, base_dir)
    logger = run_logger()
    for problem in problems:
        logger.error("targets: %s", problem)
    logger.info("%d target(s) to probe (%s mode)", len(targets), config.mode)
    return targets, problems


@step("probe-targets")
async def probe_targets(targets: list[ProbeTarget], config: BlackboxConfig) -> list[ProbeResult]:
    notes: list[str] = []
    results = await probe_all(targets, config, notes)
    logger = run_logger()
    for note in notes:
        logger.warning("probe: %s", note)
    for result in results:
        if not result.ok:
            logger.warning("%s (%s): %s", result.target.name, result.target.url, result.error)
    return results
