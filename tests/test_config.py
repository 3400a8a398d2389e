"""Config loading: every error names file, line, key path and what was expected; secrets by
reference only; `check-config` exit codes."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import ConfigError, load_config
from fleet_alerting.config.secrets import SecretError, SecretRef
from fleet_alerting.surfaces.cli import main

ROOT = Path(__file__).parents[1]
CASES = yaml.safe_load((Path(__file__).parent / "cases" / "bad_configs.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_config_errors(case: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(case["text"].encode(case.get("encoding", "utf-8")))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    expected = [e.replace("{file}", str(path)) for e in case["errors"]]
    assert raised.value.problems == expected
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == expected
    assert "CANARY" not in err


LIVE_SECRETS = (
    "slack-webhook.url",
    "slack-mirror-webhook.url",
    "pagerduty-routing.key",
    "fleet-api.token",
    "mqtt-fleet-alerting.password",
)


def test_the_going_live_example_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The going-live example, beside the secret files it references (a deployment has them; a
    fresh clone does not, see the next test)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "secrets").mkdir()
    for name in LIVE_SECRETS:
        (tmp_path / "secrets" / name).write_text("https://hooks.example/CANARY-example-0000\n")
    assert main(["check-config", str(tmp_path / "config" / "going-live.example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ok — blackbox 2 target(s) + 1 file_sd group(s), zigbee 1 coordinator(s)" in out
    assert "prometheus 1 extra watch(es), alertmanager, fleet_api; 5 secret" in out
    assert "dry run" not in out
    assert "CANARY" not in out
    config = load_config(ROOT / "config" / "example.yaml")
    assert config.policy("critical").page_after == timedelta(minutes=5)
    assert config.state.path == (ROOT / "state" / "example.sqlite").resolve()
    live = yaml.safe_load((ROOT / "config" / "going-live.example.yaml").read_text())
    assert live["state"]["path"] == "../state/fleet-alerting.sqlite"  # never the example's store


def test_the_going_live_example_names_the_secrets_a_fresh_clone_lacks(
    capsys: pytest.CaptureFixture,
) -> None:
    live = ROOT / "config" / "going-live.example.yaml"
    assert main(["check-config", "--config", str(live)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in err] == [
        "notify.slack.webhook",
        "notify.slack.mirror_webhook",
        "notify.pagerduty.routing_key",
        "fleet_api.token",
        "zigbee.coordinators[0].password",
    ]
    assert all("No such file or directory" in line for line in err)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read config: No such file"):
        load_config(tmp_path / "nope.yaml")


def test_secret_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pd.key").write_text("k" * 32 + "\n")
    path = tmp_path / "config.yaml"
    path.write_text(
        "notify:\n  dry_run: true\n  pagerduty:\n    routing_key: {file: secrets/pd.key}\n"
    )
    key = load_config(path).notify.pagerduty.routing_key
    assert key.resolve().get_secret_value() == "k" * 32
    assert "k" * 32 not in repr(key.resolve())


def test_secret_errors_name_the_reference_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SecretError, match=r"cannot read secret file .*/missing.url: No such file"):
        SecretRef(file=tmp_path / "missing.url").resolve()
    monkeypatch.delenv("FLEET_TEST_UNSET", raising=False)
    with pytest.raises(SecretError, match="environment variable FLEET_TEST_UNSET is not set"):
        SecretRef(env="FLEET_TEST_UNSET").resolve()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretError, match="is empty"):
        SecretRef(file=tmp_path / "empty").resolve()


def test_a_dry_run_needs_no_channel_and_says_so(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("notify: {dry_run: true}\n")
    assert load_config(path).notify.dry_run is True
    assert main(["check-config", str(path)]) == 0
    assert "notifications to local outbox (dry run), nothing sent" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["example.yaml", "going-live.example.yaml"])
def test_the_examples_watch_of_the_api_scrape_is_the_one_the_shipped_rule_covers(
    name: str,
) -> None:
    from fleet_alerting.core.inhibition import FLEET_API_SCRAPE_WATCH

    config = yaml.safe_load((ROOT / "config" / name).read_text())
    watches = [w["name"] for w in config["prometheus"]["watches"]]
    assert FLEET_API_SCRAPE_WATCH in watches
