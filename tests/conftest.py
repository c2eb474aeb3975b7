"""Fixtures shared by the end-to-end test modules, and where a skip is reported."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from support.cnb_world import CnbWorld, open_cnb_world
from support.scratch import fixture_dir
from support.world import World, open_world

SUPPORT = Path(__file__).resolve().parent / "support"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A prerequisite's skip is raised in tests/support/ (support.offline_inputs.skip_or_fail),
    where pytest would report it: "SKIPPED [10] tests/support/offline_inputs.py:37". Report it
    at the test that needs the prerequisite instead, so the line names that test's file."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        path, _, reason = report.longrepr
        if Path(path).resolve().is_relative_to(SUPPORT):
            test_file, line, _ = item.location
            report.longrepr = (test_file, (line or 0) + 1, reason)
    return report


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
