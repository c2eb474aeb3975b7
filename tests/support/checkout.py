"""A pytest plugin that fails the run when the tests leave something in the checkout.

At the start of the session it records ``git status --porcelain --ignored`` of the checkout
(pytest's rootdir); at the end, anything new there (a file written, a tracked file changed,
ignored files included) fails the run and is listed. Python's and pytest's own caches
(``__pycache__``, ``.pytest_cache``) are not counted: they are what running Python leaves.
Outside a git checkout (an unpacked tarball) there is nothing to compare, and it does nothing.

tests/conftest.py registers it; ``python -m pytest -p support.checkout`` runs it on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CACHES = ("__pycache__", ".pytest_cache")
# SMTP_CA_UPDATE_GOLDEN=1 asks the golden-log tests to rewrite their files on purpose.
GOLDEN = "tests/golden/"

_STATUS = pytest.StashKey[set[str]]()


def _status(root: Path) -> set[str] | None:
    """The lines of ``git status --porcelain --ignored`` for ``root``, or None when ``root``
    is no git work tree (or there is no git)."""
    if shutil.which("git") is None:
        return None
    completed = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--ignored", "--", "."],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if completed.returncode != 0:
        return None
    return set(completed.stdout.splitlines())


def _counted(line: str) -> bool:
    path = line[3:]
    if any(cache in path.split("/") for cache in CACHES):
        return False
    return not (os.environ.get("SMTP_CA_UPDATE_GOLDEN") and path.startswith(GOLDEN))


def pytest_sessionstart(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the run's own session checks
    status = _status(session.config.rootpath)
    if status is not None:
        session.stash[_STATUS] = status


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_STATUS, None)
    if before is None:
        return
    after = _status(session.config.rootpath) or set()
    left = sorted(line for line in after - before if _counted(line))
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        f"The tests left the checkout ({session.config.rootpath}) changed; a test writes "
        "there instead of in its tmp_path (git status --porcelain --ignored):",
        *(f"  {line}" for line in left),
    ]
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "checkout changed", red=True)
        for line in lines:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
