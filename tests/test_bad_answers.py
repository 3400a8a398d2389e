"""Every source survives a bad answer and tells the truth about what it saw.

Bad answers are served by local HTTP servers speaking each documented protocol (Prometheus'
query API, Alertmanager's v2 alerts, the Fleet API); outages are ports nobody listens on. The
outcome is asserted where an operator sees it: signals, incidents and notifications.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config.schema import PrometheusConfig, WatchConfig
from fleet_alerting.core.incidents import Incident, State
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity
from fleet_alerting.sources.prometheus.client import query_watches
from fleet_alerting.sources.prometheus.judge import (
    ERRORS_SOURCE,
    EVALUATES_AGAIN,
    NO_LONGER_REPORTED,
    evaluate_watches,
)
from fleet_alerting.store.database import Store
from tests.fakes.fleet_api import FleetApiServer, live_event
from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.saas import PagerDutyServer, SlackWebhookServer
from tests.servers import free_port

FLEET_TOKEN = "fleet-token-bad-answers-0001"

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LINKS = LinksConfig()


# Prometheus ----------------------------------------------------------------------------------
def sample(host: str, value: str = "0") -> dict:
    return {
        "metric": {"__name__": "role_agent_last_run_success", "host": host},
        "value": [1.7e9, value],
    }


def vector(*result: object) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": list(result)}}


class Prometheus(FakeServer):
    """`GET /api/v1/query` answering from `answers` (expression → body); a broken expression is
    Prometheus' own 400 bad_data."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, object] = {}

    def handle(self, request: Request) -> Response:
        query = request.query["query"][0]
        if query in self.answers:
            return Response(200, self.answers[query])  # type: ignore[arg-type]
        error = {"status": "error", "errorType": "bad_data", "error": "1:8: parse error"}
        return Response(400, error)


FAILURE = WatchConfig(
    name="RoleAgentFailure",
    expr="role_agent_last_run_success == 0",
    severity=Severity.critical,
    key_labels=["host"],
    metric="role_agent_last_run_success",
    summary="Role agent on {{ $labels.host }} failed",
)
BROKEN = WatchConfig(name="Broken", expr="sum(up", summary="never")
PRESENCE = "count by (host) (role_agent_last_run_success)"


@pytest.fixture
def prom() -> Iterator[Prometheus]:
    with Prometheus() as server:
        yield server


def watch_run(url: str, *watches: WatchConfig):
    config = PrometheusConfig(url=url, default_watches=False, watches=list(watches))
    outcomes = asyncio.run(query_watches(config, list(watches)))
    return evaluate_watches(outcomes, LINKS)


class Engine:
    """The engine and the run's `unseen` as the prometheus-watches flow wires them."""

    def __init__(self, policy: PolicyConfig):
        self.policy = policy
        self.incidents: dict[str, Incident] = {}
        self.at = T0

    def step(self, result) -> list[tuple[str, str]]:  # (kind, key) of each notification
        self.at += timedelta(minutes=1)
        signals = result.signals + result.unseen(self.incidents.values())
        evaluation = evaluate(signals, self.incidents, lambda _s: self.policy, self.at)
        self.incidents.update({i.key: i for i in evaluation.incidents})
        return [(n.kind.value, n.incident.key) for n in evaluation.notifications]

    def state(self, key: str) -> State | None:
        incident = self.incidents.get(key)
        return None if incident is None else incident.state


def test_prometheus_one_bad_sample_is_one_warning_and_the_rest_is_evaluated(
    prom: Prometheus,
) -> None:
    engine = Engine(PolicyConfig(open_after=1, resolve_after=1, notify=["slack"]))
    prom.answers[PRESENCE] = vector(*(sample(h, "1") for h in ("a", "b", "c", "d")))
    prom.answers[FAILURE.expr] = vector(sample("a"), sample("b"), sample("c"))
    engine.step(watch_run(prom.url, FAILURE))
    opened = {k for k, i in engine.incidents.items() if i.is_open}
    assert opened == {f"prometheus/RoleAgentFailure:host={h}" for h in "abc"}

    # b without `value`, a label that is not a string; c recovers
    bad_b = {"metric": {"host": "b"}}
    bad_label = {"metric": {"host": 7}, "value": [1, "0"]}
    prom.answers[FAILURE.expr] = vector(sample("a"), bad_b, bad_label)
    result = watch_run(prom.url, FAILURE)
    warnings = {s.key: s.summary for s in result.signals if s.firing and "malformed" in s.key}
    assert warnings == {
        'prometheus/RoleAgentFailure:malformed=expr {host="b"}': (
            'prometheus watch RoleAgentFailure: malformed sample {host="b"} in the answer to expr '
            "'role_agent_last_run_success == 0': value: Field required"
        ),
        "prometheus/RoleAgentFailure:malformed=expr result[2]": (
            "prometheus watch RoleAgentFailure: malformed sample result[2] in the answer to expr "
            "'role_agent_last_run_success == 0': metric.host: Input should be a valid string"
        ),
    }
    assert all(s.severity == Severity.warning for s in result.signals if s.key in warnings)
    sent = engine.step(result)
    # unreadable labels: any present series may be behind that sample, so nobody "recovers"
    assert sorted(sent) == sorted(("opened", key) for key in warnings)
    for host in "abc":
        assert engine.state(f"prometheus/RoleAgentFailure:host={host}") == State.firing

    # only b unreadable: c recovers, b's truth is unknown (neither resolved nor re-counted)
    prom.answers[FAILURE.expr] = vector(42, sample("a"), bad_b)
    sent = engine.step(watch_run(prom.url, FAILURE))  # 42: blind again, nothing resolves
    assert sent == [("opened", "prometheus/RoleAgentFailure:malformed=expr result[0]")]
    prom.answers[FAILURE.expr] = vector(sample("a"), bad_b)
    sent = engine.step(watch_run(prom.url, FAILURE))
    assert sorted(sent) == [
        ("resolved", "prometheus/RoleAgentFailure:host=c"),
        ("resolved", "prometheus/RoleAgentFailure:malformed=expr result[0]"),
        ("resolved", "prometheus/RoleAgentFailure:malformed=expr result[2]"),
    ]
    assert engine.state("prometheus/RoleAgentFailure:host=b") == State.firing
    assert engine.state("prometheus/RoleAgentFailure:host=a") == State.firing

    # the answer is whole again: b recovered, the last warnings resolve
    prom.answers[FAILURE.expr] = vector(sample("a"))
    sent = engine.step(watch_run(prom.url, FAILURE))
    assert sorted(sent) == [
        ("resolved", "prometheus/RoleAgentFailure:host=b"),
        ("resolved", 'prometheus/RoleAgentFailure:malformed=expr {host="b"}'),
    ]


def test_prometheus_bad_records_never_quote_their_values(prom: Prometheus) -> None:
    canary = "CANARY-secret-in-a-bad-sample"
    prom.answers[PRESENCE] = vector(sample("a", "1"))
    prom.answers[FAILURE.expr] = vector({"metric": {"host": "a"}, "value": [1, canary]})
    result = watch_run(prom.url, FAILURE)
    (warning,) = [s for s in result.signals if s.firing]
    assert "value.value: Value error, a sample value is a number in a string" in warning.summary
    assert canary not in repr(result.signals)


@pytest.mark.parametrize(
    "body, why",
    [
        ({"status": "success"}, "answer lacks data.resultType"),
        ({"status": "success", "data": {"resultType": "vector", "result": {"a": 1}}}, None),
        ({"status": "success", "data": {"resultType": "scalar", "result": "1"}}, "a scalar"),
        ([1, 2], "something other than API JSON"),
    ],
)
def test_prometheus_bad_envelope_is_the_watch_error_never_a_crash(
    prom: Prometheus, body: object, why: str | None
) -> None:
    prom.answers[PRESENCE] = vector(sample("a", "1"))
    prom.answers[FAILURE.expr] = body
    result = watch_run(prom.url, FAILURE)
    summaries = [s.summary for s in result.signals if s.firing]
    assert len(summaries) == 1
    if why:
        assert why in summaries[0] and "RoleAgentFailure" in summaries[0]
    else:
        assert "malformed sample" in summaries[0]


def test_prometheus_outage_resolves_and_reopens_nothing(prom: Prometheus) -> None:
    engine = Engine(PolicyConfig(open_after=1, resolve_after=1, notify=["slack"]))
    prom.answers[PRESENCE] = vector(sample("a", "1"), sample("b", "1"))
    prom.answers[FAILURE.expr] = vector(sample("a"))
    broken_key = f"{ERRORS_SOURCE}:watch=Broken"
    sent = engine.step(watch_run(prom.url, FAILURE, BROKEN))
    assert sorted(sent) == [
        ("opened", broken_key),
        ("opened", "prometheus/RoleAgentFailure:host=a"),
    ]

    down = f"http://127.0.0.1:{free_port()}"
    outage_key = f"{ERRORS_SOURCE}:watch=RoleAgentFailure\\, Broken"  # `,` escaped in a key
    for _ in range(3):  # Prometheus down: one warning naming every watch; nothing else moves
        result = watch_run(down, FAILURE, BROKEN)
        (outage,) = result.signals
        assert outage.key == outage_key
        assert outage.summary.startswith("prometheus watches RoleAgentFailure, Broken: cannot")
        sent = engine.step(result)
        assert sent in ([("opened", outage_key)], [])
        assert engine.state(broken_key) == State.firing  # the configuration error stays open
        assert engine.state("prometheus/RoleAgentFailure:host=a") == State.firing

    sent = engine.step(watch_run(prom.url, FAILURE, BROKEN))  # back: only the outage resolves
    assert sent == [("resolved", outage_key)]
    assert engine.incidents[outage_key].resolution == EVALUATES_AGAIN
    assert engine.state(broken_key) == State.firing
    assert engine.state("prometheus/RoleAgentFailure:host=a") == State.firing

    prom.answers[PRESENCE] = vector(sample("b", "1"))  # a gone from Prometheus: that resolves
    prom.answers[FAILURE.expr] = vector()
    assert engine.step(watch_run(prom.url, FAILURE)) == [
        ("resolved", "prometheus/RoleAgentFailure:host=a"),
        ("resolved", broken_key),  # the broken watch was removed from the config
    ]
    assert engine.incidents["prometheus/RoleAgentFailure:host=a"].resolution == NO_LONGER_REPORTED


class ChangingPrometheus(FakeServer):
    """Prometheus behind a proxy whose answer the test changes between runs."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = Response(503, "Service Unavailable")

    def handle(self, request: Request) -> Response:
        return self.answer


@pytest.mark.integration
def test_prometheus_watch_error_whose_cause_changes_is_told_once_more(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import prometheus_watches

    with ChangingPrometheus() as prom, SlackWebhookServer() as slack:
        (config_file.parent / "slack.url").write_text(f"{slack.url}/services/T/B/x")
        config = {
            "state": {"path": "state.sqlite"},
            "notify": {"outbox_file": "outbox.jsonl", "slack": {"webhook": {"file": "slack.url"}}},
            "policies": {
                "warning": {"open_after": 1, "resolve_after": 1, "repeat": None},
                "critical": {"page": [], "mirror": False},
            },
            "grouping": {"enabled": False},
            "prometheus": {
                "url": prom.url,
                "default_watches": False,
                "watches": [FAILURE.model_dump(mode="json", exclude_defaults=True)],
            },
        }
        config_file.write_text(yaml.safe_dump(config))

        def run() -> list[str]:
            slack.messages.clear()
            asyncio.run(prometheus_watches(str(config_file)))
            return [m["text"].split(" | ")[0] for m in slack.messages]

        (opened,) = run()
        assert opened.startswith("[WARNING] ")
        assert "cannot evaluate: Prometheus answered HTTP 503" in opened
        prom.answer = Response(429, "Too Many Requests")
        assert run() == []  # another face of the same outage: nothing
        prom.answer = Response(401, "Unauthorized")
        (refused,) = run()
        assert ": cause changed from not answering to HTTP 401: " in refused
        assert run() == []  # the same cause again: nothing
        prom.answer = Response(200, "<html>Sign in</html>", {"content-type": "text/html"})
        (changed,) = run()
        assert changed.startswith("[WARNING] Still failing after ")
        assert ": cause changed from HTTP 401 to unreadable answer: " in changed
        assert "something other than API JSON" in changed
        assert run() == []
        with Store(config_file.parent / "state.sqlite") as store:
            incidents = store.incidents(include_resolved=True)
    # the same incident all along: nothing resolved, nothing opened anew
    assert [(i.key, i.state) for i in incidents] == [
        (f"{ERRORS_SOURCE}:watch=RoleAgentFailure", State.firing)
    ]


# Alertmanager --------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def am_alert(name: str, fingerprint: str | None, started: timedelta, **labels: str) -> dict:
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": name, "severity": "critical", **labels},
        "annotations": {"summary": f"{name} is failing"},
        "startsAt": iso(now - started),
        "endsAt": iso(now + timedelta(minutes=4)),
        "updatedAt": iso(now),
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
        "receivers": [{"name": "ops"}],
        "generatorURL": "http://prometheus.example/graph",
    }
    if fingerprint is not None:
        alert["fingerprint"] = fingerprint
    return alert


class AlertmanagerV2(FakeServer):
    """`GET /api/v2/alerts` answering `alerts` (the same list for every filter), or `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[object] = []
        self.down = False

    def handle(self, request: Request) -> Response:
        if request.path != "/api/v2/alerts":
            return Response(404, "not found")
        if self.down:
            return Response(503, "Service Unavailable")
        if 'team="refused"' in request.query.get("filter", []):
            return Response(400, {"code": 400, "message": "bad matcher"})
        return Response(200, self.alerts)  # type: ignore[arg-type]


def am_config(path: Path, am: str, pd: str, slack: str, *extra_rules: dict) -> None:
    (path.parent / "pd.key").write_text("P" * 32)
    (path.parent / "slack.url").write_text(f"{slack}/services/T/B/x")
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {
            "outbox_file": "outbox.jsonl",
            "slack": {"webhook": {"file": "slack.url"}},
            "pagerduty": {"routing_key": {"file": "pd.key"}, "url": f"{pd}/v2/enqueue"},
        },
        "policies": {"critical": {"page": ["pagerduty"], "page_after": "5m", "mirror": False}},
        # per-incident messages are what this test reads (grouping: tests/test_storms.py)
        "grouping": {"enabled": False},
        "alertmanager": {
            "url": am,
            "rules": [{"name": "critical", "matchers": ['severity="critical"']}, *extra_rules],
            # no Watchdog rule, and no restart: an alert the fake does not list is over
            "watchdog": None,
            "restart_grace": "0s",
        },
    }
    path.write_text(yaml.safe_dump(config))


@pytest.mark.integration
def test_alertmanager_malformed_alert_beside_a_critical_one(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    valid = am_alert("FleetOffline", "f00dfeed", timedelta(minutes=10), instance="pi-audio-01")
    no_fingerprint = am_alert("ApiDown", None, timedelta(minutes=10))
    naive_end = am_alert("DiskFull", "0badc0de", timedelta(minutes=10))
    naive_end["endsAt"] = "2026-11-27T10:00:00"  # no time zone
    with AlertmanagerV2() as am, PagerDutyServer() as pd, SlackWebhookServer() as slack:
        am_config(config_file, am.url, pd.url, slack.url)
        am.alerts = [no_fingerprint, valid, naive_end, "garbage"]
        first = asyncio.run(alertmanager_escalation(str(config_file)))
        am.down = True  # an outage: nothing resolves, one warning names the rules
        down = asyncio.run(alertmanager_escalation(str(config_file)))
        am.down, am.alerts = False, [valid]
        back = asyncio.run(alertmanager_escalation(str(config_file)))
        with Store(config_file.parent / "state.sqlite") as store:
            incidents = {i.key: i for i in store.incidents(include_resolved=True)}

    assert (first["alerts"], first["firing"], first["malformed_alerts"]) == (1, 1, 3)
    # the critical one is paged once, never resolved by the outage
    assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [
        ("trigger", "alertmanager:fingerprint=f00dfeed")
    ]
    texts = [m["text"].split(" | ")[0] for m in slack.messages]
    warnings = [t for t in texts if t.startswith("[WARNING] Alertmanager listed a malformed")]
    assert sorted(warnings) == [
        "[WARNING] Alertmanager listed a malformed alert, alert [3]: an alert is a JSON object",
        "[WARNING] Alertmanager listed a malformed alert, alertname ApiDown (no fingerprint): "
        "fingerprint: Field required",
        "[WARNING] Alertmanager listed a malformed alert, fingerprint 0badc0de: endsAt: Input "
        "should have timezone info",
    ]
    assert down["rule_problems"] == 1
    outage = incidents["alertmanager-api:problem=Alertmanager rule critical"]
    assert "503" in outage.signal.summary and outage.state == State.resolved
    malformed = [i for i in incidents.values() if i.source == "alertmanager-records"]
    assert len(malformed) == 3
    assert {i.resolution for i in malformed} == {
        "no malformed alert of that name in Alertmanager's answer any more"
    }
    assert incidents["alertmanager:fingerprint=f00dfeed"].state == State.paged
    assert back["resolved"] == 4  # the three warnings and the outage, nothing else


@pytest.mark.integration
def test_alertmanager_outage_keeps_a_rule_configuration_error_open(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import alertmanager_escalation

    refused = {"name": "refused", "matchers": ['team="refused"'], "severity": "warning"}
    with AlertmanagerV2() as am, PagerDutyServer() as pd, SlackWebhookServer() as slack:
        am_config(config_file, am.url, pd.url, slack.url, refused)
        first = asyncio.run(alertmanager_escalation(str(config_file)))
        am.down = True
        down = asyncio.run(alertmanager_escalation(str(config_file)))
        am.down = False
        back = asyncio.run(alertmanager_escalation(str(config_file)))
    texts = [m["text"].split(" | ")[0] for m in slack.messages]
    assert (first["rule_problems"], down["rule_problems"], back["rule_problems"]) == (1, 1, 1)
    assert texts[0].startswith("[WARNING] Alertmanager rule refused: Alertmanager ")
    assert texts[1].startswith("[WARNING] Alertmanager rules critical, refused: ")
    assert texts[2].startswith("[RESOLVED after ") and "rules critical, refused" in texts[2]
    assert len(texts) == 3  # the configuration error never resolved, so it never re-opened


# Fleet API -----------------------------------------------------------------------------------
def fleet_config(path: Path, fleet: str, slack: str) -> None:
    (path.parent / "fleet.token").write_text(FLEET_TOKEN)
    (path.parent / "slack.url").write_text(f"{slack}/services/T/B/x")
    config = {
        "state": {"path": "state.sqlite"},
        "notify": {"outbox_file": "outbox.jsonl", "slack": {"webhook": {"file": "slack.url"}}},
        "policies": {
            "warning": {"open_after": 1, "resolve_after": 1},
            "critical": {"page": [], "mirror": False},  # Slack only (fail closed)
        },
        # per-incident messages are what this test reads (grouping: tests/test_storms.py)
        "grouping": {"enabled": False},
        "fleet_api": {"url": fleet, "token": {"file": "fleet.token"}},
    }
    path.write_text(yaml.safe_dump(config))


@pytest.mark.integration
def test_fleet_events_bad_event_is_one_warning_and_the_feed_goes_on(
    prefect_api: str, config_file: Path
) -> None:
    from fleet_alerting.flows.watches import fleet_events

    now = datetime.now(UTC)
    good = live_event(now - timedelta(minutes=1), 1, "command.failed", "error", "pi-audio-01")
    oops = live_event(now - timedelta(minutes=2), 2, "command.failed", "error", "pi-audio-02")
    oops["metadata"] = "oops"
    listed = live_event(now - timedelta(minutes=3), 3, "audio.upload", "error", "pi-audio-03")
    listed["metadata"] = ["not", "an", "object"]
    with FleetApiServer(FLEET_TOKEN) as fleet, SlackWebhookServer() as slack:
        fleet_config(config_file, fleet.url, slack.url)
        fleet.events = [good, oops, listed]
        first = asyncio.run(fleet_events(str(config_file)))
        fleet.fail_next = [Response(503, "upstream down")]  # the API down: nothing resolves
        down = asyncio.run(fleet_events(str(config_file)))
        fleet.events = [good]
        back = asyncio.run(fleet_events(str(config_file)))
    assert (first["events_seen"], first["alerting_events"], first["malformed_events"]) == (1, 1, 2)
    texts = [m["text"].split(" | ")[0] for m in slack.messages]
    assert texts[0] == "[CRITICAL] command.failed on pi-audio-01: event 1"
    stamp = {e["type"]: e["timestamp"] for e in (oops, listed)}
    assert sorted(texts[1:3]) == [
        f"[WARNING] Fleet API /health/events/recent: malformed audio.upload event at "
        f"{stamp['audio.upload']}: metadata: Input should be a valid dictionary or instance of "
        "Metadata",
        f"[WARNING] Fleet API /health/events/recent: malformed command.failed event at "
        f"{stamp['command.failed']}: metadata: Input should be a valid dictionary or instance of "
        "Metadata",
    ]
    assert (down["api_problems"], down["resolved"]) == (1, 0)
    assert back["resolved"] == 3  # the outage and both malformed-event warnings
    resolved = [t for t in texts if t.startswith("[RESOLVED")]
    assert len(resolved) == 3


# blackbox_exporter ---------------------------------------------------------------------------
class Exporter(FakeServer):
    """`GET /probe` of blackbox_exporter: `probe_success` per target, or a bad answer."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: Response | None = None
        self.failing: set[str] = set()

    def handle(self, request: Request) -> Response:
        if self.answer is not None:
            return self.answer
        success = 0 if request.query["target"][0] in self.failing else 1
        text = f"probe_success {success}\nprobe_http_status_code {200 if success else 503}\n"
        return Response(200, text, {"content-type": "text/plain; version=0.0.4"})


def test_blackbox_exporter_outage_resolves_nothing_and_names_the_targets() -> None:
    from fleet_alerting.config.schema import BlackboxConfig, HttpTarget
    from fleet_alerting.sources.blackbox.client import (
        exporter_outage,
        from_config,
        probe_all,
        to_signal,
    )
    from fleet_alerting.sources.blackbox.client import (
        unseen as gone,
    )

    engine = Engine(PolicyConfig(open_after=1, resolve_after=1, notify=["slack"]))
    api = HttpTarget(name="api", url="http://api.example.org/api/healthz", severity="critical")
    web = HttpTarget(name="web", url="http://api.example.org/", severity="critical")
    targets = [from_config(api), from_config(web)]

    def run(exporter_url: str, complete: bool = True, probed=targets) -> list[tuple[str, str]]:
        config = BlackboxConfig(mode="exporter", exporter_url=exporter_url, timeout="1s")
        results = asyncio.run(probe_all(probed, config))
        signals = [to_signal(r) for r in results if r.observed]
        signals += exporter_outage(results, exporter_url)

        class Run:  # what the flow hands the engine
            pass

        result = Run()
        result.signals = signals
        result.unseen = lambda incidents: gone(signals, incidents, results, complete)
        return engine.step(result)

    with Exporter() as exporter:
        exporter.failing = {api.url}
        assert run(exporter.url) == [("opened", f"blackbox:url={api.url}")]
        exporter.answer = Response(200, "garbage {{{ not exposition format")
        sent = run(exporter.url)  # the exporter answers nonsense: the API is not "up"
        assert sent == [("opened", f"blackbox-exporter:exporter={exporter.url}")]
        outage = engine.incidents[f"blackbox-exporter:exporter={exporter.url}"].signal
        assert outage.summary.startswith("blackbox_exporter could not probe 2 target(s): api, web")
        assert engine.state(f"blackbox:url={api.url}") == State.firing
        dead = f"http://127.0.0.1:{free_port()}"
        sent = run(dead)  # configured to an exporter that is gone: still no target resolves
        assert sorted(sent) == [
            ("opened", f"blackbox-exporter:exporter={dead}"),
            ("resolved", f"blackbox-exporter:exporter={exporter.url}"),  # no longer configured
        ]
        assert engine.state(f"blackbox:url={api.url}") == State.firing
        exporter.answer = None
        # back, but the file listing the API is unreadable: the API is not "no longer probed"
        assert run(exporter.url, complete=False, probed=targets[1:]) == [
            ("resolved", f"blackbox-exporter:exporter={dead}"),
        ]
        assert engine.state(f"blackbox:url={api.url}") == State.firing
        exporter.failing = set()
        assert run(exporter.url) == [("resolved", f"blackbox:url={api.url}")]
