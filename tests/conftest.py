"""Fixtures shared by the end-to-end test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.world import World, open_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The stand-ins for the internet and one warm dependency cache, made once per run: every
    end-to-end build starts from a copy of that cache (see support.world)."""
    with open_world(tmp_path_factory.mktemp("world")) as opened:
        yield opened
