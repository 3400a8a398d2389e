"""The documented shapes of Prometheus' query API (`GET /api/v1/query`), as pydantic models.

The envelope is `{status, data: {resultType, result}, warnings?, errorType?, error?}`. An instant
vector's result is a list of `{metric: {label: value}, value: [unix time, "value"]}` (a native
histogram sample carries `histogram` instead of `value`); a watch reads nothing else. The
envelope is parsed whole; the vector's samples one by one, so one bad sample is one `Malformed`
and the others still count; a result that is not a list (null included) is one `Malformed` that
names no series, so nothing of the watch is known.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, ValidationError

from fleet_alerting.sources.records import Malformed, why


def _number(text: object) -> float:
    """A sample value: a string Go's strconv.ParseFloat accepts ("NaN", "+Inf" included)."""
    if not isinstance(text, str):
        got = "null" if text is None else type(text).__name__
        raise ValueError(f"a sample value is a string, not {got}")
    try:
        return float(text)
    except ValueError:
        raise ValueError("a sample value is a number in a string") from None


SampleValue = Annotated[float, BeforeValidator(_number)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(_Shape):
    status: Literal["success", "error"]
    data: Any = None
    warnings: list[StrictStr] = []
    errorType: StrictStr | None = None
    error: StrictStr | None = None


class Data(_Shape):
    resultType: Literal["vector", "scalar", "matrix", "string"]
    result: Any = None


class Point(_Shape):
    """`[unix time, "value"]`."""

    time: float
    value: SampleValue

    @classmethod
    def of(cls, pair: object) -> Point:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError('expected [unix time, "value"]')
        return cls(time=pair[0], value=pair[1])


class VectorSample(_Shape):
    metric: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    value: Annotated[Point, BeforeValidator(Point.of)]


class Labels(_Shape):
    metric: dict[StrictStr, StrictStr]


def bad_sample(raw: object, index: int, reason: str) -> Malformed:
    """Named `{label="value", …}` when the sample's labels are readable, else by position."""
    if isinstance(raw, dict):
        try:
            labels = dict(Labels.model_validate(raw).metric)
        except ValidationError:
            labels = None
        if labels is not None:
            inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
            return Malformed("{" + inner + "}", reason, labels)
    return Malformed(f"result[{index}]", reason)


def parse_vector(result: object) -> tuple[list[tuple[dict[str, str], float]], list[Malformed]]:
    """Every sample of an instant vector's result as (labels, value); each bad one is a
    `Malformed`."""
    if not isinstance(result, list):  # null included: Prometheus writes `[]` for no series
        return [], [Malformed("result", "an instant vector's result is a list of samples")]
    samples, malformed = [], []
    for index, raw in enumerate(result):
        plain = _plain(raw)
        if plain is not None:
            samples.append(plain)
            continue
        if not isinstance(raw, dict):
            malformed.append(Malformed(f"result[{index}]", "a sample is an object {metric, value}"))
            continue
        if "value" not in raw and "histogram" in raw:
            malformed.append(bad_sample(raw, index, "a native histogram sample, not a number"))
            continue
        try:
            sample = VectorSample.model_validate(raw)
        except ValidationError as exc:
            malformed.append(bad_sample(raw, index, why(exc)))
            continue
        samples.append((dict(sample.metric), sample.value.value))
    return samples, malformed


def _plain(raw: object) -> tuple[dict[str, str], float] | None:
    """A sample exactly as Prometheus writes it, read without the model (an answer holds
    thousands); None: anything else, which the model reads or names."""
    if type(raw) is not dict:
        return None
    metric, pair = raw.get("metric"), raw.get("value")
    if type(metric) is not dict or type(pair) is not list or len(pair) != 2:
        return None
    moment, text = pair
    if type(moment) not in (int, float) or type(text) is not str:
        return None
    try:
        "".join(metric.values())  # TypeError unless every label value is a string
        return metric, float(text)
    except (TypeError, ValueError):
        return None
