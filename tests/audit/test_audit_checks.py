"""Every check: a config that triggers it and one that does not (tests/audit/cases/checks.yaml)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from audit_helpers import CHECK_CASES, DownSeries, build_input

from fleet_alerting.alertmanager.routing import build_route
from fleet_alerting.audit.checks import CHECKS, run_checks
from fleet_alerting.audit.checks.shadowed_routes import shadows
from fleet_alerting.audit.model import Finding

DOC = CHECK_CASES


def ids(findings: list[Finding]) -> set[str]:
    return {f.check_id for f in findings}


def test_base_is_clean() -> None:
    assert run_checks(build_input({})) == []


def test_every_check_has_a_case() -> None:
    covered = {c["check"] for c in DOC["cases"]}
    assert {spec.id for spec in CHECKS} <= covered


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["check"] for c in DOC["cases"]])
def test_check_triggers_and_stays_quiet(case: dict) -> None:
    triggered = run_checks(build_input(case["trigger"]))
    assert case["check"] in ids(triggered), triggered
    quiet = run_checks(build_input(case.get("clean", {})))
    assert case["check"] not in ids(quiet), quiet
    for f in triggered:
        assert f.level in ("error", "warning", "info")


def test_inline_secret_value_never_appears() -> None:
    case = next(c for c in DOC["cases"] if c["check"] == "inline-secret")
    findings = run_checks(build_input(case["trigger"]))
    dumped = json.dumps([asdict(f) for f in findings])
    assert "routing_key_file" in dumped
    assert "CANARY-7f3a9c" not in dumped


def test_dead_selector_names_the_job_bug() -> None:
    case = next(c for c in DOC["cases"] if c["check"] == "dead-selector")
    [f] = [f for f in run_checks(build_input(case["trigger"])) if f.check_id == "dead-selector"]
    assert f.alert == "ApiDown"
    assert 'up{job="api"}' in f.message and "exists" in f.message


def test_online_checks_skip_with_a_note_when_prometheus_is_down() -> None:
    inp = build_input({})
    inp.series = DownSeries()
    findings = run_checks(inp)
    assert ids(findings) == {"online-skipped"}
    assert all("connection refused" in f.message for f in findings)
    inp.series = None
    assert ids(run_checks(inp)) == {"online-skipped"}


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        (['a="x"'], ['a="x"', 'b="y"'], True),
        (['a=~"x|y"'], ['a="y"'], True),
        (['a!="z"'], ['a="y"'], True),
        (['a!~"z.*"'], ['a="y"'], True),
        ([], ['a="y"'], True),
        (['a=~".*"'], ['b="y"'], True),
        (['a="x"'], ['a=~"x|y"'], False),
        (['a="x"'], ['b="x"'], False),
        (['a=~"x.*"'], ['a=~"x.+"'], False),  # true in fact, but not proven: stay quiet
    ],
)
def test_shadowing_is_proven_not_guessed(earlier: list, later: list, expected: bool) -> None:
    e = build_route({"matchers": earlier, "receiver": "r"})
    la = build_route({"matchers": later, "receiver": "r"})
    assert shadows(e, la) is expected
    e.continue_ = True
    assert shadows(e, la) is False


@pytest.mark.parametrize(
    ("receiver", "level", "fragment"),
    [
        ({"pagerduty_configs": [{"routing_key": "CANARY"}]}, "error", "use routing_key_file"),
        ({"slack_configs": [{"api_url": "CANARY", "channel": "#x"}]}, "error", "use api_url_file"),
        (
            {"email_configs": [{"to": "a@b.c", "auth_password": "CANARY"}]},
            "error",
            "use auth_password_file",
        ),
        (
            {
                "webhook_configs": [
                    {
                        "url": "http://x",
                        "http_config": {"basic_auth": {"username": "u", "password": "CANARY"}},
                    }
                ]
            },
            "error",
            "use password_file",
        ),
        ({"webhook_configs": [{"url": "http://x/CANARY"}]}, "warning", "newer than 0.25"),
        (
            {"telegram_configs": [{"bot_token": "CANARY", "chat_id": 1}]},
            "warning",
            "bot_token_file needs",
        ),
    ],
)
def test_inline_secret_kinds(receiver: dict, level: str, fragment: str) -> None:
    inp = build_input(
        {
            "am": {
                "route": {"receiver": "r", "group_by": ["alertname", "instance"]},
                "receivers": [{"name": "r", **receiver}],
            }
        }
    )
    [f] = [f for f in run_checks(inp) if f.check_id == "inline-secret" and fragment in f.message]
    assert f.level == level and f.receiver == "r"
    assert "CANARY" not in json.dumps(asdict(f))


def test_inline_secret_ignores_non_secret_urls() -> None:
    inp = build_input(
        {
            "am": {
                "route": {"receiver": "r", "group_by": ["alertname", "instance"]},
                "receivers": [
                    {
                        "name": "r",
                        "opsgenie_configs": [
                            {"api_key_file": "/k", "api_url": "https://api.example/"}
                        ],
                    }
                ],
            }
        }
    )
    assert [f for f in run_checks(inp) if f.check_id == "inline-secret"] == []
