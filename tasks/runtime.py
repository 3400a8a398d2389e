"""Tracked or plain: the same watch code runs as a Prefect flow (a flow run is active: task runs,
run logger, artifacts) or plainly — `fleet-alerting run` with no Prefect API to record it in —
where steps are plain calls, logs go to stderr and artifacts are skipped.

A plain run does not even import Prefect (~1–2 s of CPU): `fleet-alerting run` calls `go_plain()`
before it imports a flow module, and `watch_flow` then leaves the flow a plain coroutine function.
Everywhere else (serve, work pools, tests) flows are real Prefect flows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from fleet_alerting.sources.watch import use_runtime

LOGGER = logging.getLogger("fleet_alerting.run")
_PLAIN = False


def go_plain() -> None:
    """From now on, flow modules imported by this process define plain functions."""
    global _PLAIN
    _PLAIN = True


def watch_flow(name: str) -> Callable[[Callable[..., Any]], Any]:
    """`@flow(name=…)`, or in a plain process the function itself (`.fn` is itself)."""

    def decorate(fn: Callable[..., Any]) -> Any:
        if _PLAIN:
            fn.fn = fn  # type: ignore[attr-defined]
            return fn
        from prefect import flow

        return flow(name=name)(fn)

    return decorate


def tracked() -> bool:
    """Is a Prefect flow or task run active (and an API recording it)?"""
    if "prefect.context" not in sys.modules:
        return False  # no run can be active in a process that never imported Prefect
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    if not tracked():
        return LOGGER
    from prefect.logging import get_run_logger

    return get_run_logger()


class Step:
    """A Prefect task inside a flow run; a plain call outside one (no task run, no API)."""

    def __init__(self, fn: Callable[..., Any], name: str, options: dict[str, Any]):
        self.fn = fn
        self.name = name
        self._options = options
        self._task: Any = None
        self.__doc__ = fn.__doc__

    @property
    def task(self) -> Any:
        if self._task is None:
            from prefect import Task
            from prefect.cache_policies import NO_CACHE

            options = {"cache_policy": NO_CACHE} | self._options
            self._task = Task(fn=self.fn, name=self.name, **options)
        return self._task

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tracked():
            return self.task(*map(_opaque, args), **{k: _opaque(v) for k, v in kwargs.items()})
        return self.fn(*args, **kwargs)


def _opaque(argument: Any) -> Any:
    """Prefect walks every argument of a task run, all the way down (the whole config, every
    signal), looking for futures and earlier results: ~7 % of serve's own CPU. `opaque` has it
    look at the argument itself only: a step's result passed on as an argument still shows as
    the next step's input; the step gets the argument unchanged."""
    from prefect.utilities.annotations import opaque

    return opaque(argument)


def step(name: str, **options: Any) -> Callable[[Callable[..., Any]], Step]:
    """`@task(name=…)` for the watches' I/O; results are never cached (every run observes)."""

    def decorate(fn: Callable[..., Any]) -> Step:
        return Step(fn, name, options)

    return decorate


class WatchRuntime:
    """How the watches' steps and logs (sources/watch.py) run here: a step is a `Step` (a Prefect
    task run inside a flow run, a plain call outside one), a log line goes to `run_logger`."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, Callable[..., Any]], Step] = {}

    def call(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        known = self._steps.get((name, fn))
        if known is None:
            known = self._steps[(name, fn)] = Step(fn, name, {})
        return known(*args, **kwargs)

    def logger(self) -> logging.Logger | logging.LoggerAdapter:
        return run_logger()


use_runtime(WatchRuntime())
