"""The new config sections: defaults, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_alerting.config import ConfigError, load_config


def test_defaults_escalate_critical_and_the_api_blackbox_alerts(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("notify: {dry_run: true}\nalertmanager:\n  url: http://127.0.0.1:9093\n")
    rules = load_config(path).alertmanager.rules
    assert [(r.name, r.matchers) for r in rules] == [
        ("critical", ['severity="critical"']),
        (
            "fleet-api-blackbox",
            ['alertname=~"Blackbox.*|ProbeFailed|EndpointDown"', 'instance=~".*/api/healthz|.*/"'],
        ),
    ]


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        (
            "alertmanager:\n  url: http://am\n  rules:\n    - name: x\n"
            "      matchers: ['sev critical']\n",
            ":5: alertmanager.rules[0].matchers[0]: expected an Alertmanager matcher",
        ),
        (
            "fleet_api:\n  url: http://f\n  token: s3cr3t-inline\n",
            ":3: fleet_api.token: secrets are given by reference",
        ),
        (
            "fleet_api:\n  url: http://f\n  limit: 500\n",
            ":3: fleet_api.limit: Input should be less than or equal to 200",
        ),
        ("notify:\n  oncall: {}\n", ":2: notify.oncall.webhook: required key is missing"),
        (
            "notify:\n  slack:\n    bot_token: xoxb-inline\n",
            ":3: notify.slack.bot_token: secrets are given by reference",
        ),
    ],
)
def test_bad_sections_name_file_line_and_key(tmp_path: Path, yaml_text: str, problem: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(problem in p and p.startswith(str(path)) for p in caught.value.problems), (
        caught.value.problems
    )
    assert "s3cr3t-inline" not in str(caught.value) and "xoxb-inline" not in str(caught.value)
