"""`check-config` catches what would break a run of a schema-valid config: secrets that will not
resolve, file_sd patterns that match nothing, Prefect blocks that do not exist; and it says who
gets paged. Table: tests/cases/check_config.yaml."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.config.secrets import SecretRef
from fleet_alerting.core.signals import Severity
from fleet_alerting.surfaces.cli import main

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "check_config.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_check_config_table(
    case: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    for name, text in (case.get("files") or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for name, mode in (case.get("modes") or {}).items():
        (tmp_path / name).chmod(int(mode, 8))
    for name, value in (case.get("env") or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FLEET_TEST_UNSET_KEY", raising=False)
    if case.get("unset_api"):  # also when a session fixture set one for the flow tests
        from prefect.settings import PREFECT_API_URL, temporary_settings

        monkeypatch.delenv("PREFECT_API_URL", raising=False)
        settings = temporary_settings(restore_defaults={PREFECT_API_URL})
        settings.__enter__()
        request.addfinalizer(lambda: settings.__exit__(None, None, None))
    path = tmp_path / "config.yaml"
    path.write_text(case["text"])

    def fill(line: str) -> str:
        return line.replace("{file}", str(path)).replace("{dir}", str(tmp_path))

    assert main(["check-config", str(path)]) == case["exit"]
    out, err = capsys.readouterr()
    assert err.splitlines() == [fill(e) for e in case["errors"]]
    for line in case.get("out", []):
        assert fill(line) in out.splitlines() or fill(line) in out
    for text in case.get("not_out", []):
        assert fill(text) not in out
    assert "CANARY" not in out + err


def test_a_partial_policy_keeps_its_severity_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "policies:\n  critical: {page_after: 45s}\n  warning: {open_after: 3}\n"
        "notify: {dry_run: true}\n"
    )
    config = load_config(path)
    critical = config.policy(Severity.critical)
    assert critical.page == ["pagerduty"] and critical.mirror is True
    assert critical.page_after.total_seconds() == 45
    assert critical.repeat is not None and critical.repeat.total_seconds() == 1800
    assert config.policy(Severity.warning).open_after == 3
    assert config.policy(Severity.warning).page == []


def test_a_key_given_twice_fails_the_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("policies:\n  critical: {page_after: 45s}\npolicies:\n  warning: {}\n")
    assert main(["check-config", "--config", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}:3: policies: duplicate key (given twice)\n"


@pytest.mark.integration
def test_prefect_secret_blocks(prefect_api: str, tmp_path: Path, capsys) -> None:
    """Against a real Prefect server: a missing block fails the check; an existing one works,
    also from async code (the delivery task), where Block.load used to return a coroutine."""
    from prefect.blocks.system import Secret

    Secret(value="CANARY-block-value-123456").save("fleet-test-key", overwrite=True)
    path = tmp_path / "config.yaml"
    path.write_text(
        "notify:\n  pagerduty:\n    routing_key: {prefect_secret: fleet-test-key}\n"
        "  oncall:\n    webhook: {prefect_secret: fleet-test-missing}\n"
        "  dry_run: true\n"  # no Slack configured (fail closed): the check is of the blocks
    )
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"{path}:5: notify.oncall.webhook: cannot load Prefect Secret block "
        "'fleet-test-missing': ValueError"
    ]
    assert "CANARY" not in out + err

    ref = SecretRef(prefect_secret="fleet-test-key")

    async def in_a_loop() -> tuple[str, str]:
        sync_style = ref.resolve().get_secret_value()  # what build_notifiers calls
        return sync_style, (await ref.aresolve()).get_secret_value()

    assert asyncio.run(in_a_loop()) == ("CANARY-block-value-123456",) * 2
