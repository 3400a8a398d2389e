"""Prometheus watches as Prefect tasks: all queries of a run in one task, fanned out inside it."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.sources.prometheus.client import query_watches
from fleet_alerting.sources.prometheus.judge import WatchOutcome


@task(name="query-prometheus", cache_policy=NO_CACHE)
async def run_watch_queries(
    config: PrometheusConfig, watches: list[WatchConfig]
) -> list[WatchOutcome]:
    outcomes = await query_watches(config, watches)
    logger = get_run_logger()
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
