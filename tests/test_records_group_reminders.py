"""A group reminds on its own clock and its members' reminders are dropped, so the engine does
not decide them: a member's `repeat` coming due reads and rewrites no record. A member's group
that grouping no longer takes (grouping turned off) leaves the member reminding on its own."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet_alerting.core import actions
from fleet_alerting.core.fleet import FleetConfig
from fleet_alerting.core.grouping import GroupingConfig
from fleet_alerting.core.incidents import Incident, Kind, Records, State
from fleet_alerting.core.policy import Evaluation, PolicyConfig
from fleet_alerting.core.signals import Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.store.actions import apply
from fleet_alerting.store.database import Store
from tests.test_storms import expand

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
GROUP = "group/api:severity=critical"
POLICY = PolicyConfig.model_validate(
    {
        "open_after": 1,
        "repeat": "30m",
        "ack_timeout": "15m",
        "mirror": False,
        "steps": [{"after": "0s", "to": ["slack", "pagerduty"]}],
    }
)


def failing(hosts: int) -> list[Signal]:
    labels = {"host": "h{i:04}"}
    return expand(
        {"source": "api", "fail": True, "severity": "critical", "count": hosts, "labels": labels}
    )


def rules(grouped: bool = True) -> StormRules:
    return StormRules(fleet=FleetConfig(offline=[]), grouping=GroupingConfig(enabled=grouped))


def test_a_members_reminder_coming_due_reads_no_record(tmp_path: Path) -> None:
    """200 members acknowledged at 1m, the ack timing out at 16m (paged again): the members'
    own `repeat` comes due at 30m and 60m, the group's at 46m and 76m. The runs at the members'
    times tell nobody and read and write no member; the group reminds at its own."""
    signals = failing(200)
    store = Store(tmp_path / "state.sqlite")
    heavy: list[tuple[int, int, int]] = []  # (minute, records read, members written)
    reminded: list[int] = []
    for minute in [0, 1, 2, 15, 16, 17, 29, 30, 31, 45, 46, 47, 59, 60, 61, 75, 76, 77]:
        now = T0 + timedelta(minutes=minute)
        if minute == 1:
            acked = apply(
                store,
                GROUP,
                lambda i, now=now: actions.acknowledge(i, "op", now, []),
                action="ack",
                actor="op",
                via="t",
                now=now,
            )
            assert acked is not None and acked.refused is None
        read: list[int] = []

        def run(
            records: Mapping[str, Incident], now: datetime = now, read: list[int] = read
        ) -> Evaluation:
            assert isinstance(records, Records)
            evaluation = decide(signals, records, lambda _: POLICY, rules(), now)
            read.append(records.loaded)
            return evaluation

        evaluation, _ = store.evaluate(run, now)
        members = sum(i.key != GROUP for i in evaluation.incidents)
        if minute and not evaluation.notifications and (read[0] > 1 or members):
            heavy.append((minute, read[0], members))
        if any(n.kind == Kind.reminder for n in evaluation.notifications):
            reminded.append(minute)
    store.close()
    assert heavy == []
    assert reminded == [46, 76]


@pytest.mark.parametrize("grouped", [True, False], ids=["grouping-on", "grouping-off"])
def test_a_member_reminds_on_its_own_only_where_no_group_takes_its_messages(grouped: bool) -> None:
    """Grouping turned off after the group opened: its members' messages go out as they are, so
    each reminds on its own clock; with grouping on, only the group reminds."""
    signals = failing(3)
    opened = decide(signals, {}, lambda _: POLICY, rules(), T0)
    store = {i.key: i for i in opened.incidents}
    assert store[GROUP].state != State.resolved and store[signals[0].key].group == GROUP
    later = T0 + timedelta(minutes=30)
    told = decide(signals, store, lambda _: POLICY, rules(grouped), later).notifications
    reminders = sorted(n.incident.key for n in told if n.kind == Kind.reminder)
    assert reminders == ([GROUP] if grouped else sorted(s.key for s in signals))
