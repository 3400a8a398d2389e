"""The shipped Prometheus rules on fleet-alerting itself: valid (`promtool check rules`) and
firing when they should (`promtool test rules`, tests/rules/*.test.yml)."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.servers import require_binary

ROOT = Path(__file__).parent.parent
RULES = ROOT / "config" / "prometheus" / "fleet-alerting.rules.yml"
UNIT_TESTS = sorted((ROOT / "tests" / "rules").glob("*.test.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=[p.name for p in UNIT_TESTS])
def test_rules_fire_as_tested(unit_test: Path) -> None:
    result = promtool("test", "rules", unit_test)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_and_has_a_runbook() -> None:
    import yaml

    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    tested = {
        case["alertname"]
        for path in UNIT_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert {r["alert"] for r in rules} == tested
    anchors = readme_anchors()
    for rule in rules:
        assert rule["annotations"]["runbook_url"].split("#")[1] in anchors, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning")


def readme_anchors() -> set[str]:
    """GitHub's anchors of the README's headings: lower case, punctuation but `-` dropped,
    spaces as `-`."""
    headings = re.findall(r"^#+ (.+)$", (ROOT / "README.md").read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
