"""A store of recipes (schema 10) stays safe to read: the review of write4 (read-only, against
main 16c6cdb) found a recipe rendered by whatever code reads it could lie or stop the watch. A
row this code cannot render (an unknown renderer, a links option it does not know, a renderer
raising) reads with the texts the row vouches for, and the watch goes on with it; a NUL in a label
keeps the links the opening sent; a recipe keeps no more of an annotation than the texts show;
the read-only listing refuses a store of a newer schema as Store() does."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fleet_alerting.config.schema import EscalationRule
from fleet_alerting.core import recipes
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.policy import default_policies, recover_unseen
from fleet_alerting.core.signals import Severity
from fleet_alerting.core.storms import StormRules
from fleet_alerting.sources.alertmanager import judge
from fleet_alerting.sources.alertmanager.shapes import Alert
from fleet_alerting.store.backend import is_url
from fleet_alerting.store.board import open_incidents
from fleet_alerting.store.database import Store
from fleet_alerting.store.errors import StoreError
from fleet_alerting.store.tables import texts_table
from fleet_alerting.surfaces.fleet_queries import read_open_incidents
from fleet_alerting.tasks.pipeline import Evaluation, evaluate_and_record
from tests.stores import raw_engine
from tests.test_texts_rendered_once import AM, LINKS, T0

RULE = EscalationRule(name="critical", matchers=['severity="critical"'])
POLICY = default_policies()[Severity.critical].model_copy(update={"open_after": 1})


def odd_alert(n: int, labels: dict[str, str], **changes: object) -> Alert:
    fields: dict[str, object] = {
        "fingerprint": f"odd{n:013x}",
        "labels": {"severity": "critical", **labels},
        "annotations": {"summary": f"odd {n}", "description": "d" * 600},
        "starts_at": T0 - timedelta(minutes=10),
        "ends_at": T0 + timedelta(hours=1),
        "state": "active",
    } | changes
    return Alert(**fields)  # type: ignore[arg-type]


def opened(db: str, alerts: Sequence[Alert]) -> Evaluation:
    signals = judge.to_signals([(RULE, alerts)], AM, LINKS)
    with Store(db) as store:
        evaluation, _ = evaluate_and_record(
            store, signals, lambda _s: POLICY, T0, rules=StormRules()
        )
    return evaluation


def rewrite_recipe(db: str, key: str, change: Callable[[dict[str, Any]], object]) -> None:
    """What a newer version (or a damaged disk) leaves in the alert's texts row."""
    with raw_engine(db).begin() as conn:
        row = conn.execute(
            sa.select(texts_table.c.signal).where(texts_table.c.key == key)
        ).scalar_one()
        assert row.startswith('{"recipe":"alertmanager"')
        stored = json.loads(row)
        change(stored)
        conn.execute(
            sa.update(texts_table)
            .where(texts_table.c.key == key)
            .values(signal=json.dumps(stored, separators=(",", ":")))
        )


def texts_shown(incident: Incident) -> tuple[str, list[str], dict[str, object]]:
    signal = incident.signal
    return signal.summary, [link.text for link in signal.links], dict(signal.evidence)


def test_a_nul_in_a_label_keeps_the_alertmanager_link_the_opening_sent(state_db: str) -> None:
    """A label with a NUL: the opening renders its links with %00 (what the first Slack message
    carried). A recipe would keep the label as U+FFFD (what PostgreSQL can store), and every
    later reader (reminder, resolve, board, --show) would render a link whose filter matches no
    alert: such a signal's texts are stored rendered, as schema 9 stored them."""
    alert = odd_alert(7, {"alertname": "Nul", "instance": "pi\x00-01:9100"})
    sent = judge.to_signal(alert, RULE, AM, LINKS)
    evaluation = opened(state_db, [alert])
    assert [i.key for i in evaluation.incidents] == [sent.key]
    with Store(state_db) as store:
        read = store.incident(sent.key)
    assert read is not None
    assert [link.url for link in read.signal.links] == [link.url for link in sent.links]


def test_other_control_characters_in_labels_keep_the_links_the_opening_sent(
    state_db: str,
) -> None:
    """Every other control character (and a line separator, DEL) goes through a recipe's JSON
    as it is: the links rendered when read are the ones sent."""
    odd = "".join(chr(c) for c in range(1, 32)) + "\x7f\u2028\u0085"
    alert = odd_alert(8, {"alertname": f"Ctl{odd}", "instance": f"pi{odd}:9100", "x": odd})
    sent = judge.to_signal(alert, RULE, AM, LINKS)
    opened(state_db, [alert])
    with Store(state_db) as store:
        read = store.incident(sent.key)
    assert read is not None
    assert [(link.text, link.url) for link in read.signal.links] == [
        (link.text, link.url) for link in sent.links
    ]


def test_one_recipe_row_of_a_renderer_unknown_here_does_not_blind_every_reader(
    state_db: str,
) -> None:
    """A texts row whose recipe names a renderer this code lacks (a newer version's, or a
    damaged name) made the listing and the board (and health/metrics, MCP, slack-app, which
    read the same listing) raise ValueError for every incident. It reads with what the row
    vouches for: its summary, no links, evidence saying why."""
    alerts = [odd_alert(n, {"alertname": f"A{n}", "instance": f"h{n}:9100"}) for n in range(3)]
    opened(state_db, alerts)
    victim = judge.alert_key(alerts[0])
    rewrite_recipe(state_db, victim, lambda s: s.update(recipe="alertmanager2"))
    with Store(state_db) as store:
        listed = {i.key: i for i in store.incidents()}
        board, _counts = open_incidents(store, 100)
    assert set(listed) == {judge.alert_key(a) for a in alerts}
    assert len([texts_shown(i) for i in board]) == 3
    if not is_url(state_db):  # MCP's and the Slack app's read-only listing
        assert len([texts_shown(i) for i in read_open_incidents(Path(state_db))]) == 3
    summary, links, evidence = texts_shown(listed[victim])
    assert (summary, links) == ("odd 0", [])
    assert "alertmanager2" in str(evidence["texts"])


def test_a_recipe_whose_links_settings_know_one_more_option_still_renders(state_db: str) -> None:
    """A later version adding a links option (a config change: no schema bump, so code of 10
    keeps using the store in a rolling deploy) writes settings LinksConfig (extra="forbid") does
    not know: every access to the texts raised ValidationError. They render with the options
    this code knows."""
    alert = odd_alert(9, {"alertname": "Extra", "instance": "pi-09:9100"})
    sent = judge.to_signal(alert, RULE, AM, LINKS)
    opened(state_db, [alert])
    key = judge.alert_key(alert)
    rewrite_recipe(state_db, key, lambda s: s["args"]["links"].update(tempo_url=None))
    with Store(state_db) as store:
        read = store.incident(key)
    assert read is not None
    try:
        shown = [link.text for link in read.signal.links]
    except Exception as error:
        shown = [f"{type(error).__name__}"]
    assert shown == ["Alertmanager", "Logs of pi-09"]
    assert read.signal.links == sent.links


def test_a_recipe_whose_renderer_raises_reads_plain(state_db: str) -> None:
    """Anything raising while a recipe renders (a damaged row: settings of the wrong type,
    arguments missing, a renderer's name that is not one) reads as the plain texts the row
    vouches for, not an exception in the reader."""
    alerts = [odd_alert(n, {"alertname": f"B{n}", "instance": f"h{n}:9100"}) for n in (20, 21, 22)]
    opened(state_db, alerts)
    key = judge.alert_key(alerts[0])
    rewrite_recipe(state_db, key, lambda s: s["args"].pop("annotations"))
    other = judge.alert_key(alerts[1])
    rewrite_recipe(state_db, other, lambda s: s["args"]["links"].update(grafana_url=7))
    third = judge.alert_key(alerts[2])
    rewrite_recipe(state_db, third, lambda s: s.update(recipe=["not", "a", "name"]))
    with Store(state_db) as store:
        listed = {i.key: i for i in store.incidents()}
        open_incidents(store, 100)
    assert texts_shown(listed[key])[:2] == ("odd 20", [])
    # settings it cannot read: the links that need none
    assert texts_shown(listed[other])[1] == ["Alertmanager"]
    assert texts_shown(listed[third])[:2] == ("odd 22", [])


def test_an_unrenderable_recipe_does_not_stop_the_watch_resolving_its_alert(state_db: str) -> None:
    """The alert of such a recipe goes away: the watch's ok-signal is `replace(stored signal,
    firing=False, summary=GONE)` (core.policy.recover_unseen), which renders the stored texts:
    it raised, the run failed on every schedule and the incident never resolved."""
    alert = odd_alert(11, {"alertname": "Gone", "instance": "pi-11:9100"})
    opened(state_db, [alert])
    key = judge.alert_key(alert)
    rewrite_recipe(state_db, key, lambda s: s["args"]["links"].update(tempo_url=None))
    with Store(state_db) as store:
        incidents = list(store.unresolved(judge.SOURCE).values())
        try:
            oks = recover_unseen([], incidents, judge.SOURCE, judge.GONE)
            failed = None
        except Exception as error:
            failed = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    assert failed is None and [s.key for s in oks] == [key]


def test_one_unreadable_recipe_does_not_stop_the_watch_opening_new_alerts(state_db: str) -> None:
    """A recipe row this code cannot read (renderer unknown here) whose alert has gone: the run
    loaded its record, row_incident raised, the whole evaluation rolled back — a new critical
    alert in the same answer was never opened nor paged, on every run. Now the new alert opens
    and the gone one resolves."""
    old = odd_alert(12, {"alertname": "Old", "instance": "pi-12:9100"})
    new = odd_alert(13, {"alertname": "New", "instance": "pi-13:9100"})
    damage = lambda s: s.update(recipe="alertmanager2")  # noqa: E731
    failed, new_one, old_one = a_run_after_damage(state_db, old, new, damage)
    assert failed is None and new_one is not None
    assert old_one is not None and old_one.recovered_at is not None  # resolving, as any gone alert


def test_a_recipe_keeps_no_more_of_a_huge_annotation_than_the_texts_show(state_db: str) -> None:
    """Texts keep 500 characters of a description and nothing of annotations they do not show;
    the recipe kept every annotation whole: an alert with a 1 MB description and a 1 MB other
    annotation cost a 2 MB texts row (schema 9: < 10 KB), rewritten whenever the alert
    changes."""
    alert = odd_alert(
        10,
        {"alertname": "Huge", "instance": "pi-10:9100"},
        annotations={"summary": "big", "description": "x" * 1_000_000, "blob": "y" * 1_000_000},
    )
    sent = judge.to_signal(alert, RULE, AM, LINKS)
    opened(state_db, [alert])
    key = judge.alert_key(alert)
    with raw_engine(state_db).connect() as conn:
        size = conn.execute(
            sa.select(sa.func.length(texts_table.c.signal)).where(texts_table.c.key == key)
        ).scalar_one()
    assert size < 10_000
    with Store(state_db) as store:
        read = store.incident(key)
    assert read is not None and read.signal.evidence == sent.evidence


def test_the_read_only_listing_refuses_a_store_of_a_newer_schema(tmp_path: Path) -> None:
    """Store() refuses a store whose compatible_from is above this code's schema; the MCP /
    slack-app listing (fleet_queries.read_open_incidents, SQLite read-only) checked no version
    and read on (code of 9 listed schema-10 recipes with links () and evidence {})."""
    db = str(tmp_path / "state.sqlite")
    opened(db, [odd_alert(14, {"alertname": "A", "instance": "pi-14:9100"})])
    assert [i.key for i in read_open_incidents(tmp_path / "state.sqlite")]
    with raw_engine(db).begin() as conn:
        conn.exec_driver_sql(
            "UPDATE store_meta SET value = '11' WHERE key IN ('schema_version', 'compatible_from')"
        )
    with pytest.raises(StoreError):
        Store(db).__enter__()
    with pytest.raises(StoreError, match="newer"):
        read_open_incidents(tmp_path / "state.sqlite")


def test_a_recipe_of_a_version_that_keeps_more_still_renders() -> None:
    """Arguments added by a later version of the renderer are left aside, not a TypeError."""
    alert = odd_alert(15, {"alertname": "More", "instance": "pi-15:9100"})
    sent = judge.to_signal(alert, RULE, AM, LINKS)
    stored = recipes.stored_form(judge.to_signals([(RULE, [alert])], AM, LINKS)[0])
    assert stored is not None
    stored = json.loads(json.dumps(stored, default=str))
    stored["args"]["new_option"] = True
    stored["since"] = sent.since.isoformat() if sent.since else None
    read = recipes.from_stored(sent.key, stored)
    assert (read.summary, read.links, read.evidence) == (sent.summary, sent.links, sent.evidence)


def a_run_after_damage(state_db: str, old: Any, new: Any, damage: Any) -> tuple[Any, Any, Any]:
    """`old` opened, its recipe row damaged (`damage` of its stored form), then a run in which
    `old` has gone and `new` is new: why the run failed (None), and the two incidents after it."""
    opened(state_db, [old])
    rewrite_recipe(state_db, judge.alert_key(old), damage)
    signals = judge.to_signals([(RULE, [new])], AM, LINKS)
    with Store(state_db) as store:
        try:
            evaluate_and_record(
                store,
                signals,
                lambda _s: POLICY,
                T0 + timedelta(minutes=1),
                unseen=lambda incidents: judge.unseen(signals, incidents, [RULE.name]),
                rules=StormRules(),
            )
            failed = None
        except Exception as error:
            failed = f"{type(error).__name__}: {error}"
        return failed, store.incident(judge.alert_key(new)), store.incident(judge.alert_key(old))
