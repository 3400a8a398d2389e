"""A NUL in a label that makes an incident's key (a real Prometheus scrapes and serves it): the
incident opens, pages once and resolves like any other, on both backends — the key the engine
compares is the key the store reads back (NUL kept as U+FFFD), and the other hosts of the watch
go on. A row stored with the raw NUL by an older version is read under its own key and closed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from fleet_alerting.config import Config
from fleet_alerting.core.incidents import Records, unseen
from fleet_alerting.core.policy import Evaluation, PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.sources import prometheus
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import incidents_table
from fleet_alerting.tasks.observe import observe
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.http import FakeServer, Request, Response
from tests.servers import start_prometheus, wait_until
from tests.stores import raw_engine

HOSTS = ("pi-02", "pi-\x0003")


class Exporter(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def handle(self, request: Request) -> Response:
        lines = ["# TYPE role_agent_last_run_success gauge"]
        lines += [f'role_agent_last_run_success{{host="{h}"}} {self.value}' for h in HOSTS]
        return Response(200, "\n".join(lines) + "\n", {"content-type": "text/plain"})


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Exporter, str]]:
    with Exporter() as exporter:
        workdir = tmp_path_factory.mktemp("prometheus")
        server, url = start_prometheus(workdir, {"pi": f"127.0.0.1:{exporter.port}"})
        yield exporter, url
        server.stop()


def served(url: str, value: int) -> bool:
    query = {"query": f"role_agent_last_run_success == {value}"}
    answer = httpx.get(f"{url}/api/v1/query", params=query).json()
    return len(answer["data"]["result"]) == len(HOSTS)


@pytest.mark.integration
def test_a_host_label_with_a_nul_pages_once_and_resolves(
    scraped: tuple[Exporter, str], state_db: str
) -> None:
    exporter, url = scraped
    exporter.value = 0
    wait_until(lambda: served(url, 0), 30, "both hosts failing in Prometheus")
    state = {"path": state_db} if "://" not in state_db else {"url": state_db}
    config = Config.model_validate({"state": state, "prometheus": {"url": url}})
    start = datetime.now(UTC)
    states: list[dict[str, str]] = []
    with Store(config.state) as store:
        for minute in range(12):
            if minute == 8:
                exporter.value = 1
                wait_until(lambda: served(url, 1), 30, "both hosts healed in Prometheus")
            now = start + timedelta(minutes=minute)
            seen = asyncio.run(observe(prometheus.WATCH, config, now))
            evaluate_and_record(
                store, seen.signals, config.policy, now, seen.unseen_sources, unseen=seen.unseen
            )
            states.append(
                {
                    i.signal.labels["host"]: i.state.value
                    for i in store.incidents(include_resolved=True)
                    if "host" in i.signal.labels and "RoleAgentFailure" in i.key
                }
            )
        pages = Counter(
            (row.notification.kind.value, row.notification.incident.signal.summary)
            for row in store.outbox(("queued",))
            if row.notification.channel == "pagerduty"
        )
    assert states[7] == {"pi-02": "paged", "pi-\ufffd03": "paged"}
    assert states[-1] == {"pi-02": "resolved", "pi-\ufffd03": "resolved"}
    assert [kind for kind, _ in pages.elements()].count("paged") == 1  # the group's one page
    assert not any("cleared" in summary for _, summary in pages)


def test_a_row_stored_with_a_raw_nul_is_read_under_its_key_and_closed(tmp_path: Path) -> None:
    """SQLite kept a raw NUL in the key column (PostgreSQL refused it). The source names the
    failure by the new key and says the old one is gone with its stored signal, as a Prometheus
    watch does for a series it no longer returns."""
    policy = PolicyConfig(open_after=1, resolve_after=1)
    t0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)

    def run(signals: list[Signal], now: datetime) -> None:
        def decide(records: Records) -> Evaluation:
            gone = [replace(i.signal, firing=False) for i in unseen(records, signals)]
            return evaluate(signals + gone, records, lambda _s: policy, now)

        store.evaluate(decide, now)

    def failing(key: str) -> Signal:
        return Signal(key=key, source="probe", firing=True, severity=Severity.warning, summary="x")

    raw, cleaned = "probe:target=pi-\x0003", "probe:target=pi-\ufffd03"
    with Store(tmp_path / "state.sqlite") as store:
        run([failing(raw)], t0)  # as a version before stored keys wrote it
        for minute in (1, 2):
            run([failing(cleaned)], t0 + timedelta(minutes=minute))
    with raw_engine(str(tmp_path / "state.sqlite")).connect() as conn:
        rows = dict(conn.execute(sa.select(incidents_table.c.key, incidents_table.c.state)).all())
    assert rows == {raw: "resolved", cleaned: "firing"}
