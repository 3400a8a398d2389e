"""The MCP server through the official SDK's client: stdio (tools listed and called, the write
tool only with the write scope) and streamable HTTP (its own bearer token, nothing else)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import httpx2
import pytest
import yaml
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from fleet_alerting.surfaces.mcp_actions import ACTION_TOOLS
from tests.operator_fleet import CORRELATION, TOKEN, fleet_server
from tests.servers import free_port, wait_until

ROOT = Path(__file__).parents[1]
MCP_TOKEN = "mcp-bearer-CANARY-9090"
READ_TOOLS = {
    "health_summary",
    "fleet_state",
    "logs_query",
    "recent_events",
    "open_incidents",
    "list_silences",
}


def write_config(folder: Path, fleet_url: str, port: int = 8765) -> Path:
    (folder / "fleet.token").write_text(TOKEN)
    (folder / "mcp.token").write_text(MCP_TOKEN)
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite"},
                "notify": {"dry_run": True},  # no channel configured: fail closed otherwise
                "links": {"grafana_url": "https://grafana.example"},
                "fleet_api": {"url": fleet_url, "token": {"file": "fleet.token"}},
                "operators": {"mcp": {"token": {"file": "mcp.token"}, "port": port}},
            }
        )
    )
    return path


def stdio(config: Path, *extra: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "fleet_alerting.surfaces.cli", "mcp", "--config", str(config), *extra],
        cwd=ROOT,
        env=env,
    )


def structured(result) -> object:
    assert not result.is_error, result
    return result.structured_content or json.loads(result.content[0].text)


async def read_tools(config: Path) -> dict[str, object]:
    async with stdio_client(stdio(config)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        calls = {
            "health_summary": {},
            "fleet_state": {"device": "pi-audio-02"},
            "logs_query": {"correlation_id": CORRELATION},
            "recent_events": {"limit": 10},
            "open_incidents": {},
        }
        results = {
            name: structured(await session.call_tool(name, args)) for name, args in calls.items()
        }
        return {"names": names, **results}


def test_stdio_read_only_tools(tmp_path: Path) -> None:
    with fleet_server() as fleet:
        got = asyncio.run(read_tools(write_config(tmp_path, fleet.url)))
    assert got["names"] == READ_TOOLS  # no trigger_deployment without the write scope
    assert got["health_summary"]["status"] == "degraded"
    assert [d["id"] for d in got["fleet_state"]["devices"]] == ["pi-audio-02"]
    logs = got["logs_query"]
    assert [e["correlationId"] for e in logs["logs"]["entries"]] == [CORRELATION]
    assert logs["grafana_explore_url"].startswith("https://grafana.example/explore?")
    events = got["recent_events"]["result"]
    assert events[0]["correlationId"] == "14d6f1fd-4c9f-4e8d-8621-9254cb59aa81"
    assert got["open_incidents"]["result"] == []
    assert TOKEN not in json.dumps({k: v for k, v in got.items() if k != "names"})


async def write_tools(config: Path) -> tuple[set[str], str]:
    params = stdio(config, "--write")
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        result = await session.call_tool(
            "trigger_deployment", {"deployment": "blackbox-probe/scheduled"}
        )
        return names, result.content[0].text


def test_write_scope_offers_the_trigger(tmp_path: Path) -> None:
    with fleet_server() as fleet:
        names, answer = asyncio.run(write_tools(write_config(tmp_path, fleet.url)))
    assert names == READ_TOOLS | {"trigger_deployment"} | ACTION_TOOLS  # incident actions: #13
    assert "No Prefect server" in answer  # a clear answer, not a crash, when none is reachable


async def http_tools(url: str) -> set[str]:
    headers = {"Authorization": f"Bearer {MCP_TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return {tool.name for tool in (await session.list_tools()).tools}


@pytest.mark.integration
def test_http_requires_its_own_token(tmp_path: Path) -> None:
    port = free_port()
    with fleet_server() as fleet:
        config = write_config(tmp_path, fleet.url, port)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleet_alerting.surfaces.cli",
                "mcp",
                "--http",
                "--config",
                config,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            wait_until(lambda: httpx.post(url, timeout=1).status_code == 401, 120, "mcp http")
            assert httpx.post(url, headers={"Authorization": "Bearer nope"}).status_code == 401
            fleet_token = {"Authorization": f"Bearer {TOKEN}"}
            assert httpx.post(url, headers=fleet_token).status_code == 401
            assert asyncio.run(http_tools(url)) == READ_TOOLS
        finally:
            proc.terminate()
            proc.wait(10)


# the write tool checks parameters; HTTP refuses before the app reads ------------------------------
@pytest.mark.parametrize(
    "deployment, parameters, refusal",
    [
        (
            "zigbee-probe/scheduled",
            {"config_path": "/etc/passwd"},
            "config_path: must stay inside the configuration directory",
        ),
        (
            "zigbee-probe/scheduled",
            {"config_path": "../../etc/passwd"},
            "config_path: must stay inside the configuration directory",
        ),
        ("zigbee-probe/scheduled", {"config_path": 7}, "config_path: not of the expected type"),
        (
            "zigbee-probe/scheduled",
            {"shell": "rm -rf /"},
            "unknown parameter (known: config_path)",
        ),
        ("quarterly-audit/quarterly", {}, "a required parameter is missing"),
        ("no-such-flow/x", {}, 'No flow \\"no-such-flow\\". Known: '),  # as JSON
    ],
)
def test_trigger_parameters_are_checked_before_anything_runs(
    tmp_path: Path, deployment: str, parameters: dict, refusal: str
) -> None:
    from fleet_alerting.config import load_config
    from fleet_alerting.surfaces.mcp_server import build_server

    called: list = []

    async def trigger(name: str, params: dict, out) -> int:
        called.append((name, params))
        return 0

    with fleet_server() as fleet:
        server = build_server(
            load_config(write_config(tmp_path, fleet.url)), write=True, trigger=trigger
        )
        answer = asyncio.run(
            server.call_tool(
                "trigger_deployment", {"deployment": deployment, "parameters": parameters}
            )
        )
    text = json.dumps(answer, default=str)
    assert "refused, nothing was triggered" in text and refusal in text
    assert called == []


def test_trigger_paths_are_made_absolute_inside_the_config_dir(tmp_path: Path) -> None:
    from fleet_alerting.config import load_config
    from fleet_alerting.surfaces.mcp_server import build_server

    called: list = []

    async def trigger(name: str, params: dict, out) -> int:
        called.append((name, params))
        out("created flow run brave-otter")
        return 0

    with fleet_server() as fleet:
        config = write_config(tmp_path, fleet.url)
        server = build_server(load_config(config), write=True, trigger=trigger)
        asyncio.run(
            server.call_tool(
                "trigger_deployment",
                {"deployment": "zigbee-probe/x", "parameters": {"config_path": "config.yaml"}},
            )
        )
    assert called == [("zigbee-probe/x", {"config_path": str(config.resolve())})]


@pytest.mark.integration
def test_http_refuses_big_or_malformed_bodies_before_reading(tmp_path: Path) -> None:
    import socket

    port = free_port()
    with fleet_server() as fleet:
        config = write_config(tmp_path, fleet.url, port)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleet_alerting.surfaces.cli",
                "mcp",
                "--http",
                "--config",
                config,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/mcp"

        def raw(head: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(head)
                return sock.recv(4096)

        auth = f"authorization: Bearer {MCP_TOKEN}\r\n".encode()
        try:
            wait_until(lambda: httpx.post(url, timeout=1).status_code == 401, 120, "mcp http")
            big = b"POST /mcp HTTP/1.1\r\nhost: x\r\n" + auth + b"content-length: 419430400\r\n\r\n"
            assert raw(big).startswith(b"HTTP/1.1 413")  # declared 400 MB, none sent
            nobody = b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 419430400\r\n\r\n"
            assert raw(nobody).startswith(b"HTTP/1.1 401")
            latin = b"POST /mcp HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xe9\xe9\r\n\r\n"
            assert raw(latin).startswith(b"HTTP/1.1 401")
        finally:
            proc.terminate()
            proc.wait(10)
