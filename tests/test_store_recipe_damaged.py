"""A recipe row keeps no more of an alert's annotations than its texts show, and a damaged one
(a field null or not of its kind) reads plain: the watch and the readers go on (review of am5)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from fleet_alerting.sources.alertmanager import judge
from fleet_alerting.store.database import Store
from fleet_alerting.store.tables import texts_table
from fleet_alerting.surfaces.listings import incident_json
from tests.stores import raw_engine
from tests.test_store_recipe_safety import (
    T0,
    a_run_after_damage,
    odd_alert,
    opened,
    rewrite_recipe,
)

M = 1_000_000
# annotations / state of one alert, and the size of the texts row schema 9 (main) writes for it
CASES = {
    # texts show runbook_url; the recipe keeps the 1 MB `runbook` they never show (main: 921)
    "runbook-not-shown": (
        {"annotations": {"summary": "s", "runbook_url": "https://rb.test/x", "runbook": "y" * M}},
        921,
    ),
    # remediation lines that are all blank: texts show () (main: 911)
    "blank-remediation": ({"annotations": {"summary": "s", "remediation": " \n" * (M // 2)}}, 911),
    # a 1 MB summary is shown once; the recipe keeps it twice (row summary + annotations)
    "summary-kept-twice": ({"annotations": {"summary": "s" * M}}, 1_000_910),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_recipe_keeps_no_more_of_the_annotations_than_the_texts_show(
    state_db: str, case: str
) -> None:
    changes, schema_9_row = CASES[case]
    labels = {"alertname": "Big", "instance": "pi-31:9100"}
    alert = odd_alert(31, labels, **changes)
    key = judge.alert_key(alert)
    opened(state_db, [alert])
    with raw_engine(state_db).connect() as conn:
        size = conn.execute(
            sa.select(sa.func.length(texts_table.c.signal)).where(texts_table.c.key == key)
        ).scalar_one()
    assert size <= schema_9_row + 2_000, f"texts row {size:,} chars (schema 9: {schema_9_row:,})"


def test_one_recipe_row_without_a_source_does_not_stop_the_watch(state_db: str) -> None:
    """A recipe row whose `source` is not a text (damaged / a newer layout): from_stored takes
    it; when its alert goes, recover_unseen copies it and history.stream_of raises
    AttributeError: the run rolls back, a new alert in the same answer is never opened."""
    old = odd_alert(32, {"alertname": "Old", "instance": "pi-32:9100"})
    new = odd_alert(33, {"alertname": "New", "instance": "pi-33:9100"})
    damage = lambda s: s.update(source=None)  # noqa: E731
    failed, new_one, _old_one = a_run_after_damage(state_db, old, new, damage)
    assert failed is None
    assert new_one is not None


def test_one_recipe_row_with_labels_not_a_map_does_not_break_the_incidents_listing(
    state_db: str,
) -> None:
    """`incidents -o json` (listings.incident_json: dict(signal.labels)) raises TypeError for
    every incident when one recipe row holds `"labels": null` — from_stored does not check."""
    alerts = [odd_alert(n, {"alertname": f"L{n}", "instance": f"h{n}:9100"}) for n in (34, 35)]
    opened(state_db, alerts)
    rewrite_recipe(state_db, judge.alert_key(alerts[0]), lambda s: s.update(labels=None))
    with Store(state_db) as store:
        try:
            listed = json.dumps([incident_json(i, "x", T0, {}) for i in store.incidents()])
        except Exception as error:
            listed = f"{type(error).__name__}: {error}"
    assert listed.startswith("["), listed[:200]
