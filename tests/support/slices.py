"""The slices of ``bash scripts/test``, and the guard that keeps every test in the right ones.

A test says what it needs beyond ``.venv`` and ``.test-inputs`` with markers (registered in
pyproject.toml):

* ``e2e``: it builds a whole app in a child process (bin/compile, the compile command, the
  CNB lifecycle, pack) or starts one as a dyno, with Debian's ruby and ActionMailer;
* ``needs_lifecycle``, ``needs_chroots``, ``needs_docker``, ``needs_other_pythons``,
  ``needs_root``: it needs the CNB lifecycle (built with Go), the Debian chroots of other eras
  (root, mount), Docker and pack (root), the python3 of another Heroku stack, or root itself
  (a port below 1024, a tmpfs in a mount namespace).

``pytest --slice`` picks the tests of a slice: ``fast`` those with none of these markers,
``default`` those without a ``needs_*`` marker, ``all`` (the default) every test.

The helpers that do those things (support.heroku.compile_app, support.chroots.require_chroot
...) call :func:`require` first: a test that reaches one without the marker fails, naming the
marker, in whichever slice it runs. So a test that builds an app cannot sit in ``--fast``,
and one that needs a chroot cannot sit anywhere but ``--all``.
"""

from __future__ import annotations

import pytest

E2E = "e2e"
NEEDS = (
    "needs_lifecycle",
    "needs_chroots",
    "needs_docker",
    "needs_other_pythons",
    "needs_root",
)
SLICES = ("fast", "default", "all")

_running: pytest.Item | None = None


def left_out(item: pytest.Item, slice_name: str) -> bool:
    """Whether the slice leaves ``item`` out."""
    if slice_name == "all":
        return False
    if any(item.get_closest_marker(name) for name in NEEDS):
        return True
    return slice_name == "fast" and item.get_closest_marker(E2E) is not None


def running(item: pytest.Item | None) -> None:
    """Records the test being run (tests/conftest.py), for :func:`require`."""
    global _running
    _running = item


def require(marker: str, doing: str) -> None:
    """Fails the running test unless it carries ``marker``; ``doing`` says what it does that
    needs the marker ("builds an app with bin/compile"). Outside a test run (the benchmarks
    use the same helpers) it does nothing."""
    if _running is None or _running.get_closest_marker(marker) is not None:
        return
    pytest.fail(
        f"{_running.nodeid} {doing} but is not marked {marker}: add @pytest.mark.{marker} "
        "(pyproject.toml says what each marker means), so that the slices of "
        "bash scripts/test run it where it can run",
        pytrace=False,
    )
