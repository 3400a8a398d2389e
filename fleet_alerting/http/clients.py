"""One httpx client per destination, shared by every run in the process.

A new `httpx.AsyncClient` loads the CA bundle (16-19 ms of CPU) and opens new connections; under
`serve` five watches run every minute for months in one process. So a run asks `shared_client`
for its destination's client: the first run in an event loop makes it, later runs reuse it and its
kept-alive connections. Clients are never closed by the runs that use them. Every client shares
one TLS context, made once per process. A client belongs to the event loop it was made in (its
connections do): when that loop is closed (a plain run ends, a test's `asyncio.run` returns) its
clients are dropped at the next call.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref

import httpx

MAX_PER_LOOP = 32  # destinations one process talks to; more: the oldest client is closed

_lock = threading.Lock()
_tls: ssl.SSLContext | None = None
_clients: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], dict[object, httpx.AsyncClient]]]
_clients = {}
_closing: set[asyncio.Task[None]] = set()


def tls_context() -> ssl.SSLContext:
    """The process's TLS context (the CA bundle loaded once; SSL_CERT_FILE honoured)."""
    global _tls
    with _lock:
        if _tls is None:
            _tls = httpx.create_ssl_context()
        return _tls


def shared_client(destination: str, timeout: float | None = 5.0) -> httpx.AsyncClient:
    """The client for `destination` (an origin such as Alertmanager's URL, or a name such as
    "notifiers") with this default timeout (httpx's own by default; None: none), in the
    running event loop."""
    loop = asyncio.get_running_loop()
    verify = tls_context()
    with _lock:
        clients = _of_loop(loop)
        key = (destination, timeout)
        client = clients.get(key)
        if client is None or client.is_closed:
            if len(clients) >= MAX_PER_LOOP:
                oldest = clients.pop(next(iter(clients)))
                closing = loop.create_task(oldest.aclose())
                _closing.add(closing)
                closing.add_done_callback(_closing.discard)
            client = clients[key] = httpx.AsyncClient(timeout=timeout, verify=verify)
        return client


def _of_loop(loop: asyncio.AbstractEventLoop) -> dict[object, httpx.AsyncClient]:
    for ident, (ref, _) in list(_clients.items()):
        gone = ref()
        if gone is None or gone.is_closed():
            del _clients[ident]  # its connections died with it
    ref, clients = _clients.setdefault(id(loop), (weakref.ref(loop), {}))
    return clients
