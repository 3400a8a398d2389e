"""`serve`'s Prometheus endpoint (config `metrics`): per watch the last run's start, success,
failure and duration (recorded by `serve`), whether its Prefect server answers, and what the
store holds — open incidents, the outbox by destination, dead letters, destinations backing off
— read when Prometheus scrapes.

A scrape never fails because the store does: the store is read in a worker thread for at most
STORE_READ_TIMEOUT, and an error or a timeout becomes `fleet_alerting_store_up 0` and one more
`fleet_alerting_store_errors_total`, with the watch metrics still served."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fleet_alerting.config.schema import Config
from fleet_alerting.config.secrets import redact
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.heartbeat import PrefectApi
from fleet_alerting.deployments.serve import ServeError
from fleet_alerting.deployments.watch_runs import WatchRecord, WatchRuns
from fleet_alerting.store.database import Store
from fleet_alerting.store.health import (
    OutboxGroup,
    destinations,
    open_incidents,
    outbox_groups,
)
from fleet_alerting.store.outbox import Destination

STORE_READ_TIMEOUT = 5.0  # seconds; Prometheus' default scrape timeout is 10 s
Print = Callable[[str], None]


@dataclass(frozen=True)
class StoreView:
    incidents: Counter[tuple[str, str, str]]
    outbox: list[OutboxGroup]
    destinations: list[Destination]


def read_store(config: Config) -> StoreView:
    with Store(config.state, busy_timeout=2.0) as store:
        return StoreView(open_incidents(store, utcnow()), outbox_groups(store), destinations(store))


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float | None]]):
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        if value is not None:
            family.add_metric(values, value)
    return family


_WATCH_GAUGES: list[tuple[str, str, Callable[[WatchRecord], float | None]]] = [
    ("interval_seconds", "How often serve runs the watch.", lambda r: r.every.total_seconds()),
    (
        "serving_since_timestamp_seconds",
        "When serve began serving the watch (its staleness counts from here until a success).",
        lambda r: _seconds(r.serving_since),
    ),
    ("last_start_timestamp_seconds", "When the last run began.", lambda r: _seconds(r.last_start)),
    (
        "last_success_timestamp_seconds",
        "When the last successful run ended.",
        lambda r: _seconds(r.last_success),
    ),
    (
        "last_failure_timestamp_seconds",
        "When the last failed or crashed run ended.",
        lambda r: _seconds(r.last_failure),
    ),
    ("last_run_duration_seconds", "How long the last run took.", lambda r: r.last_duration),
]


def watch_metrics(records: list[WatchRecord]) -> Iterator[Metric]:
    for suffix, doc, value in _WATCH_GAUGES:
        rows = [([r.name], value(r)) for r in records]
        yield _gauge(f"fleet_alerting_watch_{suffix}", doc, ["watch"], rows)


def api_metrics(api: PrefectApi | None) -> Iterator[Metric]:
    """Whether the Prefect server serve runs through answers its health check (asked every few
    seconds), and when it last did; absent before serve has a server."""
    if api is None:
        return
    up = GaugeMetricFamily(
        "fleet_alerting_prefect_api_up", "1 if the Prefect server answered serve's last ask."
    )
    up.add_metric([], 0 if api.last_error else 1)
    yield up
    yield _gauge(
        "fleet_alerting_prefect_api_last_answer_timestamp_seconds",
        "When the Prefect server last answered serve (runs start only while it answers).",
        [],
        [([], _seconds(api.last_answer))],
    )


def store_metrics(view: StoreView) -> Iterator[Metric]:
    yield _gauge(
        "fleet_alerting_incidents_open",
        "Open incidents in the store by state: pending, firing, paged (a pager took the page), "
        "page_queued (its page not delivered yet), page_dead (its page a dead letter: nobody "
        "was paged), page_dropped (an operator dropped its page), muted (a silence or "
        "maintenance window holds its messages and pages); a group's member counts by "
        "its group's page.",
        ["severity", "source", "state"],
        ((list(key), count) for key, count in sorted(view.incidents.items())),
    )
    yield _gauge(
        "fleet_alerting_outbox_messages",
        "Outbox messages kept in the store by destination and status (queued, sent, dead, "
        "withdrawn: a page whose incident resolved before its pager answered, and what followed "
        "it); all but queued ones are pruned after their retention.",
        ["destination", "status"],
        (([g.destination, g.status], g.count) for g in view.outbox),
    )
    yield _gauge(
        "fleet_alerting_outbox_oldest_queued_timestamp_seconds",
        "When the oldest message still queued for the destination was queued.",
        ["destination"],
        (([g.destination], _seconds(g.oldest)) for g in view.outbox if g.status == "queued"),
    )
    yield _gauge(
        "fleet_alerting_outbox_last_dead_letter_timestamp_seconds",
        "About when the newest dead letter of the destination was given up on (its last attempt).",
        ["destination"],
        (([g.destination], _seconds(g.last_attempt)) for g in view.outbox if g.status == "dead"),
    )
    yield _gauge(
        "fleet_alerting_destination_blocked_until_timestamp_seconds",
        "Until when every drainer waits before sending to the destination (0: not blocked).",
        ["destination"],
        (([d.name], _seconds(d.blocked_until) or 0.0) for d in view.destinations),
    )
    yield _gauge(
        "fleet_alerting_destination_failing_since_timestamp_seconds",
        "When the destination's consecutive failed sends began, its rests between them included "
        "(absent: its last send went).",
        ["destination"],
        (([d.name], _seconds(d.failing_since)) for d in view.destinations),
    )
    yield _gauge(
        "fleet_alerting_destination_consecutive_failures",
        "Consecutive failed sends to the destination.",
        ["destination"],
        (([d.name], d.failures) for d in view.destinations),
    )


class ServeCollector(Collector):
    def __init__(
        self, config: Config, runs: WatchRuns, out: Print, timeout: float = STORE_READ_TIMEOUT
    ):
        self.config, self.runs, self.out, self.timeout = config, runs, out, timeout
        self.store_errors = 0
        self._lock = threading.Lock()
        self._reader = concurrent.futures.ThreadPoolExecutor(1, "metrics-store")

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "fleet_alerting_build_info", "This fleet-alerting.", labels=["version"]
        )
        info.add_metric([_version()], 1)
        yield info
        records = self.runs.records()
        scheduled = GaugeMetricFamily(
            "fleet_alerting_watches_scheduled",
            "How many watches serve has scheduled (0 until its Prefect server answers and the "
            "watches are registered).",
        )
        scheduled.add_metric([], len(records))
        yield scheduled
        deployments = GaugeMetricFamily(
            "fleet_alerting_deployments_scheduled",
            "How many deployments (its watches and the quarterly audit) serve has scheduled (0 "
            "until its Prefect server answers and they are registered).",
        )
        deployments.add_metric([], self.runs.deployments_scheduled())
        yield deployments
        yield from api_metrics(self.runs.api())
        yield from watch_metrics(records)
        view = self._read_store()
        if view is not None:
            yield from store_metrics(view)
        up = GaugeMetricFamily("fleet_alerting_store_up", "1 if the last scrape read the store.")
        up.add_metric([], 1 if view is not None else 0)
        yield up
        errors = CounterMetricFamily(
            "fleet_alerting_store_errors", "Scrapes that could not read the store."
        )
        errors.add_metric([], self.store_errors)
        yield errors

    def _read_store(self) -> StoreView | None:
        with self._lock:  # one scrape at a time reads the store
            try:
                return self._reader.submit(read_store, self.config).result(self.timeout)
            except Exception as exc:
                self.store_errors += 1
                why = (
                    f"no answer within {self.timeout:g}s"
                    if isinstance(exc, concurrent.futures.TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                self.out(redact(f"metrics: the store could not be read: {why}").splitlines()[0])
                return None


def _version() -> str:
    try:
        return version("fleet-alerting")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def metrics_endpoint(config: Config, runs: WatchRuns, out: Print) -> Iterator[str | None]:
    """http://LISTEN/metrics while the block runs (a sidecar of `serve`); None when disabled."""
    settings = config.metrics
    if settings is None or not settings.enabled:
        yield None
        return
    host, _, port = settings.listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServeCollector(config, runs, out))
    try:
        server, thread = start_http_server(int(port), host.strip("[]"), registry)
    except OSError as exc:
        raise ServeError(f"metrics.listen {settings.listen}: {exc.strerror or exc}") from None
    url = f"http://{settings.listen}/metrics"
    out(f"metrics at {url}")
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
