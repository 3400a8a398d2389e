"""`fleet-alerting mcp --http` against what a stranger can send: a slow head or body is cut within
10 s, and a 500 MB body with the right token leaves the process's memory flat."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.attacks.app import head, refuses_500_mb_flat
from tests.attacks.slow import SlowClient, run_all
from tests.operator_fleet import fleet_server
from tests.servers import Server, free_port
from tests.test_mcp import MCP_TOKEN, write_config

pytestmark = pytest.mark.integration  # the real MCP server process, on loopback

AUTH = {"authorization": f"Bearer {MCP_TOKEN}"}


@dataclass
class Mcp:
    server: Server
    port: int


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mcp]:
    folder, port = tmp_path_factory.mktemp("mcp"), free_port()
    with fleet_server() as fleet:
        config = write_config(folder, fleet.url, port)
        argv = [sys.executable, "-m", "fleet_alerting.surfaces.cli", "mcp", "--http"]
        server = Server([*argv, "--config", str(config)], folder, lambda: _up(port), "mcp")
        try:
            yield Mcp(server, port)
        finally:
            server.stop()


def _up(port: int) -> bool:
    """Serving: a request without the token is refused."""
    return httpx.post(f"http://127.0.0.1:{port}/mcp", timeout=1).status_code == 401


def test_slow_heads_and_bodies_are_cut_within_the_deadlines(mcp: Mcp) -> None:
    partial_head = b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nauthoriz"
    stalled_body = head("/mcp", AUTH | {"content-length": "1000"}) + b'{"jsonrpc":'
    clients = {
        "head that stalls": SlowClient(mcp.port, partial_head),
        "head that trickles": SlowClient(mcp.port, partial_head, b"x" * 100),
        "body that stalls": SlowClient(mcp.port, stalled_body),
    }
    run_all(clients)
    assert clients["body that stalls"].answer.startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_500_mb_body_leaves_memory_flat(mcp: Mcp, chunked: bool) -> None:
    refuses_500_mb_flat(mcp.server, mcp.port, "/mcp", AUTH, chunked)
