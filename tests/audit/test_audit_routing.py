"""YAML-fed table tests of fleet_alerting.routing (tests/audit/cases/*.yaml)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from fleet_alerting.alertmanager.routing import (
    RoutingConfigError,
    TimeInterval,
    matching_tree,
    parse_config,
    parse_label_args,
)
from fleet_alerting.core.matchers import MatcherError, check_matcher, parse_matcher, parse_matchers

CASES = Path(__file__).parent / "cases"


def _load(name: str) -> dict:
    return yaml.safe_load((CASES / name).read_text())


def _routing_cases() -> list:
    out = []
    for f in sorted(CASES.glob("routing_*.yaml")):
        doc = yaml.safe_load(f.read_text())
        for i, case in enumerate(doc["cases"]):
            out.append(pytest.param(doc["config"], case, id=f"{f.stem}-{i}"))
    return out


@pytest.mark.parametrize(("config", "case"), _routing_cases())
def test_routing_table(config: dict, case: dict) -> None:
    cfg = parse_config(config)
    at = datetime.fromisoformat(case["at"]) if "at" in case else None
    assert cfg.receivers_for(case["labels"], at) == case["receivers"]
    if "opts" in case:
        opts = cfg.routes_for(case["labels"])[0].opts
        for key, want in case["opts"].items():
            got = getattr(opts, key)
            assert (sorted(got) if key == "group_by" else got) == want, key


def _matcher_cases() -> list:
    doc = _load("matchers.yaml")
    return [pytest.param(c, id=str(i)) for i, c in enumerate(doc["matcher_cases"])]


@pytest.mark.parametrize("case", _matcher_cases())
def test_parse_matchers_table(case: dict) -> None:
    if "error" in case:
        with pytest.raises(MatcherError, match=case["error"]):
            parse_matchers(case["input"])
        return
    got = [[m.name, m.op, m.value] for m in parse_matchers(case["input"])]
    assert got == case["expect"]


@pytest.mark.parametrize("case", _load("matchers.yaml")["regex_cases"])
def test_regex_matchers_are_anchored(case: dict) -> None:
    assert parse_matcher(case["matcher"]).matches(case["labels"]) is case["expect"]


@pytest.mark.parametrize("case", _load("matchers.yaml")["regex_cases"])
def test_direct_re2_call_equals_the_public_api(case: dict) -> None:
    """GoRegex calls RE2 below google-re2's public `search`; both must agree."""
    m = parse_matcher(case["matcher"])
    value = case["labels"].get("a", "")
    assert m.pattern is not None
    assert m.pattern.matches(value) is (m.pattern.pattern.search(value) is not None)


@pytest.mark.parametrize(("expr", "error"), _load("matchers.yaml")["regex_errors"])
def test_regexes_go_refuses_are_refused(expr: str, error: str) -> None:
    with pytest.raises(MatcherError, match=error):
        parse_matchers(f"a=~{json.dumps(expr)}")
    # and the config validator (escalation rules) and the routing tree refuse them too
    with pytest.raises(ValueError, match=error):
        check_matcher(f"a=~{json.dumps(expr)}")
    doc = {"route": {"receiver": "r", "routes": [{"match_re": {"a": expr}}]}}
    with pytest.raises(RoutingConfigError, match=error):
        parse_config({**doc, "receivers": [{"name": "r"}]})


@pytest.mark.parametrize("case", _load("inhibit.yaml")["inhibit_cases"])
def test_inhibit_table(case: dict) -> None:
    cfg = parse_config(_load("inhibit.yaml")["config"])
    assert cfg.inhibited(case["target"], case["firing"]) is case["expect"]


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"receivers": [{"name": "a"}]}, "no routes provided"),
        ({"route": {"receiver": "x"}, "receivers": [{"name": "a"}]}, "undefined receiver 'x'"),
        (
            {"route": {"receiver": "a", "matchers": ["a=b"]}, "receivers": [{"name": "a"}]},
            "root route must not have any matchers",
        ),
        (
            {
                "route": {"receiver": "a", "routes": [{"mute_time_intervals": ["nope"]}]},
                "receivers": [{"name": "a"}],
            },
            "undefined time interval 'nope'",
        ),
        (
            {"route": {"receiver": "a", "group_by": ["...", "x"]}, "receivers": [{"name": "a"}]},
            "wildcard group_by",
        ),
        (
            {
                "route": {"receiver": "a", "routes": [{"matchers": ['a="b']}]},
                "receivers": [{"name": "a"}],
            },
            r"route\.routes\[0\]\.matchers\[0\]: matcher value",
        ),
        ({"route": {"receiver": "a"}, "receivers": [{"name": "a"}, {"name": "a"}]}, "not unique"),
        (
            {"route": {"receiver": "a", "group_wait": "5 minutes"}, "receivers": [{"name": "a"}]},
            "not a valid duration",
        ),
    ],
)
def test_invalid_config_is_rejected_with_path(doc: dict, error: str) -> None:
    with pytest.raises(RoutingConfigError, match=error):
        parse_config(doc)


@pytest.mark.parametrize(
    ("interval", "error"),
    [
        ({"weekdays": ["friday:monday"]}, "start day cannot be before end day"),
        ({"days_of_month": ["0"]}, "out of range"),
        ({"days_of_month": ["-3:5"]}, "must be negative"),
        ({"times": [{"start_time": "10:00", "end_time": "09:00"}]}, "start time cannot be"),
        ({"times": [{"start_time": "10:00", "end_time": "24:01"}]}, "invalid format"),
        ({"location": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_invalid_time_intervals(interval: dict, error: str) -> None:
    doc = {
        "route": {"receiver": "a"},
        "receivers": [{"name": "a"}],
        "time_intervals": [{"name": "t", "time_intervals": [interval]}],
    }
    with pytest.raises(RoutingConfigError, match=error):
        parse_config(doc)


def test_days_of_month_clamps_to_short_months() -> None:
    ti = TimeInterval(days_of_month=((30, 31),))
    assert not ti.contains(datetime.fromisoformat("2026-02-28T00:00:00+00:00"))
    assert TimeInterval(days_of_month=((25, 31),)).contains(
        datetime.fromisoformat("2026-02-28T00:00:00+00:00")
    )


def test_label_args_like_amtool() -> None:
    assert parse_label_args(["a=b", 'c="d,e"', "a=z"]) == {"a": "z", "c": "d,e"}
    with pytest.raises(RoutingConfigError, match="key="):
        parse_label_args(["a=~b"])


def test_matching_tree_drawing() -> None:
    cfg = parse_config(_load("routing_continue_dupes.yaml")["config"])
    assert matching_tree(cfg.route, {"severity": "critical"}) == "\n".join(
        [
            ".",
            "└── default-route",
            '    ├── {severity="critical"}  receiver: pd',
            '    ├── {severity=~"crit.*"}  receiver: pd',
            '    └── {severity="critical"}  receiver: slack',
        ]
    )
