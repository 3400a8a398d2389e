"""Done when: the runs of one process share one HTTP client per destination — a later run reuses
the connections of the earlier ones (no new connection, no new CA bundle per run) — and a client
never outlives the event loop its connections belong to."""

from __future__ import annotations

import asyncio

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.http import clients
from fleet_alerting.http.clients import shared_client, tls_context
from fleet_alerting.sources.prometheus.client import query_watches
from tests.fakes.proxy import CountingProxy
from tests.test_prometheus_integration import exporter, prometheus  # noqa: F401 -- fixtures

WATCH = WatchConfig(name="Always", expr="vector(1)", summary="always")


def test_later_runs_reuse_the_connections_of_the_first(prometheus: str) -> None:  # noqa: F811
    async def three_runs() -> list[int]:
        proxy = CountingProxy(prometheus)
        server = await asyncio.start_server(proxy.relay, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        config = PrometheusConfig.model_validate({"url": url, "default_watches": False})
        opened = []
        async with server:
            for _ in range(3):
                (outcome,) = await query_watches(config, [WATCH])
                assert outcome.error is None and [s.value for s in outcome.firing] == [1.0]
                opened.append(proxy.connections)
        return opened

    first, second, third = asyncio.run(three_runs())
    assert first >= 1
    assert second == third == first  # the second and third runs opened none


def test_one_client_per_destination_and_one_tls_context() -> None:
    async def clients_of_a_run() -> tuple[object, ...]:
        a = shared_client("http://prometheus.test:9090", 10)
        return a, shared_client("http://prometheus.test:9090", 10), shared_client("notifiers")

    a, again, other = asyncio.run(clients_of_a_run())
    assert a is again and a is not other
    assert tls_context() is tls_context()
    assert a._transport._pool._ssl_context is tls_context()  # type: ignore[attr-defined]


def test_a_closed_loops_clients_are_dropped() -> None:
    async def client() -> object:
        return shared_client("http://alertmanager.test:9093")

    first = asyncio.run(client())
    second = asyncio.run(client())  # another loop: another client, the first one dropped
    assert first is not second
    assert len(clients._clients) == 1  # the second run's loop: every closed one's are gone
