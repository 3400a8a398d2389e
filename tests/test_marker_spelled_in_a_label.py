"""A label value that spells one of the engine's id markers (`:inhibition-ended`) is a label, not a
marker: the run that opens its incident is not stopped (a KeyError rolled back every run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.policy import PolicyConfig
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.core.storms import StormRules, decide
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
SOURCE = "prometheus/RoleAgentFailure"
POLICIES = {
    Severity.critical: PolicyConfig(open_after=1, page=["pagerduty"], page_after=timedelta(0)),
}


def failing(host: str) -> Signal:
    return Signal(
        key=signal_key(SOURCE, host=host),
        source=SOURCE,
        firing=True,
        severity=Severity.critical,
        summary=f"{host}: role agent failing",
        labels={"host": host},
    )


@pytest.mark.parametrize("first", [True, False], ids=["shapes-first", "folded-member"])
def test_a_label_value_spelling_inhibition_ended_does_not_stop_the_run(
    tmp_path: Path, first: bool
) -> None:
    """A scraped label value is hostile input: one host named `x:inhibition-ended` among hosts
    that fail together (grouping on, the default) must not make the whole run raise — every
    run of the watch would fail, and nobody would be told of any of them."""
    store = Store(tmp_path / "s.sqlite")
    hostile = failing("h1:inhibition-ended")  # first: its shape's decision; else a folded member
    signals = [hostile, failing("h2"), failing("h3")] if first else [failing("h2"), hostile]
    evaluation, queued = store.evaluate(
        lambda records: decide(signals, records, POLICIES.__getitem__, StormRules(), T0), T0
    )
    assert queued > 0
    assert {n.channel for n in evaluation.notifications} >= {"slack", "pagerduty"}
