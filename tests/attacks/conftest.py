"""One set of protocol fakes and one app process per test module (starting them costs ~1 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.attacks.app import App, Fakes, fakes, seed_incident


@pytest.fixture(scope="module")
def world() -> Iterator[Fakes]:
    with fakes() as world:
        yield world


@pytest.fixture(scope="module")
def app(world: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The app on a SQLite store holding one paged incident (KEY)."""
    folder = tmp_path_factory.mktemp("app")
    seed_incident(str(folder / "state.sqlite"))
    app = App(folder, world, str(folder / "state.sqlite"))
    yield app
    app.stop()
