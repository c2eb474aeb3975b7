"""The slices of ``bash scripts/test`` and the rules of a test run (support.slices,
support.skips, support.checkout): each slice leaves out what it should; a helper that builds
an app or needs Go, Docker, a chroot or another Python fails a test not marked for it; a skip
is one line and CI has none; a run that leaves something in the checkout fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.chroots import require_chroot
from support.cnb import find_lifecycle
from support.heroku import compile_app
from support.interpreters import find_python
from support.offline_inputs import REPO, last_line, skip_or_fail
from support.pack import open_docker
from support.rails_app import require_ruby_rails, run_delivery
from support.silent_dns import SilentNameServer


def _collected(slice_name: str, *files: str) -> tuple[set[str], int]:
    """The tests ``--slice`` keeps of ``files``, and how many it leaves out."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--slice", slice_name, *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    counted = re.search(
        r"^(\d+)/(\d+) tests collected \((\d+) deselected\)", completed.stdout, re.M
    )
    assert counted, completed.stdout
    kept = {line for line in completed.stdout.splitlines() if "::" in line}
    assert len(kept) == int(counted[1])
    return kept, int(counted[3])


def test_fast_leaves_out_every_build_and_default_only_what_needs_more_than_debian() -> None:
    """test_gemfile_lock.py has two builds among its in-process tests; test_stacks.py's three
    tests need other Pythons (and the sid chroot)."""
    files = ("tests/unit/settings/test_gemfile_lock.py", "tests/e2e/test_stacks.py")
    builds = {
        "tests/unit/settings/test_gemfile_lock.py::test_a_build_names_the_apps_gems_and_warns_exactly",
        "tests/unit/settings/test_gemfile_lock.py::test_a_build_with_an_odd_lock_notes_it_and_goes_on",
    }
    default, left_out_of_default = _collected("default", *files)
    fast, left_out_of_fast = _collected("fast", *files)
    assert all(test.startswith("tests/unit/settings/test_gemfile_lock.py::") for test in default)
    assert builds <= default and left_out_of_default == 3
    assert fast == default - builds and left_out_of_fast == 3 + len(builds)


def _build_with_bin_compile(tmp_path: Path) -> object:
    return compile_app(tmp_path, tmp_path, tmp_path, tmp_path, {})


def _start_a_dyno(tmp_path: Path) -> object:
    return run_delivery(tmp_path, {})


def _listen_on_port_53(tmp_path: Path) -> object:
    with SilentNameServer():
        return None


def _enter_docker(tmp_path: Path) -> object:
    with open_docker():
        return None


GUARDED: list[tuple[Callable[[Path], object], str]] = [
    (_build_with_bin_compile, "e2e"),
    (_start_a_dyno, "e2e"),
    (lambda _: require_ruby_rails(), "e2e"),
    (lambda _: find_lifecycle(), "needs_lifecycle"),
    (lambda _: require_chroot("bullseye"), "needs_chroots"),
    (_enter_docker, "needs_docker"),
    (lambda _: find_python("3.10"), "needs_other_pythons"),
    (_listen_on_port_53, "needs_root"),
]


@pytest.mark.parametrize(
    ("helper", "marker"),
    GUARDED,
    ids=[
        "bin-compile",
        "dyno",
        "ruby-rails",
        "lifecycle",
        "chroot",
        "docker",
        "other-python",
        "root",
    ],
)
def test_a_helper_fails_a_test_not_marked_for_what_it_needs(
    tmp_path: Path, helper: Callable[[Path], object], marker: str
) -> None:
    """This test carries none of the markers: each helper stops it before doing anything,
    naming the marker it lacks."""
    with pytest.raises(pytest.fail.Exception, match=rf"is not marked {marker}: add "):
        helper(tmp_path)


def test_a_skip_reason_is_one_line() -> None:
    with pytest.raises(AssertionError, match="a skip reason is one line"):
        skip_or_fail("the Docker daemon did not start:\nlevel=info msg=...\nlevel=fatal msg=...")
    assert last_line("level=info msg=starting\nlevel=fatal msg=no cgroups\n\n") == (
        "level=fatal msg=no cgroups"
    )


def _run_pytest_in(repo: Path, test: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on a lone test file in ``repo``, with the plugins under test and nothing else of
    this project's (no conftest), its temporary directories beside ``repo``."""
    (repo / "test_it.py").write_text(test)
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    basetemp = repo.parent / f"{repo.name}-basetemp"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "-p", "support.skips", "-p", "support.checkout", "--rootdir", str(repo),
         "--basetemp", str(basetemp), "test_it.py"],
        cwd=repo,
        env={**environment, "PYTHONPATH": str(REPO / "tests"), "PYTHONDONTWRITEBYTECODE": "1",
             **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def test_with_ci_a_skip_is_a_failure(tmp_path: Path) -> None:
    test = "import pytest\n\ndef test_it():\n    pytest.skip('needs a thing: run `make thing`')\n"
    outside_ci = _run_pytest_in(tmp_path, test)
    assert outside_ci.returncode == 0, outside_ci.stdout
    assert "1 skipped" in outside_ci.stdout
    in_ci = _run_pytest_in(tmp_path, test, CI="true")
    assert in_ci.returncode == 1, in_ci.stdout
    assert "CI=true, and CI runs every test, but it skipped: needs a thing" in in_ci.stdout
    assert "1 failed" in in_ci.stdout


def test_a_run_that_leaves_a_file_in_the_checkout_fails_naming_it(tmp_path: Path) -> None:
    """Ignored or not: the export file a build once wrote into the checkout was ignored."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("/export\n")
    writes = (
        "from pathlib import Path\n\n"
        "def test_it(tmp_path):\n"
        "    (tmp_path / 'fine').write_text('x')\n"
        "    (Path(__file__).parent / 'export').write_text('export SMTP_CA_FILE=x')\n"
    )
    completed = _run_pytest_in(repo, writes)
    assert completed.returncode == 1, completed.stdout
    assert "1 passed" in completed.stdout
    assert "The tests left the checkout" in completed.stdout
    assert "\n  !! export\n" in completed.stdout
    # The same run without the stray file passes: test_it.py itself was there before.
    (repo / "export").unlink()
    clean = _run_pytest_in(repo, writes.replace("'export'", "'../export-outside'"))
    assert clean.returncode == 0, clean.stdout
    (tmp_path / "export-outside").unlink()


def _scripts_test(tmp_path: Path, *arguments: str) -> tuple[list[str], str]:
    """scripts/test in a copy whose set-up, gates and python only record how they were run:
    (those records, the last line it printed)."""
    repo = tmp_path / "repo"
    for directory in ("scripts", "bin", ".ci", ".venv/bin"):
        (repo / directory).mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "test", repo / "scripts" / "test")
    calls = tmp_path / "calls"
    recorder = f'#!/bin/sh\necho "$(basename "$0") $*" >>"{calls}"\n'
    (repo / "scripts" / "setup-dev").write_text(recorder)
    for tool in ("ruff", "mypy", "shellcheck", "rubocop", "ruby", "python"):
        (repo / ".venv" / "bin" / tool).write_text(recorder)
        (repo / ".venv" / "bin" / tool).chmod(0o755)
    run = subprocess.run(
        ["bash", str(repo / "scripts" / "test"), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run
    return calls.read_text().splitlines(), run.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("arguments", "setup", "pytest_arguments", "last"),
    [
        ((), "setup-dev ", "--slice default -k wiring", "bash scripts/test --all"),
        (("--fast",), "setup-dev ", "--slice fast --numprocesses auto -k wiring", "--all)"),
        (("--all",), "setup-dev --all", "--slice all -k wiring", "-----> pytest (--slice all)"),
    ],
)
def test_scripts_test_runs_its_slice_with_its_setup_and_passes_the_rest_to_pytest(
    tmp_path: Path, arguments: tuple[str, ...], setup: str, pytest_arguments: str, last: str
) -> None:
    calls, last_line_printed = _scripts_test(tmp_path, *arguments, "-k", "wiring")
    assert calls[0] == setup
    assert calls[-1] == f"python -m pytest {pytest_arguments}"
    assert {call.split()[0] for call in calls} >= {"ruff", "mypy", "shellcheck", "rubocop", "ruby"}
    assert last_line_printed.endswith(last)
