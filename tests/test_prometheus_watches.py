"""Pure watch logic: templates (table-driven), config validation, query results → signals, links."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from fleet_alerting.config import ConfigError, load_config
from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity
from fleet_alerting.core.templates import check_template, render
from fleet_alerting.sources.prometheus.judge import (
    NO_LONGER_REPORTED,
    RECOVERED,
    Series,
    WatchOutcome,
    active_watches,
    evaluate_watches,
    presence_query,
)

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "prometheus_templates.yaml").read_text())
LINKS = LinksConfig(
    grafana_url="https://grafana.test/", loki_datasource_uid="LOKI1", prometheus_url="http://p:9090"
)
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize("case", CASES["render"], ids=[c["name"] for c in CASES["render"]])
def test_render(case: dict) -> None:
    check_template(case["template"])
    got = render(case["template"], case["labels"], case["value"], case.get("watch", ""))
    assert got == case["expect"]


@pytest.mark.parametrize("case", CASES["errors"], ids=[c["name"] for c in CASES["errors"]])
def test_bad_template_is_refused(case: dict) -> None:
    with pytest.raises(ValueError, match=r"unknown|unbalanced") as caught:
        check_template(case["template"])
    assert case["error"] in str(caught.value)


def test_config_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "prometheus:\n"
        "  url: http://127.0.0.1:9090\n"
        "  bearer_token: s3cr3t-inline\n"
        "  watches:\n"
        "    - name: Ok\n"
        "      expr: up == 0\n"
        "      summary: '{{ .Labels.instance }} down'\n"
        "    - name: NoMetric\n"
        "      expr: up == 0\n"
        "      summary: down\n"
        "      absent_is: warning\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert problems[0].startswith(f"{path}:3: prometheus.bearer_token: secrets are given by ref")
    assert problems[1].startswith(f"{path}:7: prometheus.watches[0].summary: unknown template")
    assert problems[2].startswith(f"{path}:8: prometheus.watches[1]: absent_is needs `metric`")
    assert "s3cr3t-inline" not in str(caught.value)


def test_shipped_watches_and_overrides() -> None:
    config = PrometheusConfig(
        role_agent_stale_after=timedelta(minutes=30),
        device_failures_threshold=10,
        device_failures_window=timedelta(minutes=10),
        watches=[
            WatchConfig(name="CircuitBreakerOpen", expr="x", summary="s", enabled=False),
            WatchConfig(name="RoleAgentFailure", expr="y == 0", summary="s", severity="warning"),
            WatchConfig(name="Extra", expr="up == 0", summary="{{ $labels.instance }} down"),
        ],
    )
    watches = {w.name: w for w in active_watches(config)}
    assert list(watches) == [
        "RoleAgentFailure",
        "RoleAgentStale",
        "UpstreamDeviceFailuresSpike",
        "Extra",
    ]
    assert watches["RoleAgentFailure"].expr == "y == 0"
    assert watches["RoleAgentStale"].expr == "time() - role_agent_last_run_timestamp > 1800"
    assert watches["UpstreamDeviceFailuresSpike"].expr == (
        "sum by (deviceId, reason) (increase(upstream_device_failures_total[10m])) > 10"
    )
    shipped = {w.name: w for w in active_watches(PrometheusConfig())}
    assert shipped["RoleAgentFailure"].severity == Severity.critical
    assert shipped["RoleAgentStale"].expr.endswith("> 900")  # 15 minutes by default
    assert presence_query(shipped["UpstreamDeviceFailuresSpike"]) == (
        "count by (deviceId, reason) (upstream_device_failures_total)"
    )
    assert active_watches(PrometheusConfig(default_watches=False)) == []


def _failure_watch() -> WatchConfig:
    return next(w for w in active_watches(PrometheusConfig()) if w.name == "RoleAgentFailure")


def _outcome(firing: list[str], present: list[str] | None) -> WatchOutcome:
    watch = _failure_watch()
    return WatchOutcome(
        watch,
        firing=[Series({"__name__": "x", "host": h, "instance": "n:9100"}, 0.0) for h in firing],
        present=None if present is None else [Series({"host": h}, 1.0) for h in present],
    )


def test_firing_series_become_signals_with_steps_and_links() -> None:
    result = evaluate_watches([_outcome(["pi-audio-01"], ["pi-audio-01", "pi-audio-02"])], LINKS)
    firing = [s for s in result.signals if s.firing]
    (signal,) = firing
    assert signal.key == "prometheus/RoleAgentFailure:host=pi-audio-01"
    assert signal.summary == "Role agent on pi-audio-01 failed its last run"
    assert signal.remediation[0] == "ssh pi-audio-01"
    assert signal.evidence["value"] == "0"
    assert signal.labels == {"host": "pi-audio-01", "instance": "n:9100"}
    links = {link.text: link.url for link in signal.links}
    pane = json.loads(parse_qs(urlsplit(links["Logs (Grafana Explore)"]).query)["panes"][0])["a"]
    assert pane["queries"][0]["expr"] == '{service="role-agent", host="pi-audio-01"}'
    assert pane["queries"][0]["datasource"] == {"type": "loki", "uid": "LOKI1"}
    assert links["Prometheus graph"].startswith("http://p:9090/graph?")
    graph_query = parse_qs(urlsplit(links["Prometheus graph"]).query)
    assert graph_query["g0.expr"] == ["role_agent_last_run_success == 0"]
    # the host still reported but not failing is an ok-signal; the metric is present
    ok = {s.key: s.summary for s in result.signals if not s.firing}
    assert ok == {
        "prometheus/RoleAgentFailure:host=pi-audio-02": RECOVERED,
        "prometheus/RoleAgentFailure:absent=role_agent_last_run_success": (
            "role_agent_last_run_success is reported again"
        ),
    }
    assert result.evaluated == {"RoleAgentFailure"}
    assert [(r["state"], r["detail"]) for r in result.rows] == [
        ("evaluated", "1 firing, 2 present"),
        ("FIRING", "Role agent on pi-audio-01 failed its last run"),
    ]


def test_logs_link_is_left_out_when_the_label_is_missing() -> None:
    watch = _failure_watch()
    outcome = WatchOutcome(watch, firing=[Series({"instance": "n:9100"}, 0.0)], present=None)
    (signal,) = evaluate_watches([outcome], LINKS).signals
    assert [link.text for link in signal.links] == ["Prometheus graph"]
    assert signal.remediation[0] == "ssh <no value>"
    assert evaluate_watches([outcome], LinksConfig()).signals[0].links == ()


def test_absent_metric_is_a_signal_of_its_own() -> None:
    result = evaluate_watches([_outcome([], [])], LINKS)
    (absent,) = result.signals
    assert absent.firing and absent.severity == Severity.warning
    assert absent.key == "prometheus/RoleAgentFailure:absent=role_agent_last_run_success"
    assert absent.summary.startswith("No series of role_agent_last_run_success in Prometheus")
    assert any("Status → Targets" in step for step in absent.remediation)
    graph = parse_qs(urlsplit(absent.links[0].url).query)["g0.expr"]
    assert graph == ["absent(role_agent_last_run_success)"]


def test_failed_watch_keeps_its_incidents_and_names_itself(tmp_path: Path) -> None:
    broken = WatchConfig(name="Broken", expr="sum(up", summary="s")
    outcomes = [
        _outcome(["pi-audio-01"], ["pi-audio-01"]),
        WatchOutcome(broken, error="expr 'sum(up': HTTP 400 bad_data: parse error", permanent=True),
        WatchOutcome(_failure_watch().model_copy(update={"name": "Other"}), error="timed out"),
    ]
    result = evaluate_watches(outcomes, LINKS, tmp_path / "c.yaml")
    errors = {s.key: s.summary for s in result.signals if s.source == "prometheus-errors"}
    assert errors == {
        "prometheus-errors:watch=Broken": f"{tmp_path / 'c.yaml'}: prometheus watch Broken: "
        "configuration error: expr 'sum(up': HTTP 400 bad_data: parse error",
        "prometheus-errors:watch=Other": f"{tmp_path / 'c.yaml'}: prometheus watch Other: "
        "cannot evaluate: timed out",
    }
    # only evaluated watches may resolve what they no longer report; a watch that could not run
    # (Other: timed out) keeps what it has
    assert result.evaluated == {"RoleAgentFailure"}
    assert result.known == {"RoleAgentFailure", "Broken"}


def test_one_error_of_every_watch_is_one_signal() -> None:
    watches = active_watches(PrometheusConfig())
    result = evaluate_watches(
        [WatchOutcome(w, error="Prometheus unreachable") for w in watches], LINKS
    )
    (signal,) = result.signals
    assert signal.summary.startswith("prometheus watches RoleAgentFailure, RoleAgentStale, ")


def test_recovery_and_disappearance_resolve_only_their_own_incident() -> None:
    policy = PolicyConfig(open_after=1, resolve_after=2)
    incidents: dict = {}

    def step(firing: list[str], present: list[str], at: int) -> dict[str, str]:
        result = evaluate_watches([_outcome(firing, present)], LINKS)
        signals = result.signals
        signals = signals + result.unseen(incidents.values())
        evaluation = evaluate(signals, incidents, lambda _s: policy, T0 + timedelta(minutes=at))
        incidents.update({i.key: i for i in evaluation.incidents})
        return {n.incident.key.split("=")[-1]: n.kind.value for n in evaluation.notifications}

    hosts = ["a", "b", "c"]
    assert step(["a", "b", "c"], hosts, 0) == {"a": "opened", "b": "opened", "c": "opened"}
    assert step(["b", "c"], hosts, 1) == {}  # a recovering: hysteresis
    assert step(["b"], ["a", "b"], 2) == {"a": "resolved"}  # c gone: first check
    assert step(["b"], ["a", "b"], 3) == {"c": "resolved"}
    by_host = {k.split("=")[-1]: i for k, i in incidents.items()}
    assert by_host["a"].resolution == RECOVERED
    assert by_host["c"].resolution == NO_LONGER_REPORTED
    assert by_host["b"].is_open
