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
        _KNOWN_SECRETS.add(value)
        return SecretStr(value)

    def _read(self) -> str:
        if self.file:
            try:
                return self.file.read_text()
            except OSError as exc:
                raise SecretError(f"cannot read {self.describe()}: {exc.strerror}") from None
        if self.env:
            if self.env not in os.environ:
                raise SecretError(f"{self.describe()} is not set")
            return os.environ[self.env]
        from prefect.blocks.system import Secret

        try:
            return str(Secret.load(self.prefect_secret).get())
        except Exception as exc:  # Prefect raises ValueError/ObjectNotFound/HTTP errors alike
            raise SecretError(f"cannot load {self.describe()}: {type(exc).__name__}") from None


def redact(text: str) -> str:
    """Replace every secret value resolved in this process with '***'."""
    for value in _KNOWN_SECRETS:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks resolved secrets in log records of HTTP libraries, which log full request URLs at
    INFO (`HTTP Request: POST https://hooks.slack.com/services/…`): webhook URLs are secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(RedactingFilter())
