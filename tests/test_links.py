from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from fleet_alerting.core.links import LinksConfig, explore_url, logql_selector, prometheus_graph_url

LINKS = LinksConfig(
    grafana_url="https://grafana.example/",
    loki_datasource_uid="P8E80",
    prometheus_url="http://p:9090",
)


def test_explore_url_round_trip() -> None:
    logql = logql_selector(service="role-agent", host='pi-"audio"-01') + ' |= "a&b+ć %20"'
    url = explore_url(LINKS, logql)
    parts = urlsplit(url)
    assert parts.path == "/explore"
    pane = json.loads(parse_qs(parts.query)["panes"][0])["a"]
    assert pane["queries"][0]["expr"] == logql
    assert logql.startswith('{service="role-agent", host="pi-\\"audio\\"-01"}')
    assert pane["queries"][0]["datasource"] == {"type": "loki", "uid": "P8E80"}


def test_no_grafana_no_link() -> None:
    assert explore_url(LinksConfig(), '{host="x"}') is None
    assert prometheus_graph_url(LinksConfig(), "up") is None


def test_prometheus_graph_url_round_trip() -> None:
    url = prometheus_graph_url(LINKS, 'circuit_breaker_state{deviceId="a b"} == 1')
    assert parse_qs(urlsplit(url).query)["g0.expr"] == [
        'circuit_breaker_state{deviceId="a b"} == 1'
    ]
