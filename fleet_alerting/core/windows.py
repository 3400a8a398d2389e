"""Weekly time windows such as "Tue 10:00-10:15 Europe/Zagreb": parsing and arithmetic.

A window starts on one of its days at `start` local time and ends at `end` the same day, or the
next day when `end` is not after `start` ("Fri 23:50-00:10" crosses midnight). Local times are
turned into instants in the window's own time zone, so a window keeps its wall-clock hours across
daylight-saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import PlainSerializer, PlainValidator

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(
    r"^(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})\s*[-–]\s*(?P<end>\d{1,2}:\d{2})(?:\s+(?P<tz>\S+))?$"
)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # weekdays (Monday = 0) on which the window starts
    start: time
    end: time
    zone: str
    text: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def occurrence(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence of this window that contains `moment` (aware), as [start, end)."""
        local_day = moment.astimezone(self.tz).date()
        for day in (local_day, local_day - timedelta(days=1)):  # yesterday's may cross midnight
            if day.weekday() not in self.days:
                continue
            start, end = self._bounds(day)
            if start <= moment < end:
                return start, end
        return None

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return (
            datetime.combine(day, self.start, tzinfo=self.tz),
            datetime.combine(end_day, self.end, tzinfo=self.tz),
        )

    def __str__(self) -> str:
        return self.text


# IANA names: Area/Location[/Sub], letters, digits, - + _ ; never "..", never absolute
_ZONE_NAME = re.compile(r"(?=.{1,64}\Z)[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")


def parse_window(value: object) -> Window:
    if isinstance(value, Window):
        return value
    if not isinstance(value, str):
        raise ValueError('expected a window such as "Tue 10:00-10:15 Europe/Zagreb"')
    match = _WINDOW.match(value.strip())
    if not match:
        raise ValueError(
            'expected "DAYS HH:MM-HH:MM [TIME/ZONE]", e.g. "Tue 10:00-10:15 Europe/Zagreb"'
        )
    zone = match["tz"] or "UTC"
    if not _ZONE_NAME.fullmatch(zone):
        raise ValueError(
            "expected an IANA time zone name such as Europe/Zagreb (at most 64 characters)"
        )
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {zone!r}") from None
    start, end = _clock(match["start"]), _clock(match["end"])
    if start == end:
        raise ValueError("a window needs an end different from its start")
    return Window(_days(match["days"]), start, end, zone, value.strip())


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text} is not a time of day")
    return time(hours, minutes)


def _days(text: str) -> frozenset[int]:
    """'Tue', 'Mon-Fri', 'Sat,Sun', 'Fri-Mon' (wraps), 'daily'."""
    if text.lower() in ("daily", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAY_NAMES or (last and last[:3] not in DAY_NAMES):
            raise ValueError(f"{part!r} is not a day or range of days (Mon..Sun, daily)")
        a = DAY_NAMES.index(first[:3])
        b = DAY_NAMES.index(last[:3]) if last else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


ScheduledWindow = Annotated[Window, PlainValidator(parse_window), PlainSerializer(str)]
