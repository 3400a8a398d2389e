"""A transport error names scheme://host:port, never the path, query or userinfo: an IPv6
literal keeps its brackets; Alertmanager's message names its URL once."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from fleet_alerting.http.errors import AdapterError, transport_error
from fleet_alerting.sources.alertmanager.client import Alertmanager


def error_for(url: str, system: str = "Prometheus") -> str:
    request = httpx.Request("GET", url)
    return str(transport_error(httpx.ConnectError("refused", request=request), system))


def test_an_ipv6_host_keeps_its_brackets() -> None:
    said = error_for("http://[::1]:9090/api/v1/query?query=up")
    assert "at http://[::1]:9090 " in said, said


def test_control_a_name_host_port_and_no_path_or_userinfo() -> None:
    said = error_for("https://user:pw@prom.example:8443/secret/path?token=abc")
    assert said == "Prometheus unreachable at https://prom.example:8443 (ConnectError)"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_alertmanager_names_its_url_once() -> None:
    """The real client against a closed loopback port."""
    url = f"http://127.0.0.1:{closed_port()}"

    async def ask() -> str:
        async with httpx.AsyncClient(timeout=2) as client:
            with pytest.raises(AdapterError) as raised:
                await Alertmanager(client, url).status()
        return str(raised.value)

    said = asyncio.run(ask())
    assert said.count(url.removeprefix("http://")) == 1, said
