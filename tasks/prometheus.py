"""Prometheus watches as Prefect tasks: all queries of a run in one task, fanned out inside it."""

from __future__ import annotations

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.sources.prometheus.client import query_watches
from fleet_alerting.sources.prometheus.judge import WatchOutcome
from fleet_alerting.tasks.runtime import run_logger, step


@step("query-prometheus")
async def run_watch_queries(
    config: PrometheusConfig, watches: list[WatchConfig]
) -> list[WatchOutcome]:
    outcomes = await query_watches(config, watches)
    logger = run_logger()
    for outcome in outcomes:
        name = outcome.watch.name
        for warning in outcome.warnings:
            logger.warning("watch %s: Prometheus warning: %s", name, warning)
        if outcome.error is None:
            logger.info("watch %s: %d series firing", name, len(outcome.firing))
        elif outcome.permanent:
            logger.error("watch %s: configuration error: %s", name, outcome.error)
        else:
            logger.warning("watch %s: not evaluated this run: %s", name, outcome.error)
    return outcomes
