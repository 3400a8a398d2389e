"""Table-driven tests of the passes around the engine (fleet aggregates, inhibition, grouping,
the per-run bound): tests/cases/storms.yaml feeds runs of signals, states what each run sends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.core import actions
from fleet_alerting.core.channels import SLACK_CHANNELS
from fleet_alerting.core.fleet import FleetConfig
from fleet_alerting.core.grouping import GroupingConfig
from fleet_alerting.core.incidents import (
    Escalation,
    Incident,
    Kind,
    Notification,
    Records,
    State,
)
from fleet_alerting.core.inhibition import InhibitRule
from fleet_alerting.core.keys import incident_key
from fleet_alerting.core.muting import Muting, Silence
from fleet_alerting.core.policy import Evaluation, PolicyConfig, default_policies
from fleet_alerting.core.signals import TEXTS, Severity, Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.delivery.notifiers.slack_webhook import headline
from fleet_alerting.store.actions import apply
from fleet_alerting.store.database import Store

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "storms.yaml").read_text())
T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
QUIET = {"mirror": False, "repeat": None}


def expand(spec: dict[str, Any]) -> list[Signal]:
    """`{source, fail, severity, labels, count, since}`; with `count`, `{i}` numbers the copies;
    `since` (seconds from the start) is when the source says the failure began."""
    count = spec.get("count")
    out = []
    for i in range(count or 1):
        labels = {k: str(v).format(i=i) for k, v in spec.get("labels", {}).items()}
        source = spec["source"].format(i=i)
        out.append(
            Signal(
                key=incident_key(source, labels),
                source=source,
                firing=spec["fail"],
                severity=Severity(spec.get("severity", "warning")),
                summary=f"{' '.join(labels.values())} {'failed' if spec['fail'] else 'ok'}",
                labels=labels,
                since=T0 + timedelta(seconds=spec["since"]) if "since" in spec else None,
            )
        )
    return out


def readable(n: Notification) -> tuple[Any, ...]:
    """A message as operators and the outbox see it: id, channel, kind, texts and the record."""
    return (n.id, n.channel, n.kind, n.incident, {t: getattr(n.incident.signal, t) for t in TEXTS})


def rules_of(case: dict[str, Any]) -> StormRules:
    config = case.get("config", {})
    inhibit = config.get("inhibit_rules")
    return StormRules(
        fleet=FleetConfig.model_validate(config.get("fleet", {})),
        inhibit_rules=None if inhibit is None else [InhibitRule.model_validate(r) for r in inhibit],
        grouping=GroupingConfig.model_validate(config.get("grouping", {})),
    )


def muting_of(case: dict[str, Any]) -> Muting:
    """`silences`: [{id, matchers, starts_at, ends_at}] (seconds from T0), as made in Slack."""
    return Muting(
        [
            Silence(
                id=s["id"],
                matchers=tuple(s["matchers"]),
                starts_at=T0 + timedelta(seconds=s["starts_at"]),
                ends_at=T0 + timedelta(seconds=s["ends_at"]),
                author="op",
            )
            for s in case.get("silences", [])
        ]
    )


def policies_of(case: dict[str, Any]) -> dict[Severity, PolicyConfig]:
    policies = {}
    for severity, default in default_policies().items():
        override = QUIET | case.get("policies", {}).get(severity.value, {})
        base = default.model_dump()
        if "steps" in override:  # steps replace the default's notify / page / page_after
            base = {k: v for k, v in base.items() if k not in ("notify", "page", "page_after")}
        policies[severity] = PolicyConfig.model_validate(base | override)
    return policies


def operator_action(act: Any, now: datetime) -> Callable[[Incident], actions.Change]:
    """`ack`, `unsilence`, `{silence_until: SECONDS}` or `{snooze_until: SECONDS}` (from T0), as
    from Slack (no message asked for)."""
    if act == "ack":
        return lambda incident: actions.acknowledge(incident, "op", now, [])
    if act == "unsilence":
        return lambda incident: actions.unsilence(incident, "op", now, [])
    if "snooze_until" in act:
        snoozed_until = T0 + timedelta(seconds=act["snooze_until"])
        return lambda incident: actions.snooze(incident, "op", now, snoozed_until)
    until = T0 + timedelta(seconds=act["silence_until"])
    return lambda incident: actions.silence(incident, "op", now, until, [])


def act_on(
    real: Store | None, store: Mapping[str, Incident], key: str, act: Any, now: datetime
) -> Incident:
    """An operator's action (`operator_action`) on `key`, through `real` when given: the record."""
    change = operator_action(act, now)
    if real is None:
        return change(store[key]).incident
    done = apply(real, key, change, action=str(act), actor="op", via="table", now=now)
    assert done is not None and done.refused is None, f"{key} at {now}"
    return done.incident


@pytest.mark.parametrize("stored", [False, True], ids=["in-memory", "through-the-store"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_storm_table(case: dict[str, Any], stored: bool, tmp_path: Path) -> None:
    """In memory, and through the store (light records: briefs, full records read on demand)."""
    rules, policies, muting = rules_of(case), policies_of(case), muting_of(case)
    store: dict[str, Incident] = {}
    real = Store(tmp_path / "state.sqlite") if stored else None
    ids: set[str] = set()  # the outbox ignores an id it has seen: none may repeat
    for step in case["steps"]:
        now = T0 + timedelta(seconds=step["at"])
        where = f"at {step['at']}s"
        signals = [s for spec in step["signals"] for s in expand(spec)]
        if "config" in step:  # the operator changed the config before this run
            rules = rules_of(step)
        for key, act in step.get("act", {}).items():  # an operator's action before the run
            store[key] = act_on(real, store, key, act, now)
        unresolved = {k: i for k, i in store.items() if i.state != State.resolved}

        def run(
            current: Mapping[str, Incident],
            signals: list[Signal] = signals,
            now: datetime = now,
            rules: StormRules = rules,
        ) -> Evaluation:
            return decide(signals, current, policies.__getitem__, rules, now, None, muting)

        def as_each_alone(
            records: Mapping[str, Incident], run: Any = run, where: str = where
        ) -> Evaluation:
            """The store's records (members alike decided once, their messages left to
            grouping): every message and record as when each key is decided from its whole
            record, alone."""
            assert real is not None and isinstance(records, Records)
            alone = run(dict(real.unresolved()))
            got = run(records)
            assert got == alone, where
            assert [readable(n) for n in got.notifications] == [
                readable(n) for n in alone.notifications
            ], where
            return got

        result = real.evaluate(as_each_alone, now)[0] if real else run(unresolved)
        store.update({i.key: i for i in result.incidents})
        repeated = {n.id for n in result.notifications} & ids
        assert not repeated, f"{where}: ids of earlier notifications {sorted(repeated)}"
        ids |= {n.id for n in result.notifications}
        sent = sorted(f"{n.channel}:{n.kind}:{n.incident.key}" for n in result.notifications)
        if "send" in step:
            assert sent == sorted(step["send"]), where
        said = [f"{n.channel}:{n.kind}:{n.incident.key}" for n in result.notifications]
        in_order = step.get("in_order", [])
        assert [s for s in said if s in in_order] == in_order, where
        if "count" in step:
            assert dict(Counter(n.channel for n in result.notifications)) == step["count"], where
        for text in step.get("says", []):
            assert any(text in n.incident.signal.summary for n in result.notifications), (
                f"{where}: no message says {text!r}"
            )
        slack_texts = [headline(n) for n in result.notifications if n.channel in SLACK_CHANNELS]
        for text in step.get("slack_says", []):  # as Slack shows it: the message's headline
            assert any(text in said for said in slack_texts), f"{where}: {slack_texts}"
        if "escalated" in step:  # the step its "escalated" messages name, and whom they mention
            named = {
                (n.incident.escalation.step, n.incident.escalation.mention)
                for n in result.notifications
                if n.kind == Kind.escalated
            }
            assert named == {tuple(step["escalated"])}, where
        if "paged_mention" in step:  # whom its Slack "paged" messages mention (None: nobody)
            mentioned = {
                n.incident.escalation.mention
                for n in result.notifications
                if n.kind == Kind.paged and n.channel == "slack"
            }
            assert mentioned == {step["paged_mention"]}, where
        for key, state in step.get("state", {}).items():
            assert store[key].state == state, f"{where}: {key}"
        for key, why in step.get("resolution", {}).items():  # what its RESOLVED message says
            assert store[key].resolution == why, f"{where}: {key}"
        for key in step.get("no_incident", []):
            assert key not in store, f"{where}: {key}"
        for key, cause in step.get("inhibited", {}).items():
            assert store[key].inhibited_by == cause, f"{where}: {key}"
        for key, acked in step.get("acked", {}).items():
            assert (store[key].acts.acked_at is not None) == acked, f"{where}: {key}"
        if "inhibited_count" in step:
            got = sum(i.inhibited_by is not None for i in store.values() if i.state != "resolved")
            assert got == step["inhibited_count"], where


@pytest.mark.parametrize("stored", [False, True], ids=["in-memory", "through-the-store"])
def test_a_group_paged_before_its_pages_were_kept_per_step_pages_again_as_its_ack_times_out(
    stored: bool, tmp_path: Path
) -> None:
    """A group record as stored before pages were kept per escalation step (paged_via, no pages)
    pages those it paged again when its acknowledgement times out, as it says it does."""
    gk = "group/api:severity=critical"
    steps = [{"after": "0s", "to": ["slack", "pagerduty"]}]
    policy = {"open_after": 1, "ack_timeout": "15m", "steps": steps}
    policies = policies_of({"policies": {"critical": policy}})
    spec = {"source": "api", "fail": True, "severity": "critical", "count": 3}
    signals = expand(spec | {"labels": {"instance": "i{i}"}})
    rules = StormRules(fleet=FleetConfig(offline=[]))
    real = Store(tmp_path / "state.sqlite") if stored else None
    store: dict[str, Incident] = {}

    def run(now: datetime) -> Evaluation:
        def evaluate(current: Mapping[str, Incident]) -> Evaluation:
            return decide(signals, current, policies.__getitem__, rules, now)

        result = real.evaluate(evaluate, now)[0] if real else evaluate(dict(store))
        store.update({i.key: i for i in result.incidents})
        return result

    run(T0)
    store[gk] = replace(store[gk], escalation=Escalation())
    assert store[gk].paged_via == ("pagerduty",)
    if real:
        real.record(Evaluation([store[gk]], []), T0)
    store[gk] = act_on(real, store, gk, "ack", T0 + timedelta(minutes=1))
    result = run(T0 + timedelta(minutes=16))
    sent = sorted(f"{n.channel}:{n.kind}" for n in result.notifications if n.incident.key == gk)
    assert sent == ["pagerduty:paged", "pagerduty:resolved", "slack:paged"]


@pytest.mark.parametrize("upgraded_at", [5, 10], ids=["before-the-step", "on-the-step"])
def test_a_group_stored_before_groups_kept_their_steps_says_its_later_step(
    upgraded_at: int,
) -> None:
    """A group record of older code has no `escalation.next_at`: its first run after the
    upgrade says a later step that pages nobody at its time, also when that run falls exactly
    on it (a step due then cannot have run before). Runs every minute."""
    gk = "group/api:severity=critical"
    steps = [{"after": "0s", "to": ["slack"]}, {"after": "10m", "to": ["slack"]}]
    policies = policies_of({"policies": {"critical": {"open_after": 1, "steps": steps}}})
    spec = {"source": "api", "fail": True, "severity": "critical", "count": 3}
    signals = expand(spec | {"labels": {"host": "i{i}"}})
    rules = StormRules(fleet=FleetConfig(offline=[]))
    store: dict[str, Incident] = {}
    said = []
    for minute in range(20):
        if minute == upgraded_at:  # the record as older code wrote it
            esc = store[gk].escalation
            store[gk] = replace(store[gk], escalation=replace(esc, next_at=None))
        now = T0 + timedelta(minutes=minute)
        result = decide(signals, dict(store), policies.__getitem__, rules, now)
        store.update({i.key: i for i in result.incidents})
        told = {(n.kind, n.incident.key) for n in result.notifications}
        said += [minute] if (Kind.escalated, gk) in told else []
    assert said == [10]


def test_a_fleet_rule_rejects_a_bad_threshold() -> None:
    with pytest.raises(ValueError, match="share such as"):
        FleetConfig.model_validate({"offline": [{"devices": ['a="b"'], "threshold": "half"}]})
    with pytest.raises(ValueError, match="matcher"):
        FleetConfig.model_validate({"offline": [{"devices": ["a=~("], "threshold": 3}]})


def test_the_run_artifact_says_who_is_inhibited_and_grouped() -> None:
    from fleet_alerting.flows.common import storm_markdown

    policies = policies_of({"policies": {"warning": {"open_after": 1}}})
    api = {"source": "blackbox", "fail": True, "severity": "critical", "labels": {"service": "api"}}
    device = {"source": "blackbox", "fail": True, "count": 3, "labels": {"instance": "pi-{i}"}}
    watch = {"source": "w", "fail": True, "count": 2, "labels": {"host": "h{i}"}}
    signals = [s for spec in (api, device, watch) for s in expand(spec)]
    result = decide(signals, {}, policies.__getitem__, StormRules(), T0)
    text = storm_markdown(result, (set(), set()))
    # the API is still pending (critical: open_after 2), and already silences the devices
    assert "| `blackbox:instance=pi-1` | firing, inhibited by blackbox:service=api |" in text
    assert "| `w:host=h0` | firing, told in group group/w:severity=warning |" in text
    assert "| `group/w:severity=warning` | firing | 2 w incidents failing: h0 failed" in text


STEPS = ("ssh {host}", "restart it")
SHARED = ("restart the agent", "check the disk")


@pytest.mark.parametrize(
    ("remediations", "runbooks", "remediation", "runbook"),
    [
        ([SHARED] * 12, ["https://rb/a"] * 12, SHARED, "https://rb/a"),
        ([SHARED] * 11 + [STEPS], ["https://rb/a"] * 12, (), "https://rb/a"),
        ([STEPS] + [SHARED] * 11, ["https://rb/b"] + ["https://rb/a"] * 11, (), None),
        ([SHARED] * 12, ["https://rb/a"] * 11 + [None], SHARED, None),
        ([()] * 12, [None] * 12, (), None),
    ],
    ids=["all shared", "the last differs", "the first differs", "one without a runbook", "none"],
)
def test_a_group_message_carries_what_all_its_members_share(
    remediations: list[tuple[str, ...]],
    runbooks: list[str | None],
    remediation: tuple[str, ...],
    runbook: str | None,
) -> None:
    """The group's remediation and runbook are its members' when every member has the same,
    else none — also when only the last member differs."""
    signals = [
        Signal(
            key=incident_key("prometheus/AgentDown", {"host": f"pi-{i:02}"}),
            source="prometheus/AgentDown",
            firing=True,
            severity=Severity.warning,
            summary=f"pi-{i:02} failed",
            labels={"host": f"pi-{i:02}"},
            remediation=steps,
            runbook_url=url,
        )
        for i, (steps, url) in enumerate(zip(remediations, runbooks, strict=True))
    ]
    policies = default_policies()
    first = decide(signals, {}, policies.__getitem__, StormRules(), T0)
    stored = {i.key: i for i in first.incidents}
    later = decide(signals, stored, policies.__getitem__, StormRules(), T0 + timedelta(minutes=1))
    told = {
        (n.incident.signal.remediation, n.incident.signal.runbook_url) for n in later.notifications
    }
    assert told == {(remediation, runbook)}
