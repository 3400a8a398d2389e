"""Secrets by reference: a file (the Fleet way), an environment variable or a Prefect Secret block.

A resolved secret is a `pydantic.SecretStr`, so it prints as '**********' in logs, reprs and
exceptions. Every resolved value is also registered with `redact()`, the last line of defence for
text that leaves the process (error messages of HTTP libraries quote URLs, and webhook URLs are
secrets).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

_KNOWN_SECRETS: set[str] = set()
# a secret file holds a token, a key or a URL: more is a wrong path (a log, a device)
MAX_SECRET_FILE_BYTES = 64 * 1024
# an encoded form shorter than this would mask ordinary words; the value itself is always masked
_MIN_ENCODED = 6


class SecretError(Exception):
    """A secret reference that cannot be resolved; names the reference, never the value."""


class SecretRef(BaseModel):
    """Exactly one of `file`, `env`, `prefect_secret`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    env: str | None = None
    prefect_secret: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "secrets are given by reference, never inline: use {file: PATH}, {env: NAME} "
                "or {prefect_secret: BLOCK}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("file", "env", "prefect_secret") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env, prefect_secret")
        return self

    def describe(self) -> str:
        if self.file:
            return f"secret file {self.file}"
        if self.env:
            return f"environment variable {self.env}"
        return f"Prefect Secret block {self.prefect_secret!r}"

    def resolve(self) -> SecretStr:
        value = self._read().strip()
        if not value:
            raise SecretError(f"{self.describe()} is empty")
        register(value)
        return SecretStr(value)

    async def aresolve(self) -> SecretStr:
        """`resolve` for async code: a Prefect block is loaded without blocking the loop."""
        if not self.prefect_secret:
            return self.resolve()
        from prefect.blocks.system import Secret

        try:
            block = await Secret.aload(self.prefect_secret)
        except Exception as exc:
            raise SecretError(f"cannot load {self.describe()}: {type(exc).__name__}") from None
        value = str(block.get()).strip()
        if not value:
            raise SecretError(f"{self.describe()} is empty")
        register(value)
        return SecretStr(value)

    def problem(self) -> str | None:
        """Why a file or env reference would not resolve (None if it would), without reading
        more than needed and never quoting the value. Prefect blocks: see `check-config`."""
        if self.prefect_secret:
            return None
        try:
            self.resolve()
        except SecretError as exc:
            return str(exc)
        return None

    def _read(self) -> str:
        if self.file:
            try:
                return read_small_file(self.file, MAX_SECRET_FILE_BYTES).decode()
            except OSError as exc:
                raise SecretError(f"cannot read {self.describe()}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise SecretError(f"cannot read {self.describe()}: not UTF-8 text") from None
        if self.env:
            if self.env not in os.environ:
                raise SecretError(f"{self.describe()} is not set")
            return os.environ[self.env]
        from prefect.blocks.system import Secret

        try:
            # `_sync=True`: Block.load returns a coroutine inside a running event loop (the
            # delivery task is async), which was never awaited.
            return str(Secret.load(self.prefect_secret, _sync=True).get())
        except Exception as exc:  # Prefect raises ValueError/ObjectNotFound/HTTP errors alike
            raise SecretError(f"cannot load {self.describe()}: {type(exc).__name__}") from None


_NOT_REGULAR = "not a regular file (a device, a FIFO or a folder?)"


def read_small_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; OSError (with `strerror`) for
    anything else. A device (/dev/zero) or a FIFO is refused before it is opened for reading,
    so it can neither hang the caller nor fill its memory."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError(0, _NOT_REGULAR)
    # O_NONBLOCK: a FIFO swapped in after the stat opens at once instead of waiting for a writer
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since the stat
            raise OSError(0, _NOT_REGULAR)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(0, f"larger than {limit // 1024} KB")
    return data


def register_basic_auth(username: str, password: str) -> None:
    """HTTP basic auth sends `Basic base64(user:password)`: a server echoing the header quotes
    that form, which holds the password though it spells none of its characters."""
    register(password)
    _KNOWN_SECRETS.update(
        f for f in _base64_forms(f"{username}:{password}") if len(f) >= _MIN_ENCODED
    )


def _encoded_forms(value: str) -> set[str]:
    """How a secret may appear in text an outside system echoes: URL-encoded (path and form
    style) or decoded, JSON-escaped, base64 (standard and URL-safe, padded or not)."""
    forms = {
        quote(value, safe=""),
        quote_plus(value, safe=""),
        unquote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        *_base64_forms(value),
    }
    return {f for f in forms if len(f) >= _MIN_ENCODED}


def _base64_forms(value: str) -> set[str]:
    raw = value.encode()
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        padded = encode(raw).decode("ascii")
        forms |= {padded, padded.rstrip("=")}
    return forms


def register(value: str) -> None:
    """Remember a secret for `redact`: the value and its URL-decoded form. For a URL (a webhook)
    also the parts that carry the token — its path, its query and the path segments shaped like a
    token, each also URL-decoded — since a server may echo just those; plain path words
    ("services", "integrations") are not secrets and stay readable."""
    found = {value, unquote(value)}
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.path.strip("/"):
        found |= {parts.path, unquote(parts.path)}
        for segment in parts.path.split("/"):
            if _token_shaped(unquote(segment)):
                found |= {segment, unquote(segment)}
        if parts.query:
            found |= {parts.query, unquote(parts.query)}
            found.update(v for _k, v in parse_qsl(parts.query) if _token_shaped(v))
    for form in list(found):
        found |= _encoded_forms(form)
    _KNOWN_SECRETS.update(f for f in found if f.strip())


def _token_shaped(word: str) -> bool:
    """A generated token rather than a word: long, or letters mixed with digits."""
    if len(word) >= 24:
        return True
    return len(word) >= 8 and any(c.isdigit() for c in word) and any(c.isalpha() for c in word)


def redact(text: str) -> str:
    """Replace every secret value resolved in this process with '***'."""
    for value in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks known secrets in every record a handler emits, whoever logged it (httpx logs request
    URLs, and a webhook URL is a secret)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the filter to every handler configured so far, and keep httpx's per-request lines
    (which quote full URLs) out of the logs."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


# At the source too, whatever handlers a host process configures.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_FILTER)
