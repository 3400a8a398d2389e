"""`fleet-alerting demo`: the product working with no Fleet to reach, in about a minute.

It serves a stand-in Fleet API and two players on loopback, takes the shipped example config with
those targets and short windows (page after 10 s instead of 5 min), and runs the blackbox-probe
flow round after round: the API fails, an incident opens, Slack is told, PagerDuty is paged; the
API recovers, the page resolves. Notifications go to a local outbox file, printed at the end.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.incidents import State
from fleet_alerting.store.database import Store


class _Fleet(BaseHTTPRequestHandler):
    api_healthy = True

    def do_GET(self) -> None:
        healthy = self.path != "/api/healthz" or _Fleet.api_healthy
        body = json.dumps({"status": "ok" if healthy else "upstream database unreachable"})
        self.send_response(200 if healthy else 503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


def demo_config(example: Path, base_url: str, workdir: Path) -> Path:
    config = yaml.safe_load(example.read_text())
    config["state"] = {"path": str(workdir / "state.sqlite")}
    config["notify"] = {"dry_run": True, "outbox_file": str(workdir / "outbox.jsonl")}
    config["policies"]["critical"] |= {"page_after": "10s", "repeat": None}
    api, ui = config["blackbox"]["targets"][:2]
    api["url"] = f"{base_url}/api/healthz"
    ui["url"] = f"{base_url}/"
    players = [
        {"name": f"pi-audio-0{i} /healthz", "url": f"{base_url}/healthz?device=pi-audio-0{i}"}
        for i in (1, 2)
    ]
    config["blackbox"]["targets"] = [api, ui, *players]
    config["blackbox"]["file_sd"] = []
    path = workdir / "demo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_demo(
    example_config: str,
    rounds_seconds: float = 3.0,
    run_round: Callable[[str], Awaitable[Any]] | None = None,
) -> int:
    """`run_round(config_path)` runs the probe once (the CLI passes `run`'s way: recorded in a
    Prefect server if there is one, else plainly); by default the flow as a plain call."""
    from fleet_alerting.flows.watches import blackbox_probe

    run_round = run_round or (lambda path: blackbox_probe.fn(config_path=path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fleet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workdir = Path(tempfile.mkdtemp(prefix="fleet-alerting-demo-"))
    config_path = demo_config(
        Path(example_config), f"http://127.0.0.1:{server.server_port}", workdir
    )
    print(f"demo: config {config_path}, targets on 127.0.0.1:{server.server_port}\n")
    store = Store(load_config(config_path).state)

    def paged() -> bool:
        return any(i.state == State.paged for i in store.unresolved().values())

    def probe_round(why: str) -> None:
        started = time.monotonic()
        summary = asyncio.run(run_round(str(config_path)))
        if isinstance(summary, dict):
            summary = summary.get("summary", summary)
        print(f"\n>>> {why}: {summary}\n", flush=True)
        time.sleep(max(0.0, rounds_seconds - (time.monotonic() - started)))

    _Fleet.api_healthy = False  # fails until opened (2 checks) and paged (after 10 s)
    probe_round("API starts failing")
    for _ in range(12):
        if paged():
            break
        probe_round("API still failing")
    _Fleet.api_healthy = True  # recovers: resolved after 2 passing checks
    probe_round("API recovered")
    probe_round("API still healthy")
    server.shutdown()
    show(config_path)
    print(
        '\nNext (README, "Going live"): copy config/going-live.example.yaml, create the secret '
        "files it names,\nput in your URLs (Slack, PagerDuty, the Fleet), then run "
        "`fleet-alerting check-config`,\n`fleet-alerting notify-test --to all` and "
        "`fleet-alerting serve --config YOUR.yaml`."
    )
    return 0


def show(config_path: Path) -> None:
    config = load_config(config_path)
    print("=" * 78 + "\nNotifications (local outbox, as Slack and PagerDuty would receive them):")
    for line in config.notify.outbox_file.read_text().splitlines():
        sent = json.loads(line)
        print(f"  {sent['at'][11:19]}  {sent['channel']:<12} {sent['kind']:<9} {sent['text']}")
    print(f"  (full payloads: {config.notify.outbox_file})\n\nIncidents:")
    now = utcnow()
    for incident in Store(config.state).incidents(include_resolved=True):
        lasted = format_duration(incident.duration(now))
        print(f"  {incident.state:<9} {incident.severity:<8} {lasted:>7}  {incident.key}")
