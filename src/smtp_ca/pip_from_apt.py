"""Finding a pip for the cold install: this python3's own, or python3-pip from the stack's apt.

Heroku's build images have python3 but no pip. The buildpack then fetches the stack's own
python3-pip the way heroku-buildpack-apt fetches packages (``apt-get download`` with private
state directories, ``dpkg -x``): no root needed, and it is the pip the stack's python3 is built
to run. The extracted package is kept in the cache under ``pip/<key>/`` with the same marker
as the dependencies (``bootstrap``), so the next cold install needs no apt-get.

Only the cold path imports this module. :func:`run_tool` runs pip, apt-get and dpkg for both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from smtp_ca import bootstrap
from smtp_ca.certificates import printable
from smtp_ca.errors import BuildError
from smtp_ca.output import Log

APT_PIP_PACKAGE = "python3-pip"
# Where Debian and Ubuntu's python3-pip puts pip; it vendors its own dependencies there too.
DEB_PIP_SITE = Path("usr/lib/python3/dist-packages")
ERROR_TAIL_LINES = 20
MAX_LINE_CHARACTERS = 300  # of one line of a tool's output, in an error


def pip_command(site: Path | None) -> list[str]:
    """The command that runs pip, isolated like the build (``-I``: no PYTHON* variables, no
    user site), with ``site`` (an extracted python3-pip) first on its path."""
    runner = "import runpy, sys\n"
    if site is not None:
        runner += f"sys.path.insert(0, {str(site)!r})\n"
    runner += "runpy.run_module('pip', run_name='__main__', alter_sys=True)\n"
    return [sys.executable, "-I", "-c", runner]


def find_pip(layout: bootstrap.Layout, stack: str, log: Log) -> Path | None:
    """The directory holding pip for :func:`pip_command`, or ``None`` for this python3's own.

    Prefers a pip this python3 already has; else the one extracted by an earlier build; else
    python3-pip from the stack's own apt sources.
    """
    if _has_own_pip():
        return None
    pip_key = bootstrap.dependency_key(stack, b"python3-pip")
    pip_root = layout.pip / pip_key
    site = pip_root / DEB_PIP_SITE
    if (
        bootstrap.check_marker(pip_root, pip_key).trusted
        and (site / "pip" / "__init__.py").is_file()
    ):
        log.info("Using pip from the build cache")
        return site

    bootstrap.remove(layout.pip)
    layout.pip.mkdir(parents=True)
    staging = layout.pip / f"{bootstrap.STAGING_PREFIX}{pip_key}-{os.getpid()}"
    try:
        _fetch_pip_with_apt(layout.apt, staging, log)
        staged_site = staging / DEB_PIP_SITE
        status, tail = run_tool(
            [*pip_command(staged_site), "--version"], env=os.environ, log=log, what="pip"
        )
        if status != 0:
            major, minor = sys.version_info[:2]
            raise BuildError(
                f"The {APT_PIP_PACKAGE} package from the stack's apt sources does not run with "
                f"this python3 ({major}.{minor}). Its output:\n" + "\n".join(tail),
                hint=f"Build on a supported stack (heroku-22 or later); if {stack} is one, "
                "report this with the build log.",
            )
        staging.replace(pip_root)
        bootstrap.write_marker(pip_root, pip_key)
    finally:
        bootstrap.remove(staging)
        bootstrap.remove(layout.apt)
    return site


def _has_own_pip() -> bool:
    """Whether this python3 has pip of its own. The build runs with ``-S`` (no site-packages on
    sys.path, and under -S a venv is not even recognised), so a python3 started as pip will be
    is asked: a few tens of milliseconds, on the cold path only."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('pip') is None)"
    try:
        completed = subprocess.run(
            [sys.executable, "-I", "-c", probe],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def _fetch_pip_with_apt(apt_root: Path, destination: Path, log: Log) -> None:
    """Downloads python3-pip with apt-get and extracts it with ``dpkg -x``, all without root.

    apt's state, lists and caches go to private directories (a build is not root and must not
    touch /var), locking is off (nothing else uses those directories), and dpkg's status is an
    empty file: ``apt-get download`` needs package lists, not what is installed. The sources are
    the stack's own, or whatever APT_CONFIG names.
    """
    apt_get, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
    missing = [name for name, path in (("apt-get", apt_get), ("dpkg", dpkg)) if path is None]
    if apt_get is None or dpkg is None:
        raise BuildError(
            f"This python3 has no pip, and {' and '.join(missing)} could not be found to "
            f"download the {APT_PIP_PACKAGE} package.",
            hint="Build on a Heroku stack image (heroku-22 or later), which has apt-get and dpkg.",
        )
    log.info(f"This python3 has no pip: downloading {APT_PIP_PACKAGE} with apt-get")
    bootstrap.remove(apt_root)
    state, cache, debs = apt_root / "state", apt_root / "cache", apt_root / "debs"
    (state / "lists" / "partial").mkdir(parents=True)
    (cache / "archives" / "partial").mkdir(parents=True)
    debs.mkdir()
    status_file = state / "status"
    status_file.write_bytes(b"")
    options = [
        "-q",
        "-o",
        f"Dir::State={state}",
        "-o",
        f"Dir::State::status={status_file}",
        "-o",
        f"Dir::Cache={cache}",
        "-o",
        "Debug::NoLocking=1",
        # As root (CI, docker), apt would hand downloads to the _apt user, who cannot write
        # here; as any other user this setting does nothing.
        "-o",
        "APT::Sandbox::User=root",
    ]
    env = dict(os.environ)
    # apt-get update exits 0 when a source is unreachable (it only warns), and the download then
    # fails with "Unable to locate package": the error shows both steps' last lines.
    output: list[str] = []
    for command, cwd in ((["update"], None), (["download", APT_PIP_PACKAGE], debs)):
        status, tail = run_tool(
            [apt_get, *options, *command], env=env, log=log, what="apt-get", cwd=cwd
        )
        output = [*output, *tail][-ERROR_TAIL_LINES:]
        if status != 0:
            raise BuildError(
                f"Downloading {APT_PIP_PACKAGE} failed: apt-get {' '.join(command)} exited with "
                f"status {status}. This python3 has no pip, and the buildpack needs one to "
                "install its dependencies. Last lines of apt-get's output:\n" + "\n".join(output),
                hint="Retry the build; if it fails again, check the stack's apt sources and "
                "report it with this build log.",
            )
    found = sorted(debs.glob(f"{APT_PIP_PACKAGE}_*.deb"))
    if not found:
        raise BuildError(
            f"apt-get download {APT_PIP_PACKAGE} succeeded but left no .deb file.",
            hint="Retry the build; if it fails again, report it with this build log.",
        )
    destination.mkdir(parents=True)
    status, tail = run_tool(
        [dpkg, "-x", str(found[-1]), str(destination)], env=env, log=log, what="dpkg"
    )
    if status != 0:
        raise BuildError(
            f"Extracting {found[-1].name} with dpkg -x failed (exit status {status}):\n"
            + "\n".join(tail),
            hint="Retry the build; if it fails again, report it with this build log.",
        )
    if not (destination / DEB_PIP_SITE / "pip" / "__init__.py").is_file():
        raise BuildError(
            f"{found[-1].name} does not contain pip in /{DEB_PIP_SITE}.",
            hint="Report this with the build log: this stack packages pip differently.",
        )


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Log,
    what: str,
    cwd: Path | None = None,
) -> tuple[int, list[str]]:
    """Runs ``argv`` and returns its status and last lines, redacted. Its output is not shown
    as it comes: a build log has one line per step, and the caller shows these lines only
    when the tool failed."""
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            text=True,
            errors="replace",
        )
    except OSError as error:
        raise BuildError(
            f"Could not run {what} ({argv[0]}): {error.strerror or error}.",
            hint="Build on a Heroku stack image (heroku-22 or later).",
        ) from None
    assert process.stdout is not None
    with process:
        for line in process.stdout:
            line = line.rstrip()
            if line:
                tail.append(printable(log.redact(line))[:MAX_LINE_CHARACTERS])
    return process.returncode, list(tail)
