"""`incidents --show` of a group: the `Next page:` it names is when the engine then pages (each
case runs the engine past the time shown); an earlier episode's actions are marked even when the
source reports the same onset again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from fleet_alerting.config import load_config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.core.incidents import State
from fleet_alerting.core.signals import Severity, Signal
from fleet_alerting.store.database import Store
from fleet_alerting.surfaces.cli import main
from fleet_alerting.tasks.pipeline import evaluate_and_record
from tests.test_actions_cli import setup


def _config(tmp_path: Path, **policy: object) -> tuple[Path, object]:
    path = setup(tmp_path, str(tmp_path / "state.sqlite"))
    raw = yaml.safe_load(path.read_text())
    raw["policies"]["critical"] = {
        "open_after": 1, "resolve_after": 1, "page": ["pagerduty"], "page_after": "90s", **policy
    }  # fmt: skip
    path.write_text(yaml.safe_dump(raw))
    return path, load_config(path)


def _devices() -> list[Signal]:
    return [
        Signal(f"blackbox:target=pi-cam-0{i}", "blackbox", True, Severity.critical, "down")
        for i in (1, 2, 3)
    ]


def _run(store: Store, config: object, now) -> None:  # type: ignore[no-untyped-def]
    evaluate_and_record(store, _devices(), config.policy, now, rules=config.storm_rules())


def _group(store: Store):  # type: ignore[no-untyped-def]
    return next(i for i in store.incidents(include_resolved=True) if i.key.startswith("group/"))


def _next_page(path: Path, key: str, capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(["incidents", "--show", key, "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    return next(line for line in shown.splitlines() if "Next page:" in line).strip()


@pytest.mark.parametrize(
    "ack_members", [False, True, "group"], ids=["control", "members-acked", "group-acked"]
)
def test_next_page_of_a_group_whose_members_are_acked(
    tmp_path: Path, capsys: pytest.CaptureFixture, ack_members: object
) -> None:
    """Every member acknowledged (ack holds its page for the episode): no member's step pages,
    so the group does not page — `--show` must not name a time it pages at."""
    path, config = _config(tmp_path)
    start = utcnow().replace(microsecond=0) - timedelta(seconds=20)
    with Store(config.state) as store:
        _run(store, config, start)
        _run(store, config, start + timedelta(seconds=10))
        group = _group(store)
        assert group.state == State.firing, group.state
        if ack_members == "group":  # no ack_holds_page: the ack holds the page for the episode
            assert main(["ack", group.key, "--config", str(path), "--as", "ana"]) == 0
        elif ack_members:
            for key in group.members:
                assert main(["ack", key, "--config", str(path), "--as", "ana"]) == 0
        said = _next_page(path, group.key, capsys)
        members = [store.incident(k) for k in group.members]
        due = min(m.escalation.next_at for m in members if m and m.escalation.next_at)
        _run(store, config, due + timedelta(seconds=1))
        paged = _group(store).state == State.paged
    claims = said.startswith("Next page: pagerduty at")
    assert claims == paged, f"--show said {said!r}; the engine paged: {paged}"


@pytest.mark.parametrize("acked", [False, True], ids=["control", "group-acked-5m"])
def test_next_page_of_a_group_owing_a_page_held_by_its_ack(
    tmp_path: Path, capsys: pytest.CaptureFixture, acked: bool
) -> None:
    """The group acknowledged with `ack_holds_page: 5m`: a member's page comes due during the
    hold and is owed (the group's escalation.next_to); it pages once the hold ends. `--show`
    must say so, not "none due"."""
    path, config = _config(tmp_path, ack_holds_page="5m")
    start = utcnow().replace(microsecond=0) - timedelta(seconds=20)
    with Store(config.state) as store:
        _run(store, config, start)
        _run(store, config, start + timedelta(seconds=10))
        group = _group(store)
        if acked:
            assert main(["ack", group.key, "--config", str(path), "--as", "ana"]) == 0
        acked_at = utcnow()
        _run(store, config, start + timedelta(seconds=100))  # the members' page due at 90 s
        group = _group(store)
        said = _next_page(path, group.key, capsys)
        paged_already = group.state == State.paged
        _run(store, config, acked_at + timedelta(minutes=5, seconds=2))
        paged_later = _group(store).state == State.paged and not paged_already
    if paged_later:  # the engine paged after --show: --show must have named it
        assert said.startswith("Next page: pagerduty at"), (
            f"--show said {said!r}, yet the group paged pagerduty once its ack's hold ended"
        )
    else:
        assert not said.startswith("Next page: pagerduty at"), said


@pytest.mark.parametrize("same_since", [False, True], ids=["control", "same-startsAt"])
def test_an_earlier_episodes_ack_is_marked_when_the_source_keeps_its_onset(
    tmp_path: Path, capsys: pytest.CaptureFixture, same_since: bool
) -> None:
    """A source may report the same onset again for a new episode (Alertmanager keeps
    `startsAt` through silence → resolved → silence expired: Incident.episode's docstring). The
    ack of the first episode must still be marked `(an earlier episode, ...)`."""
    from fleet_alerting.core.policy import evaluate

    path = setup(tmp_path, str(tmp_path / "state.sqlite"))
    raw = yaml.safe_load(path.read_text())
    raw["policies"]["warning"]["resolve_after"] = 1
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    key = "blackbox:target=pi-audio-01"  # setup() opened it a minute ago (warning, open_after 1)
    assert main(["ack", key, "--config", str(path), "--as", "ana"]) == 0
    with Store(config.state) as store:
        first = store.incident(key)
        assert first is not None and first.is_open
        now = utcnow()
        passing = Signal(key, "blackbox", False, Severity.warning, "device up")
        store.record(evaluate([passing], {key: first}, config.policy, now), now)
        again_at = now + timedelta(seconds=5)
        since = first.onset if same_since else again_at
        failing = Signal(key, "blackbox", True, Severity.warning, "device down", since=since)
        resolved = store.incident(key)
        assert resolved is not None and not resolved.is_open
        store.record(evaluate([failing], {}, config.policy, again_at), again_at)
        second = store.incident(key)
        assert second is not None and second.is_open and second.episode != first.episode
    capsys.readouterr()
    assert main(["incidents", "--show", key, "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    ack = next(line for line in shown.splitlines() if "ack by ana via cli: done" in line)
    assert "(an earlier episode, since" in ack, shown
