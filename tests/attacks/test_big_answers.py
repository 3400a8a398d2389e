"""Answers too big to read: Prometheus, Alertmanager and the Fleet API are read with a size cap,
streamed, and a larger answer is an error naming its source — never a process that reads until
it is killed. An endless answer stands for any answer past the cap."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest

from fleet_alerting.config.schema import AlertmanagerConfig, FleetApiConfig, PrometheusConfig
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.alertmanager.client import Alertmanager
from fleet_alerting.sources.fleet_events.client import FleetApi
from fleet_alerting.sources.prometheus.client import PrometheusClient, query_watches
from fleet_alerting.sources.prometheus.judge import active_watches
from tests.attacks.limits import bounded, deadline, memory_cap

CAP = 1024 * 1024
SERIES = b'{"metric":{"host":"pi-000001","job":"node"},"value":[1765000000.1,"0"]},'
GZIPPED_ZEROS = gzip.compress(b" " * (256 * 1024 * 1024), compresslevel=9)  # ~250 KB on the wire


class Endless:
    """An HTTP server whose answer never ends (`{"status":"success",…,"result":[series,…`),
    or, with `gzipped`, ends after a small gzip body that inflates to 256 MB."""

    def __init__(self, gzipped: bool = False):
        outer = self
        self.sent = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                if gzipped:
                    self.send_header("content-encoding", "gzip")
                    self.send_header("content-length", str(len(GZIPPED_ZEROS)))
                self.end_headers()
                try:
                    if gzipped:
                        self.wfile.write(GZIPPED_ZEROS)
                        return
                    self.wfile.write(
                        b'{"status":"success","data":{"resultType":"vector","result":['
                    )
                    chunk = SERIES * 1000
                    while outer.sent < 4 * 1024 * 1024 * 1024:  # stops a runaway client at 4 GB
                        self.wfile.write(chunk)
                        outer.sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Endless:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["endless", "gzip bomb"])
def huge(request: pytest.FixtureRequest) -> Iterator[Endless]:
    with Endless(gzipped=request.param == "gzip bomb") as server:
        yield server


def test_a_prometheus_answer_past_the_cap_is_a_watch_error_naming_it(huge: Endless) -> None:
    config = PrometheusConfig(url=huge.url, max_answer_bytes=CAP, default_watches=True)
    watches = [w for w in active_watches(config) if w.name == "RoleAgentFailure"]
    with bounded():
        outcomes = asyncio.run(query_watches(config, watches))
    (error,) = [o.error or "" for o in outcomes]
    # the watch's two queries (expr, metric) ask at once: the first past the cap is named
    query, _, said = error.partition(": ")
    assert query in (
        "expr 'role_agent_last_run_success == 0'",
        "metric 'count by (host) (role_agent_last_run_success)'",
    )
    assert said == (
        f"answer from {huge.url}/api/v1/query larger than 1 MB (the cap, "
        "prometheus.max_answer_bytes): stopped reading; the query selects too much: narrow it "
        "(more selective labels, an aggregation) or raise the cap"
    )
    assert not outcomes[0].firing and outcomes[0].permanent  # not retried: it would be as big
    assert huge.sent < 64 * CAP


def test_a_prometheus_answer_past_the_cap_is_said_to_be_too_large_and_resolves_nothing(
    huge: Endless,
) -> None:
    """Named as what it is (the answer, the query), not a configuration error; the watch's open
    incidents keep their state: an answer not read vouches for nothing."""
    from datetime import UTC, datetime, timedelta

    from fleet_alerting.core.links import LinksConfig
    from fleet_alerting.core.policy import PolicyConfig, evaluate
    from fleet_alerting.sources.prometheus.judge import Series, evaluate_watches, firing_signal

    config = PrometheusConfig(url=huge.url, max_answer_bytes=CAP, default_watches=True)
    (watch,) = [w for w in active_watches(config) if w.name == "RoleAgentFailure"]
    policy = PolicyConfig(open_after=1, resolve_after=1, notify=["slack"])
    t0 = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    failing = firing_signal(watch, Series({"host": "pi-audio-01"}, 0.0), LinksConfig())
    opened = evaluate([failing], {}, lambda _s: policy, t0).incidents
    incidents = {i.key: i for i in opened}

    with bounded():
        outcomes = asyncio.run(query_watches(config, [watch]))
    result = evaluate_watches(outcomes, LinksConfig())
    (error,) = result.signals
    assert error.summary.startswith("prometheus watch RoleAgentFailure: answer too large: ")
    assert f"answer from {huge.url}/api/v1/query larger than 1 MB" in error.summary
    assert "configuration error" not in error.summary
    assert error.labels["cause"] == "answer too large"
    assert error.remediation == (
        "Narrow the watch's expr or metric (more selective labels, an aggregation), or raise "
        "prometheus.max_answer_bytes if the answer is meant to be that large",
    )
    signals = result.signals + result.unseen(incidents.values())
    later = evaluate(signals, incidents, lambda _s: policy, t0 + timedelta(minutes=1))
    assert [(n.kind, n.incident.key) for n in later.notifications] == [
        ("opened", error.key)
    ]  # the host's incident neither resolves nor changes
    assert failing.key not in {i.key for i in later.incidents}


def test_an_alertmanager_answer_past_the_cap_names_it(huge: Endless) -> None:
    config = AlertmanagerConfig(url=huge.url, max_answer_bytes=CAP)

    async def alerts() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await Alertmanager(client, config.url, config.max_answer_bytes).escalation_alerts(
                ['severity="critical"']
            )

    with bounded(), pytest.raises(AdapterError) as raised:
        asyncio.run(alerts())
    assert str(raised.value) == (
        "Alertmanager /api/v2/alerts answered more than 1 MB (the cap, "
        "alertmanager.max_answer_bytes): stopped reading; ask for less or raise the cap"
    )


def test_a_fleet_api_answer_past_the_cap_names_it(huge: Endless) -> None:
    config = FleetApiConfig(url=huge.url, max_answer_bytes=CAP)

    async def events() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await FleetApi(client, config.url, None, config.max_answer_bytes).recent_events()

    with bounded(), pytest.raises(AdapterError) as raised:
        asyncio.run(events())
    assert "answered more than 1 MB (the cap, fleet_api.max_answer_bytes)" in str(raised.value)


def test_without_a_setting_an_endless_answer_stops_at_50_mb(huge: Endless) -> None:
    async def query() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            await PrometheusClient(http, huge.url, 5).query("up")

    with bounded(20.0), pytest.raises(AdapterError, match="larger than 50 MB"):
        asyncio.run(query())


def test_the_cap_is_bounded_and_50_mb_by_default() -> None:
    assert PrometheusConfig().max_answer_bytes == 50 * 1024 * 1024
    for too in (0, 1024, 2 * 1024 * 1024 * 1024):
        with pytest.raises(ValueError, match="max_answer_bytes"):
            FleetApiConfig(url="http://127.0.0.1:1", max_answer_bytes=too)


def test_a_10_mb_answer_of_130000_series_is_read_in_bounded_time_and_memory() -> None:
    """The read + decode of the answer that took 81 s and 732 MB in a whole run: the adapter's
    part stays near a plain GET + JSON decode (bench/big_answer.py measures it side by side)."""
    from tests.fakes.http import FakeServer, Request, Response

    result = [
        {"metric": {"host": f"pi-{i:06d}", "job": "node"}, "value": [1765000000.1, "0"]}
        for i in range(130_000)
    ]
    body = orjson.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
    del result

    class Canned(FakeServer):
        def handle(self, request: Request) -> Response:
            return Response(200, body, {"content-type": "application/json"})

    async def query(url: str) -> int:
        async with httpx.AsyncClient(timeout=60) as http:
            return len((await PrometheusClient(http, url, 60).query("x")).samples)

    with Canned() as server, deadline(20.0), memory_cap(768 * 1024 * 1024):
        assert asyncio.run(query(server.url)) == 130_000
