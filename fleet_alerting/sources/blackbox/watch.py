"""Probe HTTP targets (Fleet API `/api/healthz` and `/`, device `/healthz`); alert on failures.
The whole batch is one step, fanned out inside it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fleet_alerting.config import Config
from fleet_alerting.config.schema import BlackboxConfig
from fleet_alerting.core.wording import count, described, listed
from fleet_alerting.sources.blackbox.client import (
    SOURCE,
    ProbeResult,
    ProbeTarget,
    exporter_outage,
    load_targets,
    probe_all,
    to_signal,
    unseen,
)
from fleet_alerting.sources.records import problem_signals
from fleet_alerting.sources.watch import Observation, StoreReader, run_log, step


def resolve_targets(config: BlackboxConfig, base_dir: Path) -> tuple[list[ProbeTarget], list[str]]:
    targets, problems = load_targets(config, base_dir)
    logger = run_log()
    for problem in problems:
        logger.error("targets: %s", problem)
    logger.info("%d target(s) to probe (%s mode)", len(targets), config.mode)
    return targets, problems


@step("probe-targets")
async def probe_targets(targets: list[ProbeTarget], config: BlackboxConfig) -> list[ProbeResult]:
    notes: list[str] = []
    results = await probe_all(targets, config, notes)
    logger = run_log()
    for note in notes:
        logger.warning("probe: %s", note)
    for result in results:
        if not result.ok:
            logger.warning("%s (%s): %s", result.target.name, result.target.url, result.error)
    return results


async def observe(config: Config, now: datetime, store: StoreReader) -> Observation:
    base_dir = config.source_file.parent if config.source_file else Path.cwd()
    targets, problems = resolve_targets(config.blackbox, base_dir)
    results = await probe_targets(targets, config.blackbox)
    observed = [r for r in results if r.observed]
    signals = [to_signal(r) for r in observed] + problem_signals(f"{SOURCE}-config", problems)
    signals += exporter_outage(results, config.blackbox.exporter_url or "")
    failing = [r.target.name for r in observed if not r.ok]
    counters = {
        "targets": len(results),
        "failing": len(failing),
        "not_probed": len(results) - len(observed),
        "target_problems": len(problems),
    }
    troubles = [
        f"{len(failing)} failing ({listed(failing)})" if failing else "",
        f"{counters['not_probed']} not probed" if counters["not_probed"] else "",
        count(len(problems), "targets file problem") if problems else "",
    ]
    return Observation(
        signals,
        described(f"{count(len(results), 'target')} probed", troubles, "all healthy"),
        counters,
        rows=[_row(r) for r in results],
        unseen=lambda incidents: unseen(signals, incidents, results, complete=not problems),
    )


def _row(r: ProbeResult) -> dict[str, object]:
    return {
        "key": to_signal(r).key,
        "target": r.target.name,
        "url": r.target.url,
        "severity": r.target.severity.value,
        "result": "ok" if r.ok else "FAIL" if r.observed else "NOT PROBED",
        "status": r.status,
        "latency_ms": r.latency_ms,
        "tls_days_left": r.tls_days_left,
        "error": r.error or "",
    }
