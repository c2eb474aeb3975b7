"""Where things are in the checkout, for tests at any depth under tests/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src"
FIXTURES = REPO / "tests" / "fixtures"
GEMFILE_LOCKS = FIXTURES / "gemfile_lock"
