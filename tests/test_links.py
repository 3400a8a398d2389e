from __future__ import annotations

import json
import random
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest

from fleet_alerting.core.links import (
    LinksConfig,
    explore_url,
    json_string_body,
    logql_selector,
    percent_encoded,
    prometheus_graph_url,
)

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


# every ASCII character (controls, DEL, space, "/", "%", quotes, backslash) and some beyond
_ALPHABET = [chr(c) for c in range(128)] + ["é", "\u2028", "\x85", "😀", "ć"]


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    fixed = ["", " ", "/", "pi-00001", 'host="pi a/b"', "a+b%20c", "\x7f", "é/ü", 'x\\y"z']
    return fixed + [
        "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 16))) for _ in range(count)
    ]


@pytest.mark.parametrize("plus", [False, True])
def test_percent_encoded_is_urllibs(plus: bool) -> None:
    """The opening run's links are quoted by a table: byte for byte what urllib writes."""
    expected = quote_plus if plus else quote
    for text in _texts(7, 20_000):
        assert percent_encoded(text, plus=plus) == expected(text), repr(text)


def test_json_string_body_is_the_encoders() -> None:
    for text in _texts(11, 20_000):
        assert json_string_body(text) == json.dumps(text)[1:-1], repr(text)
