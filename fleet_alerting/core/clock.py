"""The one place that reads the clock; everything below it takes `now` as a parameter."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
