"""A pytest plugin for skips: where one is reported, and that CI has none.

tests/conftest.py registers it; ``python -m pytest -p support.skips`` runs it on its own.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A prerequisite's skip is raised in tests/support/ (support.offline_inputs.skip_or_fail),
    where pytest would report it: "SKIPPED [10] tests/support/offline_inputs.py:37". Report it
    at the test that needs the prerequisite instead, so the line names that test's file.

    With CI=true a skip, whatever raised it, is a failure: CI runs every test."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        path, _, reason = report.longrepr
        if Path(path).resolve().is_relative_to(SUPPORT):
            test_file, line, _ = item.location
            report.longrepr = (test_file, (line or 0) + 1, reason)
        if os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            why = reason.removeprefix("Skipped: ")
            report.longrepr = f"CI=true, and CI runs every test, but it skipped: {why}"
    return report
