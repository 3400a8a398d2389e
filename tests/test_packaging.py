"""The wheel works on its own: flows, tasks and deployments install inside fleet_alerting (not as
generic top-level names), the shipped data files come along, and the CLI runs from it."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "python3",
            "-m",
            "uv",
            *args,
        ]  # as the Makefile installs it, cwd=cwd, capture_output=True, text=True, check=True
    )


@pytest.mark.integration
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    _uv("build", "--wheel", "-q", "-o", str(tmp_path / "dist"), str(ROOT), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"fleet_alerting"}
    assert "fleet_alerting/flows/watches.py" in names
    assert "fleet_alerting/tasks/pipeline.py" in names
    assert "fleet_alerting/deployments/schedules.py" in names
    assert "fleet_alerting/sources/prometheus/watches.yaml" in names

    venv = tmp_path / "venv"
    _uv("venv", "-q", str(venv), cwd=tmp_path)
    python = venv / "bin" / "python"
    _uv(
        "pip",
        "install",
        "-q",
        "--python",
        str(python),
        "-r",
        str(ROOT / "requirements.lock"),
        str(wheel),
        cwd=tmp_path,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cli = venv / "bin" / "fleet-alerting"
    # the example beside the secret files it references (check-config resolves them)
    shipped = tmp_path / "shipped"
    shutil.copytree(ROOT / "config", shipped / "config")
    (shipped / "secrets").mkdir()
    for name in ("fleet-api.token", "mqtt-fleet-alerting.password"):
        (shipped / "secrets" / name).write_text("example-secret\n")
    checked = subprocess.run(
        [cli, "check-config", shipped / "config" / "example.yaml"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert "ok" in checked.stdout
    helped = subprocess.run([cli, "run", "--help"], cwd=elsewhere, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    assert "blackbox-probe" in helped.stdout
    imported = subprocess.run(
        [
            python,
            "-c",
            "import fleet_alerting.flows.watches, fleet_alerting; "
            "print(fleet_alerting.__file__); import flows",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert str(venv) in imported.stdout
    assert "No module named 'flows'" in imported.stderr
