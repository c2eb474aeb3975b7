"""Running pip for the cold install: the buildpack's own pip wheel, checked, isolated, bounded.

The buildpack carries one pip wheel, ``vendor/pip-<version>-py3-none-any.whl`` (``pip download
--no-deps pip==<version>``: the newest pip for every Python of the stacks), and its SHA-256 in
``vendor/pip.sha256``. The build checks the wheel against that pin, then runs it the way
heroku/buildpacks-python does: ``python3 <wheel>/pip install ...``, Python running pip's
``__main__`` from inside the zip. So a cold build needs no pip of the machine's, no apt-get and
no download to get one, and what runs is the pinned wheel whatever the machine holds.

``-I -S`` keep pip as isolated as the build: no PYTHON* variables, no user site, no machine
site-packages (pip vendors everything it needs). The command line fixes what no setting may
change (:data:`INSTALL_OPTIONS`): hashes required, no dependencies beyond the lock, wheels only
(so no sdist's setup code ever runs), no keyring program asked for credentials.

Only the cold path imports this module.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from smtp_ca import BUILDPACK_DIR
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.untrusted import escaped

VENDOR_DIR = BUILDPACK_DIR / "vendor"
PIN_FILE_NAME = "pip.sha256"
# The whole pip run, every download and retry included: pip's own timeouts are per socket
# operation, so an index that answers one byte at a time could hold it for ever.
DEADLINE_SECONDS = 300.0
ERROR_TAIL_LINES = 20
MAX_LINE_CHARACTERS = 300  # of one line of a tool's output, in an error
_MAX_READ = 64 * 1024  # a longer line of output is read in pieces: memory stays bounded
# What of a line is kept until the end, when the last lines are redacted and cut to
# MAX_LINE_CHARACTERS: enough that a secret starting in what is shown is kept whole for the
# redactor, little enough that redacting 20 lines stays quick.
_KEPT_CHARACTERS = 4096
_NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", as Python prints it

# pip's options for the install that no PIP_* setting can change: the command line wins over
# the environment and config files.
INSTALL_OPTIONS = (
    "--no-deps",
    "--require-hashes",
    "--only-binary=:all:",
    "--keyring-provider=disabled",
    "--disable-pip-version-check",
    "--no-input",
    # The cache dir's install is what persists; pip's HTTP cache would only be noise (and a
    # warning where HOME is not writable).
    "--no-cache-dir",
    # The build compiles the installed modules itself, into bytecode the marker covers
    # (install.compile_bytecode): pip's own .pyc files depend on source mtimes.
    "--no-compile",
    "--progress-bar=off",
)
_PIN_LINE = re.compile(r"([0-9a-f]{64})  (pip-([0-9][0-9A-Za-z.+]*)-py3-none-any\.whl)")


@dataclass(frozen=True)
class VendoredPip:
    wheel: Path
    version: str

    def command(self) -> list[str]:
        """``python3 -I -S <wheel>/pip``: this python3 runs pip from its wheel."""
        return [sys.executable, "-I", "-S", str(self.wheel / "pip")]


def vendored_pip(vendor_dir: Path = VENDOR_DIR) -> VendoredPip:
    """The buildpack's pip wheel, once its SHA-256 matches the pin; else ``BuildError``."""
    pin_file = vendor_dir / PIN_FILE_NAME
    damaged = "The buildpack checkout is incomplete or damaged: use a released version of it."
    try:
        pin = pin_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        cause = error.strerror if isinstance(error, OSError) else "it is not text"
        raise BuildError(
            f"Cannot read the pin of the buildpack's pip {pin_file}: {cause}.", hint=damaged
        ) from None
    match = _PIN_LINE.fullmatch(pin)
    if match is None:
        raise BuildError(
            f"{pin_file} is not one line '<SHA-256>  pip-<version>-py3-none-any.whl'.", hint=damaged
        )
    expected, name, version = match.groups()
    wheel = vendor_dir / name
    try:
        actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    except OSError as error:
        raise BuildError(
            f"Cannot read the buildpack's pip {wheel}: {error.strerror or error}.", hint=damaged
        ) from None
    if actual != expected:
        raise BuildError(
            f"The buildpack's pip {wheel} does not match its pin in {pin_file}: SHA-256 "
            f"{actual}, pinned {expected}.",
            hint=damaged,
        )
    return VendoredPip(wheel, version)


def install_command(pip: VendoredPip, target: Path, lock_file: Path) -> list[str]:
    return [
        *pip.command(),
        "install",
        *INSTALL_OPTIONS,
        "--target",
        str(target),
        "--requirement",
        str(lock_file),
    ]


@dataclass(frozen=True)
class ToolRun:
    """How a tool ended: its status (None when stopped at its deadline), its last lines
    (redacted, escaped, cut), and the first line that said the disk was full, if one did
    (never shown: it only tells which directory filled up)."""

    status: int | None
    tail: list[str]
    no_space: str | None

    @property
    def timed_out(self) -> bool:
        return self.status is None


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Log,
    deadline: float = DEADLINE_SECONDS,
) -> ToolRun:
    """Runs ``argv`` for at most ``deadline`` seconds (then kills it and all it started).
    Its output is not shown as it comes: a build log has one line per step, and the caller
    shows the last lines only when the tool failed."""
    raw_tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    no_space: str | None = None
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so the deadline ends all of it
        )
    except OSError as error:
        raise BuildError(
            f"Could not run {argv[0]}: {error.strerror or error}.",
            hint="Build on a Heroku stack image (heroku-22 or later).",
        ) from None
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        with suppress(OSError):  # it ended just now
            os.killpg(process.pid, signal.SIGKILL)

    watchdog = threading.Timer(deadline, stop)
    watchdog.start()
    try:
        assert process.stdout is not None
        with process:
            while piece := process.stdout.readline(_MAX_READ):
                line = piece.rstrip()[:_KEPT_CHARACTERS]
                if no_space is None and _NO_SPACE in piece:
                    no_space = line
                if line:
                    raw_tail.append(line)
    finally:
        watchdog.cancel()
    tail = [escaped(log.redact(line))[:MAX_LINE_CHARACTERS] for line in raw_tail]
    return ToolRun(None if stopped.is_set() else process.returncode, tail, no_space)
