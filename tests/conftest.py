"""Fixtures shared by the end-to-end test modules, the slices of ``bash scripts/test``
(support.slices), and two plugins: where a skip is reported and that CI has none
(support.skips), and that the tests leave the checkout as they found it (support.checkout)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from support import slices
from support.cnb_world import CnbWorld, open_cnb_world
from support.scratch import fixture_dir
from support.world import World, open_world

_HYPOTHESIS_HOME = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slice",
        choices=slices.SLICES,
        default="all",
        help="fast: no test that builds an app or needs more than .venv; default: no test "
        "that needs Go, Docker, Debian chroots, other Pythons or root; all (the default): every "
        "test. bash scripts/test passes it.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("support.skips")
    config.pluginmanager.import_plugin("support.checkout")
    # Hypothesis keeps its caches and examples in ./.hypothesis, inside the checkout: this run's
    # go into a directory of its own, removed at the end.
    home = Path(tempfile.mkdtemp(prefix="smtp-ca-hypothesis-"))
    config.stash[_HYPOTHESIS_HOME] = home
    set_hypothesis_home_dir(home)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HYPOTHESIS_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("--slice")
    kept, left = [], []
    for item in items:
        (left if slices.left_out(item, chosen) else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """The test being run, for support.slices.require."""
    slices.running(item)
    try:
        return (yield)
    finally:
        slices.running(None)


@pytest.fixture(scope="session")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The stand-ins for the internet and one warm dependency cache, made once per run: every
    end-to-end build starts from a copy of that cache (see support.world)."""
    with open_world(fixture_dir(request, tmp_path_factory, "world")) as opened:
        yield opened


@pytest.fixture(scope="session")
def cnb_world() -> Iterator[CnbWorld]:
    """The same for builds with the CNB lifecycle: one cold build per run fills the cache
    layer that every other CNB build starts from (see support.cnb_world)."""
    with open_cnb_world() as opened:
        yield opened
