"""What builds under test install from instead of the internet: made by .ci/prepare-test-inputs.

A wheelhouse with the locked wheels (for pip's --find-links; pip itself is the wheel vendored in
the buildpack). Found through SMTP_CA_TEST_INPUTS, default ``<repo>/.test-inputs``. Missing
inputs skip the tests that need them, or fail them when CI=true.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from support.paths import REPO


@dataclass(frozen=True)
class Inputs:
    wheelhouse: Path


def inputs_root() -> Path:
    """Where .ci/prepare-test-inputs (and .ci/prepare-lifecycle) put the test inputs."""
    return Path(os.environ.get("SMTP_CA_TEST_INPUTS") or REPO / ".test-inputs")


def skip_or_fail(message: str) -> NoReturn:
    """Skips the calling test for a missing prerequisite; with CI=true fails it, because CI
    must install everything the tests need.

    ``message`` says what the test needs and the one command that gives it ("needs X: run
    `...`"). The report names the test's own file and line, not this one: tests/conftest.py
    moves a skip raised in tests/support/ to the test that asked. It is one line: what a
    tool printed is quoted by its last line (:func:`last_line`), with a file that holds the
    rest named rather than copied."""
    assert "\n" not in message, f"a skip reason is one line, not: {message!r}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def last_line(output: str) -> str:
    """The last non-blank line of what a tool printed (its verdict), for a one-line reason."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(it printed nothing)"


def load_inputs() -> Inputs:
    root = inputs_root()
    wheelhouse = root / "wheelhouse"
    if not any(wheelhouse.glob("*.whl")):
        skip_or_fail(
            f"needs the offline test inputs (no wheels in {wheelhouse}): "
            "run `bash .ci/prepare-test-inputs`"
        )
    return Inputs(wheelhouse)
