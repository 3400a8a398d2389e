"""Done when: probing through blackbox_exporter keeps its connections to the exporter, and reads
only the probe metrics of its answer — exactly what the full exposition parser reads, or, for an
answer of any other form, the full parser decides (and names what is wrong)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet_alerting.config.schema import BlackboxConfig
from fleet_alerting.core.signals import Severity
from fleet_alerting.sources.blackbox.client import (
    PROBE_METRICS,
    ProbeTarget,
    parse_exporter,
    probe_all,
    probe_values,
)
from tests.fakes.proxy import CountingProxy
from tests.test_blackbox import Targets, blackbox_exporter, targets  # noqa: F401 -- fixtures

TARGET = ProbeTarget("api", "https://api.test/healthz", Severity.critical)
ODD = {
    "garbage": "garbage {{{ not exposition format",
    "empty": "",
    "labelled probe_success": 'probe_success{module="http_2xx"} 1\n',
    "no probe_success": "probe_http_status_code 200\n",
    "a value with underscores": "probe_success 1_0\n",
    "a stray line among good ones": "probe_success 1\n<html>\nprobe_duration_seconds 0.1\n",
    "HELP only": "# HELP probe_success Displays whether or not the probe was a success\n",
}
PLAIN = {
    "success": "probe_success 1\nprobe_http_status_code 200\nprobe_duration_seconds 0.0123\n",
    "failure, NaN duration": (
        "probe_success 0\nprobe_http_status_code 0\nprobe_duration_seconds NaN\n"
    ),
    "timestamps and exponents": "probe_success 1 1700000000000\nprobe_duration_seconds 1.5e-3\n",
    "cert expiry": "probe_success 1\nprobe_ssl_earliest_cert_expiry 1.9e9\n",
}


def full_values(body: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            values.setdefault(sample.name, sample.value)
    return {k: v for k, v in values.items() if k in PROBE_METRICS}


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


@pytest.mark.parametrize("body", PLAIN.values(), ids=PLAIN.keys())
def test_a_plain_answer_is_read_by_hand_as_the_full_parser_reads_it(body: str) -> None:
    values = probe_values(body)
    assert values is not None and same(values, full_values(body))


@pytest.mark.parametrize("body", ODD.values(), ids=ODD.keys())
def test_any_other_answer_is_left_to_the_full_parser(body: str) -> None:
    assert probe_values(body) is None
    result = parse_exporter(TARGET, body)
    try:
        expected = full_values(body)
    except ValueError:
        assert not result.observed and result.error.startswith("unparseable blackbox_exporter")
        return
    assert result.observed == ("probe_success" in expected)


@pytest.mark.integration
def test_a_real_exporters_answer_is_read_by_hand(
    targets: Targets,  # noqa: F811
    blackbox_exporter: str,  # noqa: F811
) -> None:
    for path in ("/ok", "/broken"):
        query = urlencode({"module": "http_2xx", "target": f"{targets.url}{path}"})
        body = httpx.get(f"{blackbox_exporter}/probe?{query}", timeout=10).text
        values = probe_values(body)
        assert values is not None and same(values, full_values(body))


@pytest.mark.integration
def test_probes_through_the_exporter_share_kept_alive_connections(
    targets: Targets,  # noqa: F811
    blackbox_exporter: str,  # noqa: F811
) -> None:
    probes = [ProbeTarget(f"t{i}", f"{targets.url}/ok?i={i}", Severity.warning) for i in range(40)]

    async def probe_through_proxy() -> tuple[int, list[bool]]:
        proxy = CountingProxy(blackbox_exporter)
        server = await asyncio.start_server(proxy.relay, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = BlackboxConfig(
            mode="exporter",
            exporter_url=f"http://127.0.0.1:{port}",
            timeout=timedelta(seconds=5),
            concurrency=4,
        )
        async with server:
            results = await probe_all(probes, config)
        return proxy.connections, [r.ok for r in results]

    connections, oks = asyncio.run(probe_through_proxy())
    assert all(oks)
    assert connections <= 4  # one per concurrent probe at most, not one per probe (40)
