"""Fixtures shared by the end-to-end test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.cnb_world import CnbWorld, open_cnb_world
from support.world import World, open_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The stand-ins for the internet and one warm dependency cache, made once per run: every
    end-to-end build starts from a copy of that cache (see support.world)."""
    with open_world(tmp_path_factory.mktemp("world")) as opened:
        yield opened


@pytest.fixture(scope="session")
def cnb_world() -> Iterator[CnbWorld]:
    """The same for builds with the CNB lifecycle: one cold build per run fills the cache
    layer that every other CNB build starts from (see support.cnb_world)."""
    with open_cnb_world() as opened:
        yield opened
