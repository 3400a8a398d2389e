"""A watch: one source observed on a schedule. Each source package exports one `WATCH`,
core/watches.py lists them (sources/registry.py loads them), and flows/watches.py builds every
watch flow from that list.

A watch only observes. It reads the store (`StoreReader`) and returns an `Observation`: the
signals the engine decides on, which of the incidents it does not name it has seen to be over
("unseen"), what the run's table, counters and sentence say, and what the run keeps for the next
one. The run stores all of it through the engine's path, never the watch.

Sources know no orchestrator: a watch marks its I/O with `step` and logs through `run_log()`;
the orchestration layer installs a `Runtime` that makes those Prefect task runs and run logs.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from fleet_alerting.config import Config
    from fleet_alerting.core.incidents import Incident
    from fleet_alerting.core.policy import Evaluation, PolicyFor
    from fleet_alerting.core.signals import Signal

Row = dict[str, Any]
# given the unresolved incidents the run's signals do not name: ok-signals for those this run
# has seen to be over (finer than a whole source: only what this run could observe)
Unseen = Callable[["Iterable[Incident]"], "list[Signal]"]
# given the incidents before and the evaluation: what the engine does not tell (a changed cause
# of an open incident), added in the same transaction
Announce = Callable[["Mapping[str, Incident]", "Evaluation", "PolicyFor", datetime], "Evaluation"]


class StoreReader(Protocol):
    """What a watch may read of the store while it observes (it writes through `Observation`)."""

    def get_value(self, key: str, default: Any = None) -> Any: ...

    def unresolved(self, source: str | None = None) -> dict[str, Incident]: ...

    def open_keys(self, source: str) -> set[str]: ...  # cheaper than `unresolved`: no record


@dataclass
class Observation:
    """What one run of a watch saw, and what the engine and the run's report need of it."""

    signals: list[Signal]
    seen: str  # the run sentence's first half: `3 targets probed, all healthy`
    counters: dict[str, int]  # the run's result, before the engine's and delivery's own
    rows: list[Row] = field(default_factory=list)  # the run's table artifact (`key` links a row)
    unseen: Unseen | None = None
    # source → reason: that source's open incidents the signals do not name are over
    unseen_sources: dict[str, str] = field(default_factory=dict)
    policy_for: PolicyFor | None = None  # None: the configured policies
    announce: Announce | None = None
    # incidents over at once (a one-off event, an auto-close) and their notifications: stored as
    # they are, beside the engine, in the run's one store call before it evaluates
    one_offs: Evaluation | None = None
    values: dict[str, Any] = field(default_factory=dict)  # store values for the next run
    # the table's rows once the engine decided, when they show the incidents' changes
    rows_after: Callable[[Evaluation], list[Row]] | None = None

    def table(self, evaluation: Evaluation) -> list[Row]:
        return self.rows_after(evaluation) if self.rows_after else self.rows


class Watch(Protocol):
    """What the flow factory, the schedules and `serve` need of a watch."""

    @property
    def name(self) -> str: ...  # the flow's name (and the run's artifact key)

    @property
    def section(self) -> str: ...  # the config section that turns it on

    @property
    def description(self) -> str: ...  # the deployment's

    @property
    def required(self) -> str | None: ...  # why a run fails when not configured; None: runs

    def configured(self, config: Config) -> bool: ...

    def observe(
        self, config: Config, now: datetime, store: StoreReader
    ) -> Awaitable[Observation]: ...


Observe = Callable[["Config", datetime, StoreReader], Awaitable[Observation]]


@dataclass(frozen=True)
class SourceWatch:
    """A source package's `Watch`: the package's docstring describes its deployment, and its
    `watch` module's `observe` (an `Observe`) is imported when it first observes, so listing the
    watches (every CLI start) loads no client and no schema."""

    package: str
    description: str
    name: str
    section: str
    is_configured: Callable[[Config], bool]
    required: str | None = None  # e.g. `fleet_api: section missing (url, token)`

    def configured(self, config: Config) -> bool:
        return self.is_configured(config)

    def observe(self, config: Config, now: datetime, store: StoreReader) -> Awaitable[Observation]:
        observe: Observe = importlib.import_module(f"{self.package}.watch").observe
        return observe(config, now, store)


# --- how a watch's steps and logs reach the orchestrator -----------------------------------------

P = ParamSpec("P")
R = TypeVar("R")
Log = logging.Logger | logging.LoggerAdapter


class Runtime(Protocol):
    def call(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...

    def logger(self) -> Log: ...


class PlainRuntime:
    """Steps are plain calls and logs go to `fleet_alerting.run` (no orchestrator installed)."""

    def call(
        self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return fn(*args, **kwargs)

    def logger(self) -> Log:
        return logging.getLogger("fleet_alerting.run")


_runtime: list[Runtime] = [PlainRuntime()]


def use_runtime(runtime: Runtime) -> None:
    _runtime[0] = runtime


def run_log() -> Log:
    return _runtime[0].logger()


def step(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A watch's I/O as a unit the orchestrator shows (a Prefect task run named `name`)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            return _runtime[0].call(name, fn, args, kwargs)  # type: ignore[no-any-return]

        return run

    return decorate
