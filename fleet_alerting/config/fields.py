"""Field types shared by the config's sections (the main schema and each notifier's own): paths
relative to the config file, URLs, ports, secrets by reference, bounded durations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from fleet_alerting.config.secrets import SecretRef
from fleet_alerting.core.channels import PAGER_NAME
from fleet_alerting.core.durations import format_duration
from fleet_alerting.core.model import PositiveDuration
from fleet_alerting.core.urls import check_http_url


def _relative_to_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    joined = path if path.is_absolute() or base is None else Path(base) / path
    return joined.resolve() if ".." in joined.parts else joined  # said as the system finds it


def _a_path(value: object) -> object:
    if isinstance(value, str) and (not value.strip() or "\x00" in value or len(value) > 4096):
        raise ValueError("expected a file path (not empty, at most 4096 characters)")
    return value


ConfigPath = Annotated[Path, BeforeValidator(_a_path), AfterValidator(_relative_to_config)]
StatusCode = Annotated[int, Field(ge=100, le=599)]


HttpUrl = Annotated[str, AfterValidator(check_http_url)]
Port = Annotated[int, Field(ge=1, le=65535)]


DEFAULT_MAX_ANSWER_BYTES = 50 * 1024 * 1024


def answer_cap() -> Any:
    """How many bytes of one answer are read: past it the answer is a warning, not parsed."""
    return Field(DEFAULT_MAX_ANSWER_BYTES, ge=64 * 1024, le=512 * 1024 * 1024)


class FileSecret(SecretRef):
    """SecretRef whose file path is relative to the config file."""

    file: ConfigPath | None = None


def at_most(limit: timedelta) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if value > limit:
            raise ValueError(f"expected a duration of at most {format_duration(limit, exact=True)}")
        return value

    return AfterValidator(check)


def at_least(limit: timedelta) -> AfterValidator:
    def check(value: timedelta) -> timedelta:
        if value < limit:
            raise ValueError(
                f"expected a duration of at least {format_duration(limit, exact=True)}"
            )
        return value

    return AfterValidator(check)


# a notifier's request timeout: it counts many times in a claim's lease (lease_for)
SendTimeout = Annotated[PositiveDuration, at_most(timedelta(minutes=5))]


# more pager services by name: a policy's steps or `page` name one as pagerduty_NAME / oncall_NAME
PagerName = Annotated[str, Field(pattern=rf"^{PAGER_NAME}$")]
