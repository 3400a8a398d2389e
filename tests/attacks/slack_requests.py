"""Hostile variations of a valid signed Slack request, for both Slack endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.attacks.app import MB, slack_headers

TS, SIG = "x-slack-request-timestamp", "x-slack-signature"
Headers = dict[str, Any]
Edit = Callable[[Headers, bytes], tuple[Headers, bytes]]


def well_formed() -> Headers:
    """Signature headers that pass every check made before the body (only the body can fail)."""
    return {TS: str(int(time.time())), SIG: "v0=" + "0" * 64}


def resigned(body: bytes) -> Edit:
    """The request with `body`, signed as Slack would sign it."""
    return lambda _h, _b: (slack_headers(body), body)


def stale(age: int) -> Edit:
    def edit(_h: Headers, body: bytes) -> tuple[Headers, bytes]:
        return slack_headers(body, age=age), body

    return edit


# Requests to a Slack endpoint made from a valid signed one (headers, body): what each is answered.
SIGNED_REQUEST_CASES: dict[str, tuple[Edit, int]] = {
    "no signature headers": (lambda h, b: ({}, b), 401),
    "utf-8 superscript timestamp": (lambda h, b: (h | {TS: "²³".encode()}, b), 401),
    "latin-1 superscript timestamp": (lambda h, b: (h | {TS: b"\xb2\xb3"}, b), 401),
    "5,000-digit timestamp": (lambda h, b: (h | {TS: "9" * 5000}, b), 401),
    "negative timestamp": (lambda h, b: (h | {TS: "-1"}, b), 401),
    "non-ASCII signature": (lambda h, b: (h | {SIG: b"v0=" + b"\xe9" * 64}, b), 401),
    "utf-8 signature": (lambda h, b: (h | {SIG: ("v0=" + "é" * 64).encode()}, b), 401),
    "v1 signature": (lambda h, b: (h | {SIG: "v1=" + h[SIG][3:]}, b), 401),
    "short signature": (lambda h, b: (h | {SIG: "v0=abc"}, b), 401),
    "upper-case signature": (lambda h, b: (h | {SIG: h[SIG].upper()}, b), 401),
    "wrong secret": (lambda h, b: (slack_headers(b, secret="not-the-secret"), b), 401),
    "stale by 301 s": (stale(301), 401),
    "from 301 s ahead": (stale(-301), 401),
    "body altered": (lambda h, b: (h, b + b"&x=1"), 401),
    "Content-Length not a number": (lambda h, b: (h | {"content-length": "12abc"}, b), 400),
    "Content-Length of 30 digits": (lambda h, b: (h | {"content-length": "9" * 30}, b), 400),
    "Content-Length 500 MB, none sent": (
        lambda h, b: (h | {"content-length": str(500 * MB)}, b""),
        413,
    ),
    "header of 1 MiB": (lambda h, b: (h | {"x-junk": "j" * MB}, b), 400),
    "non-UTF-8 body, signed": (resigned(b"text=\xff\xfe\xfd"), 400),
    "non-UTF-8 body, unsigned": (lambda h, b: (h, b"text=\xff\xfe\xfd"), 400),
}
