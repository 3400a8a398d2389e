"""The one place that reads the clock; everything below it takes `now` as a parameter."""

from datetime import UTC, datetime, timedelta

# how far ahead of ours another clock may run before a warning says so: a source writes its
# time between our reading `now` and our fetch, and hosts' clocks differ by a little
CLOCK_SKEW = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def ahead_by(moment: datetime, now: datetime) -> timedelta:
    """How far `moment` lies ahead of `now`, to the second (as a warning shows it)."""
    return timedelta(seconds=round((moment - now).total_seconds()))
