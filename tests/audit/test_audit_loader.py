"""Malformed inputs raise AuditInputError naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_alerting.audit.loader import (
    AuditInputError,
    load_alertmanager,
    load_expectations,
    load_rules,
    secret_file_refs,
)

REPO = Path(__file__).resolve().parents[2]

AM_CASES = [
    # (text, line, message fragment)
    ("route:\n  receiver: a\n  routes:\n  - receiver: a\n   matchers: [x]\n", 5, "invalid YAML"),
    ("route:\n  receiver: a\nreceivers:\n  - name: a\n    slack_configs: [\n", 6, "invalid YAML"),
    (
        "route:\n  receiver: a\n  routes:\n    - receiver: b\nreceivers:\n  - name: a\n",
        4,
        "undefined receiver 'b'",
    ),
    (
        "route:\n  receiver: a\n  routes:\n    - receiver: a\n      matchers:\n        - 'x=\"1'\n"
        "receivers:\n  - name: a\n",
        6,
        "unescaped double quote",
    ),
    ("- just\n- a list\n", 1, "must be a YAML mapping"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), AM_CASES)
def test_malformed_alertmanager_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    f = tmp_path / "alertmanager.yml"
    f.write_text(text)
    with pytest.raises(AuditInputError) as err:
        load_alertmanager(f)
    assert err.value.source == str(f)
    assert err.value.line == line
    assert fragment in str(err.value)
    assert str(err.value).startswith(f"{f}:{line}: ")


RULE_CASES = [
    (
        "groups:\n  - name: g\n    rules:\n      - alert: A\n"
        "        expr: up == 0\n       for: 5m\n",
        6,
        "invalid YAML",
    ),
    (
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        labels: {severity: x}\n",
        4,
        "has no `expr`",
    ),
    ("groups:\n  - name: g\n    rules:\n      - expr: up\n", 4, "`alert:` or `record:`"),
    ("rules: []\n", 1, "top-level `groups:`"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), RULE_CASES)
def test_malformed_rule_file_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    f = tmp_path / "bad.rules.yml"
    f.write_text(text)
    with pytest.raises(AuditInputError) as err:
        load_rules(str(tmp_path / "*.rules.yml"))
    assert (err.value.source, err.value.line) == (str(f), line)
    assert fragment in str(err.value)


def test_rule_lines_and_example_inputs_load() -> None:
    rules = load_rules(str(REPO / "config/audit/rules/*.yml"))
    names = {r.name for r in rules}
    assert {
        "ApiDown",
        "BlackboxProbeFailed",
        "RoleAgentFailure",
        "RoleAgentStale",
        "UpstreamDeviceFailuresSpike",
        "CircuitBreakerOpen",
        "FleetOffline",
        "ZigbeeCoordinatorOffline",
    } <= names
    api = next(r for r in rules if r.name == "ApiDown")
    assert api.line == 4 and api.labels["severity"] == "critical"
    am = load_alertmanager(REPO / "config/audit/alertmanager.yml")
    assert set(am.receivers) >= {
        "slack-operations",
        "slack-secondary",
        "pagerduty-critical",
        "grafana-oncall",
    }
    exp = load_expectations(REPO / "config/audit/expectations.yaml")
    assert exp.paging_receivers == {"pagerduty-critical", "grafana-oncall"}


def test_no_rule_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AuditInputError, match="no rule files match"):
        load_rules(str(tmp_path / "*.yml"))


def test_secret_file_refs() -> None:
    raw = {
        "global": {"slack_api_url_file": "/s/a"},
        "receivers": [{"name": "p", "pagerduty_configs": [{"routing_key_file": "k"}]}],
    }
    assert secret_file_refs(raw) == [
        ("global.slack_api_url_file", "/s/a"),
        ("receivers[0].pagerduty_configs[0].routing_key_file", "k"),
    ]
