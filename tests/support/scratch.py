"""Directories for fixtures wider than one test, removed when the fixture ends.

pytest keeps only the ``tmp_path`` of failed tests (pyproject.toml's retention policy), but a
``tmp_path_factory.mktemp`` directory of a module or session fixture stays with every run that
has a failure: warm dependency caches, cold installs, built apps, tens of MB each. What a
failed test needs for its report is in its own ``tmp_path``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def fixture_dir(request: pytest.FixtureRequest, factory: pytest.TempPathFactory, name: str) -> Path:
    """``factory.mktemp(name)``, removed when the fixture that asked for it is torn down."""
    path = factory.mktemp(name)
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    return path
