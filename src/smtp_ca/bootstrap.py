"""Installs the buildpack's Python dependencies into the build cache, before anything imports them.

Heroku's build images have python3 but no pip, so the buildpack cannot count on anything beyond
the standard library. This module is the one part of the buildpack that runs before its
dependencies exist: it is stdlib only, and ``smtp_ca.pipeline.load_dependencies`` calls
:func:`ensure_dependencies` right after the settings and puts the directory it returns at the
front of ``sys.path``.

Layout under the buildpack's own cache directory (``CACHE_DIR/smtp-ca/`` on classic Heroku)::

    stack                   STACK of the last build, to notice a stack change
    python-deps/<key>/      ``pip install --target`` output; complete once MARKER_NAME is in it
    python-deps/.staging-*  a ``--target`` being filled; renamed to <key> when pip succeeds
    pip/<key>/              python3-pip's .deb extracted with ``dpkg -x``, when python3 has no pip
    apt/                    apt-get's private state while fetching python3-pip; removed after

The key hashes everything the installed files depend on (stack, Python major.minor, machine,
lock file), so a warm build only reads two small files, hashes the lock and checks the installed
files against the marker's list of sizes and SHA-256 digests: no subprocess, no network. The
marker is written last, after the atomic rename, so a build killed half-way leaves a directory
without a marker, which the next build removes and installs again. A file lost, cut short or
changed since then (a partial cache restore, someone else's write) makes the cache untrusted: it
is reinstalled, with a warning when a file changed. Hashing every installed file (19 MB, most of
it cryptography's compiled module) costs about 10-20 ms of a warm build: a module changed with
its size kept would otherwise fail every later build, and the compiled one is a module too.

How python3 gets pip for the cold install is ``pip_from_apt``.
"""

from __future__ import annotations

# Only what the warm path needs is imported here: it must cost a few milliseconds, and modules
# such as subprocess, shutil or urllib.parse are imported by the cold-path functions using them.
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from smtp_ca.certificates import SYSTEM_STORE, printable
from smtp_ca.errors import BuildError
from smtp_ca.files import write_atomically
from smtp_ca.output import Log, url_secrets

# How classic Heroku users start the build cache afresh; each platform says it its own way.
CLASSIC_CACHE_RESET_HINT = "Clear the build cache (heroku builds:cache:purge) and build again."
MARKER_NAME = ".smtp-ca-complete.json"
MARKER_FORMAT = 3  # 2: the marker lists every file and its size; 3: and its SHA-256
STAGING_PREFIX = ".staging-"

# Names of Heroku config vars (files in ENV_DIR) that are pip settings.
_PIP_VAR = re.compile(r"PIP_[A-Z0-9_]+")
# pip settings that would send our install somewhere other than --target, or refuse it: the
# buildpack decides where and how its own dependencies go, the user's settings are for their app.
_PIP_VARS_NOT_PASSED = frozenset(
    {
        "PIP_TARGET",
        "PIP_PREFIX",
        "PIP_ROOT",
        "PIP_USER",
        "PIP_REQUIRE_VIRTUALENV",
        "PIP_CONSTRAINT",
        "PIP_REQUIREMENT",
        "PIP_EDITABLE",
        "PIP_NO_BINARY",
        "PIP_ONLY_BINARY",
        "PIP_NO_DEPS",
        "PIP_PYTHON",
    }
)
# pip settings whose values are URLs that may carry user:password@ or a token.
_PIP_URL_VARS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_PROXY")

_INSTALL_HINT = (
    "If this app builds behind a proxy or must use a private package index, set the "
    "PIP_INDEX_URL, PIP_PROXY or PIP_CERT config vars (heroku config:set) and build again. "
    "Otherwise retry the build; if it fails again, report it with this build log."
)


def dependency_key(
    stack: str,
    lock_bytes: bytes,
    *,
    python: tuple[int, int] | None = None,
    machine: str | None = None,
) -> str:
    """A short hash of everything the installed files depend on.

    Compiled wheels differ per Python minor version and CPU, and what links against the OS
    (cryptography, cffi) per stack; the lock decides the rest.
    """
    major, minor = python if python is not None else sys.version_info[:2]
    digest = hashlib.sha256()
    for field in (
        stack,
        f"{major}.{minor}",
        # os.uname().machine is what platform.machine() returns here, without importing platform.
        machine if machine is not None else os.uname().machine,
    ):
        digest.update(field.encode() + b"\0")
    digest.update(lock_bytes)
    return digest.hexdigest()[:16]


def ensure_dependencies(
    cache_dir: Path,
    *,
    stack: str,
    env_dir: Path | None,
    lock_file: Path,
    log: Log,
    reset_hint: str = CLASSIC_CACHE_RESET_HINT,
) -> Path:
    """Returns a directory holding the locked dependencies, installing them first if needed.

    The caller puts the returned directory first on ``sys.path``. Raises ``BuildError`` with
    what failed and how to fix it; ``reset_hint`` says how this platform clears its cache.
    """
    try:
        lock_bytes = lock_file.read_bytes()
    except OSError as error:
        raise BuildError(
            f"Cannot read the buildpack's dependency lock file {lock_file}: {error.strerror}.",
            hint="The buildpack checkout is incomplete: use a released version of the buildpack.",
        ) from None
    key = dependency_key(stack, lock_bytes)
    layout = Layout(cache_dir)
    target = layout.deps / key

    try:
        previous_stack = _forget_other_stack(layout, stack)
        verdict = check_marker(target, key)
        if verdict.trusted:
            log.step("Using cached dependencies")
            return target

        log.step("Installing the buildpack's Python dependencies")
        if previous_stack:
            log.info(
                f"Stack changed from {previous_stack} to {stack}: "
                "reinstalling the buildpack's Python dependencies"
            )
        elif verdict.untrusted:
            log.warn(
                f"The cached dependencies in {target} cannot be trusted: {verdict.problem}. "
                "Reinstalling them."
            )
        elif target.exists():
            log.info("Cached dependencies are incomplete (a build stopped half-way?): reinstalling")
        return _install(layout, target, key, stack, env_dir, lock_file, log)
    except OSError as error:
        # Cache directory unwritable, disk full: say which directory and the real cause.
        raise BuildError(
            f"Could not install the buildpack's Python dependencies into the build cache "
            f"{layout.deps}: {error.strerror or error} ({error.filename or layout.deps}).",
            hint=reset_hint,
        ) from None


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def deps(self) -> Path:
        return self.root / "python-deps"

    @property
    def pip(self) -> Path:
        return self.root / "pip"

    @property
    def apt(self) -> Path:
        return self.root / "apt"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack"


def _forget_other_stack(layout: Layout, stack: str) -> str | None:
    """Drops what an earlier build installed for another stack (its files may not run here).

    Returns that other stack, if the last build was on one.
    """
    try:
        previous = layout.stack_file.read_text().strip()
    except OSError:
        previous = ""
    if previous == stack:
        return None
    if previous:
        remove(layout.deps)
        remove(layout.pip)
        remove(layout.apt)
    # Failing only costs an announcement on the next stack change; the install reports real
    # errors.
    with suppress(OSError):
        write_atomically(layout.stack_file, (stack + "\n").encode())
    return previous or None


class MarkerCheck:
    """What :func:`check_marker` found: ``trusted``, or why not. ``untrusted`` (a file changed
    or unreadable since the install) gets a warning; merely incomplete (no marker, a file
    missing or cut short: a build stopped half-way, a partial restore) only a note."""

    def __init__(self, *, trusted: bool = False, problem: str | None = None) -> None:
        self.trusted = trusted
        self.problem = problem

    @property
    def untrusted(self) -> bool:
        return self.problem is not None


_INCOMPLETE = MarkerCheck()


def check_marker(target: Path, key: str) -> MarkerCheck:
    """Whether ``target`` is a complete, unchanged install for ``key``: the marker, one stat()
    per installed file, then each file's SHA-256 (no subprocess)."""
    try:
        marker = json.loads((target / MARKER_NAME).read_text())
    except FileNotFoundError:
        return _INCOMPLETE
    except OSError as error:
        return MarkerCheck(problem=_unreadable(error, target))
    except ValueError:
        return _INCOMPLETE
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        return _INCOMPLETE
    entries, files = marker.get("entries"), marker.get("files")
    if marker.get("key") != key or not isinstance(entries, list) or not entries:
        return _INCOMPLETE
    if not isinstance(files, dict) or not files:
        return _INCOMPLETE
    if not all(isinstance(name, str) and os.path.lexists(target / name) for name in entries):
        return _INCOMPLETE
    expected: list[tuple[str, int, str]] = []
    for name, record in files.items():
        if not (isinstance(record, list) and len(record) == 2):
            return _INCOMPLETE
        size, digest = record
        if not isinstance(size, int) or not isinstance(digest, str):
            return _INCOMPLETE
        expected.append((name, size, digest))
    try:
        # Sizes first: a partial restore shows there, for one stat() per file.
        if any((target / name).stat().st_size != size for name, size, _ in expected):
            return _INCOMPLETE
    except FileNotFoundError:
        return _INCOMPLETE
    except OSError as error:
        return MarkerCheck(problem=_unreadable(error, target))
    for name, _, digest in expected:
        try:
            actual = _sha256(target / name)
        except OSError as error:
            return MarkerCheck(problem=_unreadable(error, target))
        if actual != digest:
            return MarkerCheck(problem=f"{printable(name)} changed since it was installed")
    return MarkerCheck(trusted=True)


def _unreadable(error: OSError, target: Path) -> str:
    where = Path(error.filename).relative_to(target) if error.filename else target
    return f"{printable(str(where))} cannot be read ({error.strerror or error})"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(target: Path) -> dict[str, list[object]]:
    """Every installed file, its size and its SHA-256; compiled bytecode is left out, because
    Python rewrites it when it likes."""
    files: dict[str, list[object]] = {}
    for directory, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(name for name in dirnames if name != "__pycache__")
        for name in sorted(filenames):
            path = Path(directory) / name
            relative = path.relative_to(target).as_posix()
            if relative != MARKER_NAME and not path.is_symlink():
                files[relative] = [path.stat().st_size, _sha256(path)]
    return files


def write_marker(target: Path, key: str) -> None:
    entries = sorted(entry.name for entry in target.iterdir() if entry.name != MARKER_NAME)
    marker = {
        "format": MARKER_FORMAT,
        "key": key,
        "entries": entries,
        "files": _manifest(target),
    }
    write_atomically(target / MARKER_NAME, (json.dumps(marker, indent=1) + "\n").encode())


def remove(path: Path) -> None:
    """Removes a file or a directory tree; an error is raised, never ignored, so that the build
    names the real cause (a directory it may not change) instead of a later "File exists"."""
    import shutil

    def named(function: object, failed: str, error: object) -> None:
        # rmtree reports a name relative to the directory it was in: the message needs the
        # whole path. (``onexc`` since Python 3.12 passes the error, ``onerror`` exc_info.)
        cause = error if isinstance(error, BaseException) else sys.exc_info()[1]
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror, failed) from None
        if cause is not None:
            raise cause

    if path.is_dir() and not path.is_symlink():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=named)
        else:
            shutil.rmtree(path, onerror=named)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _install(
    layout: Layout,
    target: Path,
    key: str,
    stack: str,
    env_dir: Path | None,
    lock_file: Path,
    log: Log,
) -> Path:
    from smtp_ca.pip_from_apt import find_pip, pip_command, run_tool

    # Whatever is in python-deps now is stale: other keys, half-done staging dirs, ``target``.
    remove(layout.deps)
    layout.deps.mkdir(parents=True)

    env, notes = pip_environment(os.environ, env_dir, system_ca=SYSTEM_STORE)
    for note in notes:
        log.info(note)
    for secret in pip_url_secrets(env):
        log.redact.add(secret)
    pip_site = find_pip(layout, stack, log)

    import time

    started = time.monotonic()
    staging = layout.deps / f"{STAGING_PREFIX}{key}-{os.getpid()}"
    staging.mkdir()
    argv = [
        *pip_command(pip_site),
        "install",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--target",
        str(staging),
        "--disable-pip-version-check",
        "--no-input",
        # The cache dir's install is what persists; pip's HTTP cache would only be noise
        # (and a warning where HOME is not writable).
        "--no-cache-dir",
        # bin/compile keeps bytecode under CACHE_DIR/smtp-ca/pycache (-X pycache_prefix), so
        # .pyc files pip writes beside the sources would never be read: skipping them saves
        # about a second of every cold install.
        "--no-compile",
        "--progress-bar",
        "off",
        "-r",
        str(lock_file),
    ]
    status, tail = run_tool(argv, env=env, log=log, what="pip")
    if status != 0:
        remove(staging)
        raise BuildError(
            f"Installing the buildpack's Python dependencies failed: pip exited with status "
            f"{status}. Last lines of pip's output:\n" + "\n".join(tail),
            hint=_INSTALL_HINT,
        )
    staging.replace(target)
    write_marker(target, key)
    log.info(installed_summary(tail, time.monotonic() - started))
    return target


def installed_summary(pip_tail: Sequence[str], seconds: float) -> str:
    """One line for the build log in place of pip's: what it installed, and how long it took.
    The names come from pip's "Successfully installed NAME-VERSION ..." line."""
    packages: list[str] = []
    for line in pip_tail:
        if line.startswith("Successfully installed "):
            names = line.removeprefix("Successfully installed ").split()
            packages = [" ".join(name.rsplit("-", 1)) for name in names]
    if not packages:
        return f"Installed the buildpack's Python dependencies in {seconds:.1f}s"
    count = f"{len(packages)} package{'s' if len(packages) != 1 else ''}"
    return f"Installed {', '.join(packages)} ({count}) in {seconds:.1f}s"


def pip_environment(
    environ: Mapping[str, str], env_dir: Path | None, *, system_ca: Path
) -> tuple[dict[str, str], list[str]]:
    """The environment pip runs in, and notes for the build log (names only, never values).

    The build's own environment comes first (proxies, PIP_*); a PIP_* setting it lacks comes
    from the app's config vars in ENV_DIR, which Heroku does not export to buildpacks. Without
    PIP_CERT or REQUESTS_CA_BUNDLE, pip is pointed at the system trust store: a TLS-intercepting
    proxy's CA is installed there, not in the CA bundle vendored into pip.
    """
    env = dict(environ)
    notes: list[str] = []
    from_config: list[str] = []
    if env_dir is not None:
        try:
            names = sorted(entry.name for entry in env_dir.iterdir())
        except OSError:
            names = []
        for name in names:
            if not _PIP_VAR.fullmatch(name) or name in env:
                continue
            try:
                value = (env_dir / name).read_text().rstrip("\n")
            except (OSError, UnicodeDecodeError):
                continue
            env[name] = value
            from_config.append(name)
    ignored = sorted(name for name in env if name in _PIP_VARS_NOT_PASSED)
    for name in ignored:
        del env[name]
    used = [name for name in from_config if name not in ignored]
    if used:
        notes.append(f"Using {', '.join(used)} from the app's config vars")
    if ignored:
        notes.append(
            f"Not passing {', '.join(ignored)} to pip: the buildpack installs its own "
            "dependencies into its cache"
        )
    if "PIP_CERT" not in env and "REQUESTS_CA_BUNDLE" not in env and system_ca.is_file():
        env["PIP_CERT"] = str(system_ca)
    return env, notes


def pip_url_secrets(env: Mapping[str, str]) -> list[str]:
    """The secrets in pip's URL settings (``output.url_secrets``: passwords, a token given as
    the user name, long query values), so the log redacts them however pip prints them."""
    return [
        secret
        for name in _PIP_URL_VARS
        for url in env.get(name, "").split()
        for secret in url_secrets(url)
    ]
