"""Prometheus watches end to end: a real Prometheus from Debian (1 s scrape) scrapes an exporter
served by the test; the test flips its values and runs the flow against a Slack test server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.sources.prometheus.client import (
    PrometheusClient,
    PrometheusError,
    query_watches,
)
from fleet_alerting.store.database import Store
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import SlackWebhookServer
from tests.servers import start_prometheus, wait_until

pytestmark = pytest.mark.integration


class Exporter(FakeServer):
    """/metrics in the text exposition format; `gauges` and `counters` are changed by the test:
    {metric: {(("label", "value"), ...): number}}."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self.types: dict[str, str] = {}
        self.state_lock = threading.Lock()

    def set(self, metric: str, value: float, kind: str = "gauge", **labels: str) -> None:
        with self.state_lock:
            self.types[metric] = kind
            self.values.setdefault(metric, {})[tuple(sorted(labels.items()))] = value

    def drop(self, metric: str, **labels: str) -> None:
        with self.state_lock:
            if labels:
                self.values.get(metric, {}).pop(tuple(sorted(labels.items())), None)
            else:
                self.values.pop(metric, None)

    def handle(self, request: Request) -> Response:
        if request.path != "/metrics":
            return Response(404, "not found")
        lines = []
        with self.state_lock:
            for metric, series in self.values.items():
                lines.append(f"# TYPE {metric} {self.types[metric]}")
                for labels, value in series.items():
                    inner = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{metric}{{{inner}}} {value}")
        return Response(200, "\n".join(lines) + "\n", {"content-type": "text/plain; version=0.0.4"})


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    with Exporter() as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    server, url = start_prometheus(workdir, {"node": f"127.0.0.1:{exporter.port}"})
    yield url
    server.stop()


def series(prometheus: str, expr: str) -> dict[str, float]:
    """host/deviceId → value of an instant query, straight from the HTTP API."""
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    return {
        s["metric"].get("host") or s["metric"].get("deviceId", ""): float(s["value"][1])
        for s in body["data"]["result"]
    }


def until(prometheus: str, expr: str, expected: dict[str, float]) -> None:
    wait_until(lambda: series(prometheus, expr) == expected, 30, f"{expr} == {expected}")


def write_config(path: Path, prometheus: str, slack: str) -> None:
    (path.parent / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    quick = {"open_after": 2, "resolve_after": 2, "page": [], "mirror": False, "repeat": None}
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "slack": {"webhook": {"file": "slack.url"}}},
        "policies": {"critical": quick, "warning": quick},
        # per-incident messages are what this test reads (grouping: tests/test_storms.py)
        "grouping": {"min_size": 3},
        "links": {"grafana_url": "https://grafana.test", "loki_datasource_uid": "LOKI1"},
        "prometheus": {
            "url": prometheus,
            "timeout": "5s",
            "watches": [
                {
                    "name": "BrokenWatch",
                    "expr": "sum(rate(role_agent_last_run_success[5m])",
                    "summary": "never rendered",
                }
            ],
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def texts(slack: SlackWebhookServer) -> list[str]:
    return [m["text"] for m in slack.messages]


def test_bad_data_is_a_permanent_error_from_the_real_server(prometheus: str) -> None:
    async def broken() -> None:
        async with httpx.AsyncClient() as http:
            await PrometheusClient(http, prometheus, 5).query("sum(up")

    with pytest.raises(PrometheusError) as caught:
        asyncio.run(broken())
    assert caught.value.permanent and caught.value.error_type == "bad_data"
    assert "HTTP 400" in str(caught.value)


@pytest.mark.parametrize("timeout", ["1500ms", "1.5s", "10s", "250ms", "1m30s"])
def test_configured_timeout_is_sent_as_prometheus_reads_it(prometheus: str, timeout: str) -> None:
    """Prometheus' durations are integers with a unit: `1.5s` would be a 400 for every watch."""
    watch = WatchConfig(name="Always", expr="vector(1)", summary="always")
    config = PrometheusConfig.model_validate(
        {"url": prometheus, "timeout": timeout, "default_watches": False}
    )
    (outcome,) = asyncio.run(query_watches(config, [watch]))
    assert outcome.error is None
    assert [s.value for s in outcome.firing] == [1.0]


def test_flow_against_real_prometheus(
    prefect_api: str, exporter: Exporter, prometheus: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import prometheus_watches

    now = time.time()
    for host in ("pi-audio-01", "pi-audio-02"):
        exporter.set("role_agent_last_run_success", 1, host=host)
        exporter.set("role_agent_last_run_timestamp", now, host=host)
    exporter.set("circuit_breaker_state", 0, deviceId="dev-7")
    exporter.set("upstream_device_failures_total", 0, "counter", deviceId="dev-7", reason="timeout")
    until(prometheus, "role_agent_last_run_success", {"pi-audio-01": 1, "pi-audio-02": 1})
    until(prometheus, "upstream_device_failures_total", {"dev-7": 0})

    def run() -> dict[str, int]:
        return asyncio.run(prometheus_watches(str(config_file)))

    with SlackWebhookServer() as slack:
        write_config(config_file, prometheus, slack.url)
        first = run()
        assert (first["watches"], first["watch_errors"]) == (5, 1)  # 4 shipped + the broken one
        assert slack.messages == []

        # two hosts fail, a breaker opens, a device's failures spike → one incident per key
        for host in ("pi-audio-01", "pi-audio-02"):
            exporter.set("role_agent_last_run_success", 0, host=host)
        exporter.set("circuit_breaker_state", 1, deviceId="dev-7")
        exporter.set(
            "upstream_device_failures_total", 40, "counter", deviceId="dev-7", reason="timeout"
        )
        until(prometheus, "role_agent_last_run_success == 0", {"pi-audio-01": 0, "pi-audio-02": 0})
        until(prometheus, "circuit_breaker_state == 1", {"dev-7": 1})
        wait_until(
            lambda: series(prometheus, "increase(upstream_device_failures_total[5m]) > 5"),
            30,
            "failure spike visible",
        )
        run()  # open_after 2: the first failing check only makes them pending...
        (broken,) = texts(slack)  # ...while the broken watch, failing since run 1, opens
        assert broken.startswith(
            f"[WARNING] {config_file}: prometheus watch BrokenWatch: configuration error: "
            "expr 'sum(rate(role_agent_last_run_success[5m])': Prometheus answered HTTP 400 "
            "bad_data: "
        )
        slack.messages.clear()
        second = run()
        opened = texts(slack)
        assert second["watch_errors"] == 1
        assert sorted(t.split(" | ")[0] for t in opened) == sorted(
            [
                "[CRITICAL] Role agent on pi-audio-01 failed its last run",
                "[CRITICAL] Role agent on pi-audio-02 failed its last run",
                "[WARNING] Circuit breaker to device dev-7 is open",
            ]
        )
        # the failure spike of the same device is inhibited by the open breaker: recorded, untold
        store = Store(config_file.parent / "state.sqlite")
        spike = store.incident(
            "prometheus/UpstreamDeviceFailuresSpike:deviceId=dev-7,reason=timeout"
        )
        store.close()
        assert spike is not None and spike.state == "firing"
        assert spike.inhibited_by == "prometheus/CircuitBreakerOpen:deviceId=dev-7"
        assert spike.signal.summary.endswith(
            "failed Fleet API calls to device dev-7 (timeout) in 5m"
        )

        message = next(m for m in slack.messages if "pi-audio-01 failed" in m["text"])
        blocks = json.dumps(message["blocks"])
        assert "1. ssh pi-audio-01" in blocks
        assert "sudo systemctl start role-agent.service" in blocks
        assert "https://wiki.fleet.example.org/runbooks/role-agent-failure" in blocks
        links = link_urls(message)
        explore = urlsplit(links["Logs (Grafana Explore)"])
        pane = json.loads(parse_qs(explore.query)["panes"][0])["a"]
        assert pane["queries"][0]["expr"] == '{service="role-agent", host="pi-audio-01"}'
        assert pane["datasource"] == "LOKI1"
        graph = links["Prometheus graph"]
        assert parse_qs(urlsplit(graph).query)["g0.expr"] == ["role_agent_last_run_success == 0"]
        assert graph.startswith(prometheus + "/graph?")  # no links.prometheus_url: the API's
        # the real server serves it (Debian's build redirects /graph to its classic UI)
        assert httpx.get(graph, timeout=5, follow_redirects=True).status_code == 200
        breaker = next(m for m in slack.messages if "Circuit breaker" in m["text"])
        pane = json.loads(
            parse_qs(urlsplit(link_urls(breaker)["Logs (Grafana Explore)"]).query)["panes"][0]
        )["a"]
        assert pane["queries"][0]["expr"] == '{service="fleet-api"} |= "dev-7"'

        # pi-audio-01 recovers: only its incident resolves
        slack.messages.clear()
        exporter.set("role_agent_last_run_success", 1, host="pi-audio-01")
        until(prometheus, "role_agent_last_run_success == 0", {"pi-audio-02": 0})
        run()
        run()
        (back,) = texts(slack)
        assert back.startswith("[RESOLVED after ")
        assert "] Role agent on pi-audio-01 failed its last run — now: recovered" in back

        # pi-audio-02 disappears from Prometheus: resolved as "no longer reported"
        slack.messages.clear()
        exporter.drop("role_agent_last_run_success", host="pi-audio-02")
        until(prometheus, "role_agent_last_run_success", {"pi-audio-01": 1})
        run()
        run()
        (gone,) = texts(slack)
        assert gone.startswith("[RESOLVED after ")
        assert "] Role agent on pi-audio-02 failed its last run — now: no longer reported" in gone

        # the metric vanishes entirely (node_exporter not scraped): the absence is a signal
        slack.messages.clear()
        exporter.drop("role_agent_last_run_success")
        until(prometheus, "role_agent_last_run_success", {})
        run()
        run()
        (absent,) = texts(slack)
        assert absent.startswith("[WARNING] No series of role_agent_last_run_success in Prometheus")
        assert "Status → Targets" in json.dumps(slack.messages[0]["blocks"], ensure_ascii=False)

    store = Store(config_file.parent / "state.sqlite")
    open_keys = sorted(i.key for i in store.incidents())
    store.close()
    assert open_keys == [
        "prometheus-errors:watch=BrokenWatch",
        "prometheus/CircuitBreakerOpen:deviceId=dev-7",
        "prometheus/RoleAgentFailure:absent=role_agent_last_run_success",
        "prometheus/UpstreamDeviceFailuresSpike:deviceId=dev-7,reason=timeout",
    ]


def link_urls(message: dict) -> dict[str, str]:
    """text → url of the `<url|text>` links in a Block Kit message, `&amp;` read back as Slack
    reads it."""
    found = {}
    for block in message["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        for part in text.split(" · "):
            if part.startswith("<") and "|" in part:
                url, label = part[1:].rstrip(">").rsplit("|", 1)
                found[label] = url.replace("&amp;", "&")
    return found
