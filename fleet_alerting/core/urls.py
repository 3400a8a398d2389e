"""What a URL in the config may be: http(s), a host, a port 1-65535, nothing that needs quoting,
and no credentials — a password or token in a URL is an inline secret, printed by
`check-config`, quoted by HTTP libraries in their errors and kept in shell histories.

Messages never quote the value: it might hold the very secret they refuse."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from pydantic import AfterValidator

# query parameter names (lower case, without - _ . and spaces) that carry a credential
_CREDENTIAL_NAMES = re.compile(
    r"(pass|passwd|password|pwd|secret|token|key|apikey|auth|authorization|credentials?|sig"
    r"|signature|session|sessionid)\Z"
)
_BLANK = re.compile(r"[\s\x00-\x1f\x7f]")
_DECODE_ROUNDS = 5  # pass%2577ord is pass%77ord is password


def split_url(value: str, expected: str) -> SplitResult:
    """`urlsplit` with the port checked (1-65535) and no blanks or control characters;
    ValueError(`expected`) otherwise."""
    if _BLANK.search(value):
        raise ValueError(f"{expected} (no spaces or control characters)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"{expected} (port 1-65535)") from None
    if port == 0:
        raise ValueError(f"{expected} (port 1-65535)")
    return parts


def credential_in_query(query: str) -> bool:
    """A query parameter named like a password or token, however its name is percent-encoded."""
    for name, _value in parse_qsl(query, keep_blank_values=True):
        for _ in range(_DECODE_ROUNDS):
            name, before = unquote(name), name
            if name == before:
                break
        if _CREDENTIAL_NAMES.search(re.sub(r"[-_.\s]", "", name.lower())):
            return True
    return False


INLINE_CREDENTIALS = (
    "credentials in a URL (user:password@ or a password/token query parameter) are an inline "
    "secret: remove them and give the secret by reference"
)


def check_http_url(value: str) -> str:
    """An http(s) URL with a host and without credentials; ValueError naming what is wrong."""
    parts = split_url(value, "expected an http:// or https:// URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(INLINE_CREDENTIALS)
    if credential_in_query(parts.query):
        raise ValueError(INLINE_CREDENTIALS)
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url)]
