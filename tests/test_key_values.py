"""Label values that spell a key's separators: `{host="pi-01,role=x", role="y"}` and
`{host="pi-01", role="x,role=y"}` are two devices, so they are two incidents — the key escapes
`\\` and `,` in values (`core.keys.key_value`). A real Prometheus scrapes and serves both series
of a watch keyed by `[host, role]`; both are told. Keys of values without either are spelled as
before (stored incidents keep their keys across the upgrade)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from fleet_alerting.config import Config
from fleet_alerting.config.schema import WatchConfig
from fleet_alerting.core import keys
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.links import LinksConfig
from fleet_alerting.sources import prometheus
from fleet_alerting.sources.prometheus.judge import Series, firing_signal, source_of
from fleet_alerting.store.database import Store
from fleet_alerting.tasks.observe import observe
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.fakes.http import FakeServer, Request, Response
from tests.servers import start_prometheus, wait_until

COLLIDING = ({"host": "pi-01,role=x", "role": "y"}, {"host": "pi-01", "role": "x,role=y"})
VALUES = (
    "",
    "pi-01",
    "p",
    "q",
    "p,b=q",
    "a,b",
    "a=b",
    ",",
    "\\",
    "\\,",
    "a\\",
    "x,role=y",
    "=,\\=",
    "pi-\x0003",
)


def test_label_sets_that_spelled_one_key_have_two() -> None:
    first, second = (incident_key("prometheus:Agent", labels) for labels in COLLIDING)
    assert first != second
    assert first == "prometheus:Agent:host=pi-01\\,role=x,role=y"


def test_values_without_a_comma_or_backslash_are_spelled_as_before() -> None:
    labels = {"role": "audio=1", "host": "pi-01"}
    assert incident_key("probe", labels) == "probe:host=pi-01,role=audio=1"


def test_no_two_label_sets_share_a_key() -> None:
    sets = [{}] + [{"a": v} for v in VALUES] + [{"b": v} for v in VALUES]
    sets += [{"a": x, "b": y} for x, y in itertools.product(VALUES, repeat=2)]
    keys = [incident_key("s", labels) for labels in sets]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("key_labels", [[], ["host"], ["role", "host"]])
def test_the_watch_keys_a_series_as_incident_key_does(key_labels: list[str]) -> None:
    """The judge spells keys itself on its fast paths (one key label, several, none)."""
    watch = WatchConfig(name="Agent", expr="x == 0", key_labels=key_labels, summary="s")
    for host, role in itertools.product(VALUES, repeat=2):
        labels = {"__name__": "x", "host": host, "role": role}
        expected = {k: v for k, v in labels.items() if k != "__name__"}
        if key_labels:
            expected = {k: labels[k] for k in key_labels}
        signal = firing_signal(watch, Series(labels, 0.0), LinksConfig())
        assert signal.key == incident_key(source_of(watch), expected)


@pytest.mark.parametrize("name", ["host,role", "host=x", "", "1host"])
def test_a_key_label_that_is_no_label_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="key_labels"):
        WatchConfig(name="Agent", expr="x == 0", key_labels=["host", name], summary="s")


class Exporter(FakeServer):
    def handle(self, request: Request) -> Response:
        lines = ["# TYPE role_agent_last_run_success gauge"]
        for labels in COLLIDING:
            spelled = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"role_agent_last_run_success{{{spelled}}} 0")
        return Response(200, "\n".join(lines) + "\n", {"content-type": "text/plain"})


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with Exporter() as exporter:
        workdir = tmp_path_factory.mktemp("prometheus")
        server, url = start_prometheus(workdir, {"pi": f"127.0.0.1:{exporter.port}"})
        yield url
        server.stop()


def watched(url: str, tmp_path: Path) -> Config:
    def served() -> bool:
        query = {"query": "role_agent_last_run_success == 0"}
        answer = httpx.get(f"{url}/api/v1/query", params=query).json()
        return len(answer["data"]["result"]) == len(COLLIDING)

    wait_until(served, 30, "both series failing in Prometheus")
    watch = {
        "name": "RoleAgentFailure",
        "expr": "role_agent_last_run_success == 0",
        "metric": "role_agent_last_run_success",
        "key_labels": ["host", "role"],
        "severity": "warning",
        "summary": "{{ $labels.host }} / {{ $labels.role }} failed",
    }
    return Config.model_validate(
        {
            "state": {"path": str(tmp_path / "state.sqlite")},
            "prometheus": {"url": url, "default_watches": False, "watches": [watch]},
            "policies": {"warning": {"open_after": 1, "resolve_after": 1}},
        }
    )


def run(store: Store, config: Config, now: datetime) -> None:
    seen = asyncio.run(observe(prometheus.WATCH, config, now))
    evaluate_and_record(
        store, seen.signals, config.policy, now, seen.unseen_sources, unseen=seen.unseen
    )


@pytest.mark.integration
def test_two_devices_whose_labels_spelled_one_key_are_both_told(scraped: str, tmp_path) -> None:
    config = watched(scraped, tmp_path)
    start = datetime.now(UTC)
    with Store(config.state) as store:
        for minute in range(2):
            run(store, config, start + timedelta(minutes=minute))
        incidents = {
            (i.signal.labels["host"], i.signal.labels["role"]): i.state.value
            for i in store.incidents()
            if "role" in i.signal.labels
        }
        told = [
            row.notification.incident.signal.summary
            for row in store.outbox(("queued",))
            if row.notification.channel == "slack"
        ]
    assert incidents == {("pi-01,role=x", "y"): "firing", ("pi-01", "x,role=y"): "firing"}
    assert len(told) == 1 and told[0].startswith("2 ")  # one group message of both


@pytest.mark.integration
def test_an_incident_keyed_the_old_way_resolves_and_opens_under_its_new_key(
    scraped: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored by a version that spelled values as they are (one incident for both devices)."""
    config = watched(scraped, tmp_path)
    start = datetime.now(UTC)
    with Store(config.state) as store:
        with monkeypatch.context() as old:
            old.setattr(keys, "key_value", lambda value: value)
            old.setattr("fleet_alerting.sources.prometheus.judge.key_value", lambda value: value)
            for minute in range(2):
                run(store, config, start + timedelta(minutes=minute))
        (before,) = [i.key for i in store.incidents() if "role" in i.signal.labels]
        for minute in range(2, 5):
            run(store, config, start + timedelta(minutes=minute))
        states = {
            i.key: i.state.value
            for i in store.incidents(include_resolved=True)
            if "role" in i.signal.labels
        }
    assert before == "prometheus/RoleAgentFailure:host=pi-01,role=x,role=y"
    assert states.pop(before) == "resolved"
    assert sorted(states.values()) == ["firing", "firing"]
