"""The store's memory of signed requests (store/replay.py), on SQLite and PostgreSQL: a key is new
once until it expires, of processes racing with one key exactly one wins, expired keys are pruned,
and a store written before the table existed gets it when opened."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet_alerting.store import replay
from fleet_alerting.store.database import Store

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KEEP = timedelta(minutes=10)
MAIN_STORE = Path(__file__).parents[1] / "fixtures" / "store-main-c4597d7.sqlite"


def test_a_key_is_new_once_until_it_expires(state_db: str) -> None:
    with Store(state_db) as store:
        assert replay.first_sight(store, "slack:v0=aa", T0, KEEP)
        assert not replay.first_sight(store, "slack:v0=aa", T0 + timedelta(minutes=9), KEEP)
        assert replay.first_sight(store, "pagerduty:E1", T0, timedelta(hours=24))
        assert replay.remembered(store) == 2
        # past its window the key is pruned (by any later call) and would be new again
        assert replay.first_sight(store, "slack:v0=bb", T0 + KEEP, KEEP)
        assert replay.remembered(store) == 2  # E1 and bb
        assert replay.first_sight(store, "slack:v0=aa", T0 + KEEP, KEEP)


def test_of_processes_racing_with_one_key_exactly_one_wins(state_db: str) -> None:
    Store(state_db).close()  # created (and upgraded) before the race
    barrier, results = threading.Barrier(8), []

    def contender() -> None:
        with Store(state_db) as store:
            barrier.wait(30)
            results.append(replay.first_sight(store, "slack:v0=race", T0, KEEP))

    threads = [threading.Thread(target=contender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [False] * 7 + [True]


def test_a_store_written_before_the_table_gets_it_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    shutil.copy(MAIN_STORE, path)
    with Store(path) as store:
        assert replay.first_sight(store, "pagerduty:E1", T0, KEEP)
        assert not replay.first_sight(store, "pagerduty:E1", T0, KEEP)
