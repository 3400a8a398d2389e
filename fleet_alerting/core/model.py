"""The base of every validated settings model (unknown keys refused, values frozen) and the
duration field types. Kept apart from core/durations.py, which must stay free of pydantic:
`routes test` parses Alertmanager durations and starts about as fast as amtool."""

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from fleet_alerting.core.durations import parse_duration


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NEGATIVE = "expected a duration of 0 or more, not a negative one"


def _from_config(value: object) -> object:
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, str) and value.strip().startswith("-"):
        delta = -parse_duration(value.strip()[1:])  # "-5m": refused below, as -300 is
    else:
        delta = parse_duration(value)
    if delta < timedelta(0):
        raise ValueError(NEGATIVE)
    return delta


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("expected a duration greater than 0")
    return value


Duration = Annotated[timedelta, BeforeValidator(_from_config)]
# timeouts, intervals, reminders: 0 would mean "never wait" or "every run"
PositiveDuration = Annotated[timedelta, BeforeValidator(_from_config), AfterValidator(_positive)]


def positive_duration(value: object) -> timedelta:
    return _positive(_from_config(value))  # type: ignore[arg-type]
