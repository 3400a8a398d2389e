"""Tracked or plain: the same watch code runs as a Prefect flow (a flow run is active: task runs,
run logger, artifacts) or plainly — `fleet-alerting run` with no Prefect API to record it in — where
steps are plain calls, logs go to stderr and artifacts are skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging import get_run_logger

LOGGER = logging.getLogger("fleet_alerting.run")


def tracked() -> bool:
    """Is a Prefect flow or task run active (and an API recording it)?"""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    return get_run_logger() if tracked() else LOGGER


class Step(Task):
    """A Prefect task inside a flow run; a plain call outside one (no task run, no API)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tracked():
            return super().__call__(*args, **kwargs)
        return self.fn(*args, **kwargs)


def step(name: str, **options: Any) -> Callable[[Callable[..., Any]], Step]:
    """`@task(name=…)` for the watches' I/O; results are never cached (every run observes)."""

    def decorate(fn: Callable[..., Any]) -> Step:
        return Step(fn=fn, name=name, cache_policy=options.pop("cache_policy", NO_CACHE), **options)

    return decorate
