"""A test whose prerequisite is missing says so where it is read: the skip names the test's own
file (not tests/support/) and the one command that gives it what it needs.

Each case runs pytest in a subprocess on a real test module, with the prerequisite pointed at
an empty directory, so nothing is built and nothing is skipped here for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.offline_inputs import REPO


def skipped_lines(tmp_path: Path, test: str, **env: str) -> list[str]:
    environment = {**os.environ, **env}
    environment.pop("CI", None)  # with CI=true a missing prerequisite fails instead
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-rs", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "basetemp")],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    lines = [line for line in completed.stdout.splitlines() if line.startswith("SKIPPED")]
    assert lines, completed.stdout + completed.stderr
    return lines


def test_a_missing_chroot_skip_names_the_test_file_and_the_command(tmp_path: Path) -> None:
    """What is missing depends on the machine (root, mount, mmdebstrap, the chroot itself):
    the skip is the one line .ci/prepare-chroots --check prints here, or, when it finds
    nothing missing, names the chroot."""
    no_chroots = tmp_path / "no-chroots"
    test = "tests/e2e/test_eras.py::test_ruby_27_trusts_only_ca_file_and_the_buildpack_gives_it_one"
    [line] = skipped_lines(tmp_path, test, SMTP_CA_CHROOTS=str(no_chroots))
    check = subprocess.run(
        ["bash", str(REPO / ".ci" / "prepare-chroots"), "--check"],
        env={**os.environ, "SMTP_CA_CHROOTS": str(no_chroots)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    missing = check.stdout.strip() or "needs the bullseye chroot: run `bash .ci/prepare-chroots`"
    assert re.fullmatch(r"needs .+: run `[^`]+`.*", missing)
    assert re.fullmatch(rf"SKIPPED \[1\] tests/e2e/test_eras\.py:\d+: {re.escape(missing)}", line)


def test_missing_offline_inputs_skip_names_the_test_file_and_the_command(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "no-inputs"
    empty.mkdir()
    test = (
        "tests/unit/check/test_bin_check_command.py"
        "::test_without_arguments_it_prints_its_usage_and_exits_2"
    )
    [line] = skipped_lines(tmp_path, test, SMTP_CA_TEST_INPUTS=str(empty))
    assert re.fullmatch(
        r"SKIPPED \[1\] tests/unit/check/test_bin_check_command\.py:\d+: needs the offline "
        r"test inputs \(no wheels in .+\): run `bash \.ci/prepare-test-inputs`",
        line,
    )


def test_prepare_chroots_checks_before_it_builds(tmp_path: Path) -> None:
    """Without a tool the chroots need, .ci/prepare-chroots says so in one line and makes
    nothing, in a fraction of a second, instead of minutes of mmdebstrap first. Its `id`
    says root, whoever runs the test: root is the first thing it checks, the tools come next."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "realpath", "dirname", "mktemp", "mkdir", "rm", "cat", "mmdebstrap"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True)
        if found.returncode == 0:
            (tools / tool).symlink_to(found.stdout.strip())
    (tools / "id").write_text("#!/bin/sh\necho 0\n")
    (tools / "id").chmod(0o755)
    cache = tmp_path / "chroots"
    completed = subprocess.run(
        ["bash", str(REPO / ".ci" / "prepare-chroots")],
        env={"PATH": str(tools), "SMTP_CA_CHROOTS": str(cache)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0  # outside CI: the era tests then skip, saying why
    needs = "needs mmdebstrap" if not (tools / "mmdebstrap").exists() else "needs mount"
    assert completed.stderr.splitlines() == [
        " !     prepare-chroots made no chroot (tests/e2e/test_eras.py and heroku-26 in "
        f"tests/e2e/test_stacks.py use them): it {needs}: run `apt-get install "
        f"{needs.removeprefix('needs ')} && bash .ci/prepare-chroots`"
    ]
    assert not cache.exists()
    with_ci = subprocess.run(
        ["bash", str(REPO / ".ci" / "prepare-chroots")],
        env={"PATH": str(tools), "SMTP_CA_CHROOTS": str(cache), "CI": "true"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert with_ci.returncode == 1
