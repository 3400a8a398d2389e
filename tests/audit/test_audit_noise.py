"""Noise and response statistics: episodes from raw samples (tables below), and a quarter of
ALERTS history backfilled into a real Prometheus with promtool, read back by the audit."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from audit_helpers import HistorySeries

from fleet_alerting.audit import synth
from fleet_alerting.audit.live import gather_inputs, noise_statistics
from fleet_alerting.audit.noise import IncidentRecord, episodes, watch_table
from fleet_alerting.audit.report import write_report
from fleet_alerting.audit.run import run_audit
from tests.servers import Server, free_port, http_ready, require_binary

NOW = datetime(2026, 10, 1, tzinfo=UTC)
START = NOW - timedelta(days=90)


def _series(times: list[float], active: list[float] | None = None, **labels: str) -> tuple:
    metric = {"alertname": "A", "severity": "warning", **labels}
    firing = {"metric": {"__name__": "ALERTS", "alertstate": "firing", **metric}}
    firing["values"] = [[t, "1"] for t in times]
    state = {"metric": {"__name__": "ALERTS_FOR_STATE", **metric}}
    state["values"] = [[t, str(a)] for t, a in zip(times, active or [], strict=False)]
    return firing, state


@pytest.mark.parametrize(
    ("times", "active", "want"),
    [
        # one run of 1-minute evaluations: one episode, ends one interval after the last
        ([0, 60, 120], None, [(0, 180, 0)]),
        # a gap longer than two intervals: two episodes
        ([0, 60, 120, 600, 660], None, [(0, 180, 0), (600, 720, 600)]),
        # 15 s evaluations; resolved for 45 s: two episodes
        ([0, 15, 30, 90, 105], None, [(0, 45, 0), (90, 120, 90)]),
        # single-sample episodes: the interval defaults to a minute
        ([0, 3600, 7200], None, [(0, 60, 0), (3600, 3660, 3600), (7200, 7260, 7200)]),
        # ALERTS_FOR_STATE says the problem began 5 minutes before it fired (`for: 5m`)
        ([600, 660], [300, 300], [(600, 720, 300)]),
    ],
)
def test_episodes(times: list, active: list | None, want: list) -> None:
    firing, state = _series(times, active)
    eps = episodes([firing], [state] if active else [])
    assert list(zip(eps["start"], eps["end"], eps["onset"], strict=True)) == want


def test_episodes_join_query_windows_and_drop_duplicates() -> None:
    a, _ = _series([0, 60, 120])
    b, _ = _series([120, 180])  # the next window repeats the boundary sample
    other, _ = _series([0, 60], instance="x")
    eps = episodes([a, b, other])
    assert sorted(zip(eps["series"].str.contains("instance"), eps["end"], strict=True)) == [
        (False, 240.0),
        (True, 120.0),
    ]


def test_watch_table_from_incidents() -> None:
    t = NOW - timedelta(days=1)
    incidents = [
        IncidentRecord("blackbox-probe", "critical", t, t + timedelta(minutes=2), paged=True),
        IncidentRecord("blackbox-probe", "critical", t, t + timedelta(minutes=60), paged=True),
        IncidentRecord(
            "blackbox-probe",
            "critical",
            t,
            t + timedelta(minutes=30),
            acknowledged_at=t + timedelta(minutes=4),
        ),
        IncidentRecord("zigbee-probe", "warning", t, None),
        IncidentRecord("zigbee-probe", "warning", START - timedelta(days=1), None),  # before
    ]
    df = watch_table(incidents, START, NOW, flap_seconds=300).set_index("watch")
    bb = df.loc["blackbox-probe"]
    assert (bb.incidents, bb.flaps, bb.pages) == (3, 1, 2)
    assert (bb.median_resolve_min, bb.median_ack_min) == (30.0, 4.0)
    assert df.loc["zigbee-probe"].incidents == 1 and pd.isna(df.loc["zigbee-probe"].p90_resolve_min)


# --- a quarter in a real Prometheus --------------------------------------------------------

ALERTS = [
    {"alert": "Flappy", "severity": "warning", "fires": 300, "minutes": 2},
    {"alert": "PageBlip", "severity": "critical", "fires": 12, "minutes": 3},
    {"alert": "Stuck", "severity": "warning", "fires": 9, "minutes": 3000},
    {"alert": "Normal", "severity": "critical", "fires": 4, "minutes": 45, "pending_minutes": 5},
    {
        "alert": "Device",
        "severity": "warning",
        "fires": 20,
        "minutes": 30,
        "labels": {"instance": "pi-01"},
    },
    {
        "alert": "Device",
        "severity": "warning",
        "fires": 20,
        "minutes": 30,
        "labels": {"instance": "pi-02"},
        "offset_minutes": 600,
    },
]
RULE_NAMES = [
    ("Flappy", "warning"),
    ("PageBlip", "critical"),
    ("Stuck", "warning"),
    ("Normal", "critical"),
    ("Device", "warning"),
    ("Quiet", "critical"),
]
AM = {
    "route": {
        "receiver": "slack",
        "group_by": ["alertname", "instance"],
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "pd", "continue": True},
            {"matchers": ['severity=~"critical|warning"'], "receiver": "slack"},
        ],
    },
    "receivers": [
        {"name": "slack", "slack_configs": [{"channel": "#ops", "api_url_file": "/x"}]},
        {"name": "pd", "pagerduty_configs": [{"routing_key_file": "/y"}]},
    ],
}


def _history() -> tuple[list, list]:
    for a in ALERTS:
        a.setdefault("offset_minutes", 1)  # no sample exactly on the period's edge
    return synth.alert_history(ALERTS, START.timestamp(), NOW.timestamp())


def _write_inputs(d: Path) -> None:
    rules = [
        {
            "alert": name,
            "expr": "vector(1)",
            "labels": {"severity": sev},
            "annotations": {"summary": "s", "runbook_url": "r"},
        }
        for name, sev in RULE_NAMES
    ]
    (d / "x.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]}))
    (d / "am.yml").write_text(yaml.safe_dump(AM))
    (d / "exp.yaml").write_text("paging_receivers: [pd]\n")


@pytest.fixture(scope="module")
def history_prometheus(tmp_path_factory: pytest.TempPathFactory):
    """Prometheus over a TSDB made by promtool from a quarter of synthetic ALERTS history."""
    binary = require_binary("prometheus")
    promtool = require_binary("promtool")
    work = tmp_path_factory.mktemp("history")
    firing, for_state = _history()
    (work / "history.om").write_text(synth.openmetrics(firing + for_state))
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            "--max-block-duration=2400h",
            str(work / "history.om"),
            str(work / "data"),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (work / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    port = free_port()
    server = Server(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            "--storage.tsdb.retention.time=10y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        work,
        http_ready(f"http://127.0.0.1:{port}/-/ready"),
        "prometheus",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.integration
def test_noise_from_backfilled_prometheus(history_prometheus: str, tmp_path: Path) -> None:
    _write_inputs(tmp_path)
    inp = gather_inputs(
        alertmanager_file=str(tmp_path / "am.yml"),
        rules_glob=str(tmp_path / "*.rules.yml"),
        expectations_file=str(tmp_path / "exp.yaml"),
        now=NOW,
        prometheus_url=history_prometheus,
        noise_days=90,
    )
    noise = inp.noise
    assert noise is not None
    a = noise.alerts.set_index("alert")
    assert a.loc["Flappy"].fires == 300 and a.loc["Flappy"].flaps == 300
    assert a.loc["PageBlip"].pages == 12 and a.loc["Flappy"].pages == 0
    assert a.loc["Device"].fires == 40 and a.loc["Quiet"].fires == 0
    # Normal waited 5 minutes in pending: resolve time counts from its onset
    assert a.loc["Normal"].median_resolve_min == pytest.approx(50.0)
    assert 0.2 < a.loc["Stuck"].firing_share < 0.22
    sev = noise.severities.set_index("severity")
    assert sev.loc["critical"].pages == 16 and sev.loc["warning"].fires == 349

    # the same history computed in-process, without Prometheus: identical tables
    direct = noise_statistics(
        HistorySeries([], [], _history()), inp.am, inp.rules, inp.expectations, START, NOW
    )
    pd.testing.assert_frame_equal(noise.alerts, direct.alerts)

    findings = {(f.check_id, f.alert) for f in run_audit(inp).findings}
    assert {
        ("noise-flapping", "Flappy"),
        ("noise-page-autoresolves", "PageBlip"),
        ("noise-always-firing", "Stuck"),
        ("noise-never-fired", "Quiet"),
    } <= findings
    assert not {f for f in findings if f[1] in ("Normal", "Device")}

    written = write_report(run_audit(inp), tmp_path / "reports")
    md = written.markdown
    assert "## Noise and response" in md and "### Per alert" in md
    assert md.count("](data:image/png;base64,") == 2  # fires per week, time to resolve
    assert (written.directory / "noise_alerts.csv").is_file()


@pytest.mark.integration
def test_audit_cli_with_noise(history_prometheus: str, tmp_path: Path, cli) -> None:
    _write_inputs(tmp_path)
    rc, _, err = cli(
        "audit",
        "--alertmanager",
        str(tmp_path / "am.yml"),
        "--rules",
        str(tmp_path / "*.rules.yml"),
        "--expectations",
        str(tmp_path / "exp.yaml"),
        "--out",
        str(tmp_path / "r"),
        "--now",
        NOW.isoformat(),
        "--prometheus-url",
        history_prometheus,
    )
    assert rc == 0, err
    html = (tmp_path / "r" / "2026-Q4" / "report.html").read_text()
    assert "Noise and response" in html and html.count("data:image/png;base64,") == 2


def test_watch_incidents_from_the_store(tmp_path: Path) -> None:
    """The quarterly task reads the incident store into the noise statistics' records."""
    from fleet_alerting.core.incidents import Incident, State
    from fleet_alerting.core.policy import Evaluation
    from fleet_alerting.core.signals import Severity, Signal
    from fleet_alerting.store.database import Store
    from fleet_alerting.tasks.audit import incident_records

    store = Store(tmp_path / "state.db")
    t = NOW - timedelta(days=3)
    for key, minutes, paged in (("api", 2, True), ("dev", 40, False)):
        signal = Signal(key, "blackbox-probe", True, Severity.critical, "down")
        inc = Incident(
            key,
            "blackbox-probe",
            Severity.critical,
            State.resolved,
            t,
            t,
            signal,
            resolved_at=t + timedelta(minutes=minutes),
            paged_at=t + timedelta(minutes=1) if paged else None,
        )
        store.record(Evaluation([inc], []), t)
    store.close()
    records = incident_records(str(tmp_path / "state.db"))
    df = watch_table(records, START, NOW, flap_seconds=300).set_index("watch")
    row = df.loc["blackbox-probe"]
    assert (row.severity, row.incidents, row.flaps, row.pages) == ("critical", 2, 1, 1)
