"""Secrets by reference: a file (the Fleet way), an environment variable or a Prefect Secret block.

A resolved secret is a `pydantic.SecretStr`, so it prints as '**********' in logs, reprs and
exceptions. Every resolved value is also registered with `redact()`, the last line of defence for
text that leaves the process (error messages of HTTP libraries quote URLs, and webhook URLs are
secrets).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

_KNOWN_SECRETS: set[str] = set()


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
                return self.file.read_text()
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
