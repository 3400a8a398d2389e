"""Configs that hung `check-config` or were accepted though they could not work: each is refused
at once, as `file:line: key: why`, never echoing a value."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import ConfigError, load_config
from fleet_alerting.surfaces.cli import main
from tests.attacks.limits import deadline, memory_cap

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "config_attacks.yaml").read_text())
PLACEHOLDERS = {"{long_number}": "9" * 4000, "{long_zone}": "Z" * 300}


def config_text(case: dict) -> str:
    text = case["text"]
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_refused_at_once_with_file_and_line(
    case: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(case))
    expected = [e.replace("{file}", str(path)) for e in case["errors"]]
    with deadline(2.0), pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == expected
    with deadline(2.0):
        assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == expected
    assert "CANARY" not in err


def unknown_keys_seconds(tmp_path: Path, keys: int) -> float:
    path = tmp_path / f"{keys}.yaml"
    path.write_text("".join(f"k{i}: 1\n" for i in range(keys)))
    started = time.process_time()  # CPU time: other jobs on the machine do not count
    with deadline(60.0), pytest.raises(ConfigError) as raised:
        load_config(path)
    elapsed = time.process_time() - started
    assert len(raised.value.problems) == keys
    assert raised.value.problems[-1] == f"{path}:{keys}: k{keys - 1}: unknown key"
    return elapsed


def test_many_top_level_keys_take_linear_time(tmp_path: Path) -> None:
    """Every unknown key gets its line; finding it must not rescan the file per error: 8 times
    the keys take about 8 times as long (64 times, quadratic), whatever the machine's load."""
    small = min(unknown_keys_seconds(tmp_path, 5_000) for _ in range(2))
    large = unknown_keys_seconds(tmp_path, 40_000)
    assert large / small < 24, f"5,000 keys: {small:.2f} s, 40,000 keys: {large:.2f} s CPU"


NOT_REGULAR = "not a regular file (a device, a FIFO or a folder?)"
BOUNDED = 256 * 1024 * 1024


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.fixture(params=["/dev/zero", "a FIFO"])
def special(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A path that hangs a reader (a FIFO without writer) or never ends (/dev/zero)."""
    return Path(request.param) if request.param.startswith("/") else fifo(tmp_path / "fifo")


def check_config_errors(config: Path, capsys: pytest.CaptureFixture) -> list[str]:
    with deadline(3.0), memory_cap(BOUNDED):
        assert main(["check-config", str(config)]) == 1
    return capsys.readouterr().err.splitlines()


def test_a_secret_on_a_device_or_fifo_is_an_error_naming_it(
    special: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"notify:\n  dry_run: true\n  pagerduty:\n    routing_key: {{file: {special}}}\n"
    )
    assert (
        f"{path}:4: notify.pagerduty.routing_key: cannot read secret file {special}: {NOT_REGULAR}"
    ) in check_config_errors(path, capsys)


def test_a_huge_secret_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fleet_alerting.config.secrets import SecretError, SecretRef

    (tmp_path / "big").write_bytes(b"x" * (64 * 1024 + 1))
    with pytest.raises(SecretError, match=r"cannot read secret file .*big: larger than 64 KB"):
        SecretRef(file=tmp_path / "big").resolve()


def test_a_file_sd_path_on_a_device_or_fifo_is_an_error_naming_it(
    special: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fleet_alerting.sources.blackbox.client import load_targets

    path = tmp_path / "config.yaml"
    path.write_text(f"notify: {{dry_run: true}}\nblackbox:\n  file_sd:\n    - files: [{special}]\n")
    assert (
        f"{path}:4: blackbox.file_sd[0].files[0]: {special} is not a regular file "
        "(a device, a FIFO or a folder?)"
    ) in check_config_errors(path, capsys)
    with deadline(3.0), memory_cap(BOUNDED):
        targets, problems = load_targets(load_config(path).blackbox, tmp_path)
    assert targets == []
    assert problems == [f"{special}: cannot read file_sd targets: {NOT_REGULAR}"]


def test_a_config_on_a_device_or_fifo_is_refused_at_once(special: Path) -> None:
    with deadline(3.0), memory_cap(BOUNDED), pytest.raises(ConfigError) as raised:
        load_config(special)
    assert raised.value.problems == [f"{special}: cannot read config: {NOT_REGULAR}"]
