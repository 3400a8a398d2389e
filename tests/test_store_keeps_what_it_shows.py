"""What the store keeps, it keeps whole and can show: the audit trail of an episode the store still
holds is never pruned; what-if says when the silences it replays are kept less long than its
period; one alert with a lone surrogate does not stop the store from recording the others (a
review's findings, each failing before)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet_alerting.core import actions
from fleet_alerting.core.policy import PolicyConfig, evaluate
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store import actions as trail
from fleet_alerting.store.database import Retention, Store

T0 = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = PolicyConfig(open_after=1, resolve_after=1)
KEY = "blackbox:target=pi-07"


def observe(store: Store, firing: bool, now: datetime) -> None:
    signal = Signal(
        KEY, "blackbox", firing, Severity.critical, f"pi-07 {'down' if firing else 'up'}"
    )
    store.evaluate(lambda current: evaluate([signal], current, lambda _s: POLICY, now), now)


def ack(store: Store, now: datetime) -> None:
    decide = lambda i: actions.acknowledge(i, "ana", now, ["slack"])  # noqa: E731
    trail.apply(store, KEY, decide, action="ack", actor="ana", via="cli", now=now)


def test_a_kept_resolved_incident_keeps_its_trail_with_default_retentions(state_db: str) -> None:
    """Incidents are kept from when they resolved, the trail from when each action was done: an
    incident acked on day 0 that resolved on day 30 is kept until day 120 — and so its ack."""
    with Store(state_db) as store:
        observe(store, True, T0)
        ack(store, T0 + timedelta(minutes=5))
        observe(store, False, T0 + 30 * DAY)
        now = T0 + 105 * DAY
        store.prune(now, Retention())  # every default: 90d resolved, 100d actions
        kept = store.incident(KEY)
        assert kept is not None and kept.acts.acked_by == "ana"  # still shown, acked by ana
        assert [r.action for r in trail.history(store, KEY)] == ["ack"]


def test_an_open_incident_keeps_its_trail(state_db: str) -> None:
    """A device down (and acked) for 101 days: its incident is open, its trail stays."""
    with Store(state_db) as store:
        observe(store, True, T0)
        ack(store, T0 + timedelta(minutes=5))
        observe(store, True, T0 + 101 * DAY)
        store.prune(T0 + 101 * DAY, Retention())
        assert store.incident(KEY).is_open  # type: ignore[union-attr]
        assert [r.action for r in trail.history(store, KEY)] == ["ack"]


def test_what_if_over_a_period_longer_than_ended_silences_are_kept_says_so(
    tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """`what-if` replays the store's silences. With `expired_silences: 1d`, a silence that muted
    an outage 3 days ago is pruned: the replay pages what the silence held, and the report says
    the store keeps ended silences less long than the period."""
    import yaml

    from fleet_alerting.config import load_config
    from fleet_alerting.core.clock import utcnow
    from fleet_alerting.core.muting import Silence
    from fleet_alerting.store import silences
    from fleet_alerting.surfaces.cli import main
    from fleet_alerting.tasks.pipeline import evaluate_and_record, retention

    api = "blackbox:url=http://api/healthz"
    live = tmp_path / "live.yaml"
    live.write_text(
        yaml.safe_dump(
            {
                "state": {"path": "state.sqlite", "retention": {"expired_silences": "1d"}},
                "notify": {"dry_run": True},
            }
        )
    )
    config = load_config(live)
    start = utcnow().replace(second=0, microsecond=0) - 3 * DAY
    with Store(config.state) as store:
        quiet = Silence(
            "s-1", ('url="http://api/healthz"',), start, start + timedelta(hours=2), "ana"
        )
        silences.add(store, quiet)
        for minute in range(120):
            signal = Signal(
                api, "blackbox", 30 <= minute < 50, Severity.critical, "api",
                labels={"url": "http://api/healthz"},
            )  # fmt: skip
            now = start + timedelta(minutes=minute)
            evaluate_and_record(store, [signal], config.policy, now, rules=config.storm_rules())
    args = ["what-if", "--config", str(live), "--proposed", str(live), "--since", "4d"]
    main(args)
    assert "| pages | 0 | 0 | 0 |" in capsys.readouterr().out  # the silence replayed: no page
    with Store(config.state) as store:
        store.prune(utcnow(), retention(config))  # as every run does
    main(args)
    out = capsys.readouterr().out
    assert "| pages | 0 | 1 | 1 |" in out  # the same period now replays a page...
    assert "expired_silences" in out  # ...and says the silences are gone


def test_an_alert_whose_summary_has_a_lone_surrogate_does_not_stop_the_store(
    state_db: str,
) -> None:
    """Alertmanager's client reads a lone surrogate as the standard module does, made U+FFFD:
    the incident store's JSON refused it, and one such alert failed every evaluation of the
    watch — every other alert unrecorded, untold."""

    from fleet_alerting.config.schema import default_escalation_rules
    from fleet_alerting.core.policy import default_policies
    from fleet_alerting.sources.alertmanager.judge import to_signal
    from fleet_alerting.tasks.pipeline import evaluate_and_record
    from tests.test_alertmanager_decode import read

    alert = (
        '{"fingerprint": "%s", "labels": {"alertname": "HostDown", "severity": "critical"},'
        ' "annotations": {"summary": "%s"}, "startsAt": "2026-12-01T10:00:00Z",'
        ' "endsAt": "2026-12-01T11:00:00Z", "updatedAt": "2026-12-01T10:00:01Z",'
        ' "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},'
        ' "receivers": [{"name": "pd"}], "generatorURL": "http://p/graph"}'
    )
    body = "[" + alert % ("aaaa", "pi-1 down") + "," + alert % ("bbbb", "\\ud800 down") + "]"
    alerts, malformed = read(body)  # through the client, as a watch run reads it
    assert len(alerts) == 2 and not malformed
    assert alerts[1].annotations["summary"] == "\ufffd down"
    rule = default_escalation_rules()[0]
    signals = [to_signal(a, rule, "http://am", _links()) for a in alerts]
    policy = default_policies()[Severity.critical].model_copy(update={"open_after": 1})
    with Store(state_db) as store:
        evaluate_and_record(store, signals, lambda _s: policy, T0)
        assert len(store.incidents()) == 2


def _links():  # type: ignore[no-untyped-def]
    from fleet_alerting.config.schema import LinksConfig

    return LinksConfig()
