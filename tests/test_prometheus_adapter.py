"""The Prometheus adapter against a local server speaking the HTTP API (error answers, auth,
warnings, slow and flaky answers), and a canary proving the bearer token never leaks."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.http.errors import AdapterError
from fleet_alerting.sources.prometheus.client import (
    PrometheusClient,
    PrometheusError,
    QueryResult,
    query_watches,
)
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import SlackWebhookServer

CANARY = "canary-token-5f1e2d9c"
CANARY2 = "second-canary-77aa01"


def vector(*series: tuple[dict[str, str], str]) -> dict:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1.7e9, v]} for m, v in series],
        },
    }


class FakePrometheus(FakeServer):
    """GET /api/v1/query as Prometheus answers it; `auth` is the Authorization header it wants
    (a wrong one gets 401 quoting the header it received, as a careless proxy might)."""

    def __init__(self, auth: str | None = None) -> None:
        super().__init__()
        self.auth = auth
        self.flaky_left = 1

    def handle(self, request: Request) -> Response:
        if request.path != "/api/v1/query":
            return Response(404, "404 page not found")
        got = request.headers.get("authorization")
        if self.auth and got != self.auth:
            return Response(401, f"unauthorized: {got}")
        query = request.query["query"][0]
        if query == "up == 0":
            return Response(200, vector(({"instance": "a:9100", "job": "node"}, "0")))
        if query == "count by (instance) (up)":
            return Response(
                200, vector(({"instance": "a:9100"}, "1"), ({"instance": "b:9100"}, "1"))
            )
        if query == "warned":
            body = vector(({"host": "h"}, "1")) | {"warnings": ["results may be partial"]}
            return Response(200, body)
        if query == "scalar(1)":
            return Response(
                200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}}
            )
        if query == "up[5m]":
            return Response(
                200, {"status": "success", "data": {"resultType": "matrix", "result": []}}
            )
        if query == "flaky" and self.flaky_left:
            self.flaky_left -= 1
            return Response(503, {"status": "error", "errorType": "unavailable", "error": "busy"})
        if query == "flaky":
            return Response(200, vector(({"host": "h"}, "2")))
        if query == "down":
            return Response(502, "<html>Bad Gateway</html>")
        if query == "slow":
            return Response(200, vector(), delay=2)
        if query == "echo":  # a broken expression, answered with the request's credentials quoted
            error = f"1:5: parse error: unexpected end of input (auth {got})"
            return Response(400, {"status": "error", "errorType": "bad_data", "error": error})
        if query == "html":
            return Response(200, "<html>login</html>", {"content-type": "text/html"})
        return Response(
            400,
            {"status": "error", "errorType": "bad_data", "error": f"1:1: parse error: {query}"},
        )


@pytest.fixture(scope="module")
def prom() -> Iterator[FakePrometheus]:
    with FakePrometheus() as server:
        yield server


def query(url: str, expr: str, timeout: float = 2, auth: httpx.Auth | None = None) -> QueryResult:
    async def go() -> QueryResult:
        async with httpx.AsyncClient(auth=auth) as http:
            return await PrometheusClient(http, url, timeout).query(expr)

    return asyncio.run(go())


def test_vector_and_warnings(prom: FakePrometheus) -> None:
    result = query(prom.url, "up == 0")
    assert result.result_type == "vector"
    assert [(s.labels["instance"], s.value) for s in result.samples] == [("a:9100", 0.0)]
    assert query(prom.url, "warned").warnings == ["results may be partial"]
    assert prom.requests[0].query["timeout"] == ["2s"]


@pytest.mark.parametrize(
    ("expr", "permanent", "error_type", "message"),
    [
        ("sum(up", True, "bad_data", "HTTP 400 bad_data: 1:1: parse error: sum(up"),
        ("up[5m]", True, "bad_data", "the expression returns a matrix"),
        ("scalar(1)", True, "bad_data", "the expression returns a scalar"),
        ("html", True, None, "something other than API JSON"),
        ("down", False, None, "HTTP 502: <html>Bad Gateway</html>"),
    ],
)
def test_typed_errors(
    prom: FakePrometheus, expr: str, permanent: bool, error_type: str | None, message: str
) -> None:
    with pytest.raises(PrometheusError) as caught:
        query(prom.url, expr)
    assert (caught.value.permanent, caught.value.error_type) == (permanent, error_type)
    assert message in str(caught.value)


def test_retryable_answer_is_tried_again(prom: FakePrometheus) -> None:
    before = len(prom.requests)
    assert query(prom.url, "flaky").samples[0].value == 2.0
    assert len(prom.requests) - before == 2


def test_timeout_is_retryable(prom: FakePrometheus) -> None:
    with pytest.raises(AdapterError) as caught:
        query(prom.url, "slow", timeout=0.2)
    assert not caught.value.permanent and "Prometheus timed out" in str(caught.value)


def test_basic_auth_by_secret_reference(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    wanted = "Basic " + base64.b64encode(b"grafana:hunter2").decode()
    with FakePrometheus(auth=wanted) as server:
        config = PrometheusConfig.model_validate(
            {
                "url": server.url,
                "basic_auth": {"username": "grafana", "password": {"file": str(tmp_path / "pw")}},
                "default_watches": False,
            }
        )
        watch = WatchConfig(
            name="Down", expr="up == 0", key_labels=["instance"], metric="up", summary="s"
        )
        (outcome,) = asyncio.run(query_watches(config, [watch]))
    assert outcome.error is None
    assert [s.labels["instance"] for s in outcome.firing] == ["a:9100"]
    assert sorted(s.labels["instance"] for s in outcome.present or []) == ["a:9100", "b:9100"]
    assert server.requests[-1].headers["authorization"] == wanted


def test_missing_secret_is_an_error_of_every_watch(tmp_path: Path) -> None:
    config = PrometheusConfig(
        url="http://127.0.0.1:9", bearer_token={"file": tmp_path / "absent"}, timeout=timedelta(1)
    )
    watches = [WatchConfig(name="A", expr="up", summary="s")]
    (outcome,) = asyncio.run(query_watches(config, watches))
    assert outcome.permanent and outcome.error.startswith("credentials: cannot read secret file")


def write_config(path: Path, prometheus: str, slack: str) -> None:
    (path.parent / "prom.token").write_text(CANARY + "\n")
    (path.parent / "slack.url").write_text(f"{slack}/services/T000/B000/XXXX\n")
    now = {"open_after": 1, "resolve_after": 1}
    watch = {"key_labels": ["instance"], "summary": "{{ $labels.instance }} is down"}
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "slack": {"webhook": {"file": "slack.url"}}},
        "policies": {"warning": now, "critical": {"page": [], "mirror": False}},  # Slack only
        "prometheus": {
            "url": prometheus,
            "bearer_token": {"file": "prom.token"},
            "default_watches": False,
            "watches": [
                {"name": "TargetDown", "expr": "up == 0", **watch},
                {"name": "Echo", "expr": "echo", **watch},
                {"name": "Partial", "expr": "warned", "key_labels": ["host"], "summary": "s"},
            ],
        },
    }
    path.write_text(yaml.safe_dump(config))


@pytest.mark.integration
def test_canary_bearer_token_never_leaks(prefect_api: str, config_file: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    from fleet_alerting.flows.watches import prometheus_watches

    with FakePrometheus(auth=f"Bearer {CANARY}") as prom, SlackWebhookServer() as slack:
        write_config(config_file, prom.url, slack.url)
        summary = asyncio.run(prometheus_watches(str(config_file)))
        # with a wrong token, the 401 (quoting the header) is an error too
        (config_file.parent / "prom.token").write_text(CANARY2 + "\n")
        second = asyncio.run(prometheus_watches(str(config_file)))
    assert second["watch_errors"] == 3
    assert summary["watch_errors"] == 1 and summary["notifications_sent"] == 3
    assert {r.headers["authorization"] for r in prom.requests} == {
        f"Bearer {CANARY}",
        f"Bearer {CANARY2}",
    }
    sent = repr(slack.messages)
    assert "TargetDown" in sent or "a:9100 is down" in sent
    assert "(auth Bearer ***)" in sent  # the echoed token was masked before it left
    assert "HTTP 401: unauthorized: Bearer ***" in sent
    # the same 401 of every watch is one message naming them all
    assert sum("HTTP 401" in m["text"] for m in slack.messages) == 1
    assert "prometheus watches TargetDown, Echo, Partial: configuration error" in sent
    assert CANARY not in sent and CANARY2 not in sent
    for stored in config_file.parent.glob("state.sqlite*"):
        data = stored.read_bytes()
        assert CANARY.encode() not in data and CANARY2.encode() not in data

    async def from_prefect() -> str:
        from prefect.client.schemas.sorting import ArtifactSort, LogSort

        APILogHandler().flush()
        async with get_client() as client:  # the newest: other tests share this Prefect server
            logs = await client.read_logs(limit=200, sort=LogSort.TIMESTAMP_DESC)
            artifacts = await client.read_artifacts(limit=200, sort=ArtifactSort.CREATED_DESC)
        return repr([log.message for log in logs]) + repr([a.data for a in artifacts])

    seen = asyncio.run(from_prefect())
    assert "watch Echo: configuration error" in seen  # the logs and artifacts were read
    assert "watch Partial: Prometheus warning: results may be partial" in seen
    assert CANARY not in seen and CANARY2 not in seen


def test_an_answer_with_a_byte_order_mark_is_read() -> None:
    """orjson reads plain UTF-8 only; a proxy adding a BOM must not make Prometheus "not API
    JSON"."""
    from fleet_alerting.sources.prometheus.client import parse_response

    answer = {"status": "success", "data": {"resultType": "vector", "result": []}}
    answer["data"]["result"] = [{"metric": {"host": "pi-01"}, "value": [1764980000.5, "0"]}]
    body = "\ufeff" + json.dumps(answer)
    request = httpx.Request("GET", "http://prometheus:9090/api/v1/query")
    result = parse_response(httpx.Response(200, content=body.encode(), request=request))
    assert [(s.labels, s.value) for s in result.samples] == [({"host": "pi-01"}, 0.0)]
