"""A real HTTP server on a free loopback port, in a thread, answering with a plain function.

The SaaS we cannot reach (Slack, PagerDuty, Grafana OnCall) and the Fleet API are tested against
subclasses that speak their documented protocol and record what they received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeServer:
    """Subclasses override `handle`. `requests` records every request in arrival order."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with outer.lock:
                    outer.requests.append(request)
                    response = outer.handle(request)
                if response.delay:
                    threading.Event().wait(response.delay)
                body = response.body
                if isinstance(body, dict | list):
                    body = json.dumps(body)
                    response.headers.setdefault("content-type", "application/json")
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Scripted(FakeServer):
    """Answers from a list of responses in order (the last one repeats), e.g. 429 then 200."""

    def __init__(self, *responses: Response):
        super().__init__()
        self.script = list(responses) or [Response()]

    def handle(self, request: Request) -> Response:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]
