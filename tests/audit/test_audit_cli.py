"""The CLI commands through a parser built like the main `fleet-alerting` one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.http import Response, Scripted

REPO = Path(__file__).resolve().parents[2]
AM = str(REPO / "config/audit/alertmanager.yml")
LABEL_SETS = [
    ["alertname=ApiDown", "severity=critical"],
    ["alertname=X", "severity=warning", "team=devices"],
    ["alertname=Z"],
    ['alertname="Q"', "severity=info", "instance=pi-07"],
]


@pytest.mark.parametrize("labels", LABEL_SETS)
def test_routes_test_prints_like_amtool(cli, labels: list[str]) -> None:
    rc, out, _ = cli("routes", "test", "--config", AM, *labels)
    assert rc == 0
    if shutil.which("amtool"):
        want = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={AM}", *labels],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out == want
        rc, tree, _ = cli("routes", "test", "--config", AM, "--tree", *labels)
        want_tree = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={AM}", "--tree", *labels],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert tree == want_tree


def test_routes_test_known_answer(cli) -> None:
    rc, out, _ = cli("routes", "test", "--config", AM, "alertname=ApiDown", "severity=critical")
    assert (rc, out) == (0, "slack-secondary,pagerduty-critical,grafana-oncall,slack-operations\n")


def test_routes_test_verify_receivers(cli) -> None:
    rc, out, _ = cli("routes", "test", "--config", AM, "--verify-receivers", "nobody", "a=b")
    assert rc == 1 and "did not match" in out


def test_routes_test_time_drops_muted_routes(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text(
        "route:\n  receiver: r\n  routes:\n    - receiver: office\n"
        "      active_time_intervals: [office]\n"
        "receivers: [{name: r}, {name: office}]\n"
        "time_intervals:\n  - name: office\n    time_intervals:\n"
        "      - weekdays: ['monday:friday']\n"
        "        times: [{start_time: '09:00', end_time: '17:00'}]\n"
    )
    assert cli("routes", "test", "--config", str(cfg), "a=b")[1] == "office\n"
    assert (
        cli("routes", "test", "--config", str(cfg), "--time", "2026-01-05T10:00:00Z", "a=b")[1]
        == "office\n"
    )
    assert (
        cli("routes", "test", "--config", str(cfg), "--time", "2026-01-05T18:00:00Z", "a=b")[1]
        == "\n"
    )


def test_routes_test_batch_passes_on_example(cli) -> None:
    rc, out, _ = cli(
        "routes", "test", "--config", AM, "--file", str(REPO / "config/audit/routes-cases.yaml")
    )
    assert rc == 0, out
    assert "5 passed, 0 failed" in out


def test_routes_test_batch_fails_on_mismatch(cli, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- labels: {severity: critical}\n  receivers: [pagerduty-critical]\n"
        "- labels: {alertname: Z}\n  receivers: [slack-operations]\n"
    )
    rc, out, _ = cli("routes", "test", "--config", AM, "--file", str(cases))
    assert rc == 1
    assert "FAIL 0" in out and "1 passed, 1 failed" in out


def test_routes_test_malformed_config_names_file_and_line(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: a\n  routes: [\n")
    rc, out, err = cli("routes", "test", "--config", str(cfg), "a=b")
    assert rc == 2 and out == ""
    assert f"{cfg}:4:" in err and "Traceback" not in err


def test_audit_command_writes_report(cli, tmp_path: Path) -> None:
    args = (
        "audit",
        "--alertmanager",
        AM,
        "--rules",
        str(REPO / "config/audit/rules/*.yml"),
        "--expectations",
        str(REPO / "config/audit/expectations.yaml"),
        "--out",
        str(tmp_path),
        "--now",
        "2026-04-01T09:00:00Z",
        "--dashboards",
        str(REPO / "config/audit/dashboards/*.json"),
    )
    rc, out, _ = cli(*args)
    assert rc == 0
    assert "2026-Q2" in out and "(the first report here: nothing to compare with)" in out
    qdir = tmp_path / "2026-Q2"
    for name in (
        "report.md",
        "report.html",
        "findings.json",
        "findings.csv",
        "routing_matrix.csv",
        "escalation_matrix.csv",
    ):
        assert (qdir / name).is_file(), name
    data = json.loads((qdir / "findings.json").read_text())
    checks = {f["check_id"] for f in data["findings"]}
    assert {
        "missing-severity",
        "root-only",
        "shadowed-route",
        "inline-secret",
        "unused-receiver",
        "group-by",
        "missing-annotation",
    } <= checks
    # the OnCall token in the example config never reaches a report
    for f in qdir.rglob("*"):
        if f.is_file():
            assert "REPLACE_WITH_TOKEN" not in f.read_text()
    rc, out, _ = cli(*args[:-3], "2026-07-01T09:00:00Z", *args[-2:])  # the next quarter
    assert rc == 0 and f"(since 2026-Q2: 0 new, {len(data['findings'])} open, 0 fixed)" in out


@pytest.mark.parametrize(("extra", "rc"), [("", 0), ("    must_not_reach: [slack-secondary]\n", 1)])
def test_audit_command_fail_on_error(cli, tmp_path: Path, extra: str, rc: int) -> None:
    exp = (REPO / "config/audit/expectations.yaml").read_text()
    exp = exp.replace("    pages: true\n", "    pages: true\n" + extra, 1)
    (tmp_path / "exp.yaml").write_text(exp)
    got, out, _ = cli(
        "audit",
        "--alertmanager",
        AM,
        "--rules",
        str(REPO / "config/audit/rules/*.yml"),
        "--expectations",
        str(tmp_path / "exp.yaml"),
        "--out",
        str(tmp_path),
        "--now",
        "2026-04-01T09:00:00Z",
        "--fail-on-error",
    )
    assert got == rc, out


def test_audit_command_bad_rules_exit_2(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n")
    rc, _, err = cli(
        "audit",
        "--alertmanager",
        AM,
        "--rules",
        str(bad),
        "--expectations",
        str(REPO / "config/audit/expectations.yaml"),
        "--out",
        str(tmp_path),
    )
    assert rc == 2 and f"{bad}:4:" in err


def _audit_argv(tmp_path: Path, *extra: str, rules: str | None = None) -> list[str]:
    return [
        "audit",
        "--alertmanager",
        AM,
        "--rules",
        rules or str(REPO / "config/audit/rules/*.yml"),
        "--expectations",
        str(REPO / "config/audit/expectations.yaml"),
        "--out",
        str(tmp_path),
        *extra,
    ]


NOT_PROMETHEUS = Response(200, "<html><body>Grafana</body></html>", {"content-type": "text/html"})
PROMETHEUS_ERROR = Response(404, {"status": "error", "error": "not found"})


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("closed", "is unreachable"),
        ("ftp", "is unreachable"),
        ("no host", "is unreachable"),
        (NOT_PROMETHEUS, "is not a Prometheus HTTP API: /api/v1/status/buildinfo answered 200"),
        (PROMETHEUS_ERROR, "answered an error: not found"),
    ],
    ids=["closed-port", "ftp", "no-host", "not-prometheus", "error-status"],
)
def test_prometheus_not_answering_gives_the_offline_report(
    cli, tmp_path: Path, closed_url: str, answer: str | Response, why: str
) -> None:
    """No report at all would leave the scheduled quarter with nothing: the offline checks run,
    the report says at its top which online checks it skipped and why, and the exit is 1."""
    urls = {"closed": closed_url, "ftp": "ftp://127.0.0.1/", "no host": "http://"}
    with Scripted(*([answer] * 3 if isinstance(answer, Response) else [])) as server:
        url = urls.get(answer, server.url) if isinstance(answer, str) else server.url
        now = "2026-05-01T09:00:00Z"
        rc, out, err = cli(*_audit_argv(tmp_path, "--prometheus-url", url, "--now", now))
    assert rc == 1, err
    [line] = err.splitlines()
    assert line.startswith("error: offline report, online checks skipped: ") and why in line
    assert "Traceback" not in err and "-> " in out
    report = (tmp_path / "2026-Q2" / "report.md").read_text()
    title, note = report.split("\n\n")[:2]
    assert title == "# Alerting audit 2026-Q2"
    assert note.startswith(
        "**Offline report: the online checks were skipped** (`noise`, `dead-selector`, "
        "`uncovered-metric`) — "
    )
    assert why in note and url.rstrip("/") in note
    offline = json.loads((tmp_path / "2026-Q2" / "findings.json").read_text())
    assert why in offline["summary"]["offline"]
    # every offline check ran: the same findings as an audit asked for no Prometheus at all
    assert cli(*_audit_argv(tmp_path / "plain", "--now", now))[0] == 0
    plain = json.loads((tmp_path / "plain" / "2026-Q2" / "findings.json").read_text())
    assert plain["summary"]["offline"] is None

    def keys(doc: dict) -> list[tuple[str, ...]]:
        return sorted(
            tuple(f[k] for k in ("check_id", "alert", "subject")) for f in doc["findings"]
        )

    assert keys(offline) == keys(plain) and len(keys(plain)) > 10


def test_offline_report_names_no_credentials_of_the_url(
    cli, tmp_path: Path, closed_url: str
) -> None:
    canary = "canary-s3cret-0xfeed"
    url = closed_url.replace("://", f"://auditor:{canary}@") + f"/?token={canary}"
    rc, out, err = cli(*_audit_argv(tmp_path, "--prometheus-url", url, "--now", "2026-05-01"))
    assert rc == 1
    shown = f"Prometheus at {closed_url}/ is unreachable"
    assert shown in err
    written = [p.read_text() for p in (tmp_path / "2026-Q2").rglob("*") if p.is_file()]
    assert any(shown in text for text in written)
    assert not [text for text in [out, err, *written] if canary in text]


@pytest.mark.parametrize("kind", ["directory", "binary", "unreadable"])
def test_unreadable_rule_files_are_an_error(cli, tmp_path: Path, kind: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    bad = rules / "x.yml"
    if kind == "directory":
        bad.mkdir()
    elif kind == "binary":
        bad.write_bytes(b"\xff\xfe\x00groups")
    else:
        bad.write_text("groups: []\n")
        bad.chmod(0)
        if os.access(bad, os.R_OK):
            pytest.skip("running as root: every file is readable")
    rc, _, err = cli(*_audit_argv(tmp_path, rules=str(rules / "*.yml")))
    assert rc == 2 and err.startswith(f"error: {bad}: cannot read: ")


def test_bad_now_and_bad_coverage_regex_are_errors(cli, tmp_path: Path) -> None:
    rc, _, err = cli(*_audit_argv(tmp_path, "--now", "yesterday"))
    assert rc == 2 and err.startswith("error: --now: ")
    exp = tmp_path / "exp.yaml"
    exp.write_text("paging_receivers: [x]\ncoverage_ignore: ['^go_(']\n")
    argv = _audit_argv(tmp_path)
    argv[argv.index("--expectations") + 1] = str(exp)
    rc, _, err = cli(*argv)
    assert rc == 2 and "coverage_ignore: invalid regular expression" in err


HEAVY = ("sqlalchemy", "pydantic", "prefect", "pandas", "httpx", "asyncio", "matplotlib")


def test_routes_test_imports_nothing_heavy() -> None:
    """`fleet-alerting routes test` through the real entry point loads neither the store, the
    config schema, Prefect nor pandas: start-up stays close to amtool's (bench/routing_audit.py
    measures it)."""
    code = (
        "import sys\n"
        "from fleet_alerting.surfaces.cli import main\n"
        f"rc = main(['routes', 'test', '--config', {AM!r}, 'severity=critical'])\n"
        f"print(rc, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.splitlines()[-1] == "0 []"
