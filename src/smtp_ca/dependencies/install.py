"""Installs the buildpack's Python dependencies into the build cache, before anything imports them.

Heroku's build images have python3 but no pip, so the buildpack cannot count on anything beyond
the standard library. This module is the one part of the buildpack that runs before its
dependencies exist: it is stdlib only, and ``smtp_ca.pipeline.load_dependencies`` calls
:func:`ensure_dependencies` right after the settings and puts the directory it returns at the
front of ``sys.path``.

Layout under the buildpack's own cache directory (``CACHE_DIR/smtp-ca/`` on classic Heroku)::

    stack                   STACK of the last build, to notice a stack change
    python-deps/<key>/      ``pip install --target`` output and its bytecode; complete once
                            MARKER_NAME is in it
    python-deps/.staging-*  a ``--target`` being filled; renamed to <key> when it is complete

The key hashes everything the installed files depend on (stack, Python major.minor, machine,
lock file), so a warm build only reads two small files, hashes the lock and checks the installed
files against the marker: no subprocess, no network. The marker lists every file of the
install, its size and its SHA-256, bytecode included. It is written last, after the atomic
rename, so a build killed half-way leaves a directory without a marker, which the next build
removes and installs again. A file lost, cut short, changed or added since then (a partial cache
restore, someone else's write, a module planted to shadow one of the standard library's) makes
the cache untrusted: it is reinstalled, with a warning when a file changed or was added.
Hashing the install (about 22 MB, most of it cryptography's compiled module) costs a warm build
some 25-30 ms on a 2-core machine.

Bytecode: the build runs with ``python3 -B`` and writes no bytecode. The standard library's is
the system's own (beside its sources, written when python3 was installed), the dependencies' is
compiled here at install time (:func:`compile_bytecode`) and checked by the marker with them,
and the buildpack's own modules, a fresh copy on every build, are compiled as they are imported.
So no bytecode runs that was not verified like the dependencies: nothing in the cache can plant
a module.

pip itself is the wheel vendored in the buildpack (``pip``); which PIP_* settings it
gets is ``pip_settings``.
"""

from __future__ import annotations

# Only what the warm path needs is imported here: it must cost a few milliseconds, and modules
# such as subprocess, shutil or configparser are imported by the cold-path functions using them.
import errno
import hashlib
import json
import os
import stat
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from smtp_ca import SYSTEM_STORE
from smtp_ca.cache.layout import (
    CLASSIC_CACHE_RESET_HINT,
    DEPENDENCIES_STAGING_PREFIX,
    MARKER_NAME,
    Layout,
)
from smtp_ca.errors import BuildError
from smtp_ca.files import remove, write_atomically
from smtp_ca.output import Log
from smtp_ca.untrusted import escaped

# 2: the marker lists every file and its size; 3: and its SHA-256; 4: every file there is,
# the bytecode compiled at install time included, and nothing else may be there.
MARKER_FORMAT = 4
# What the install takes in the cache, bytecode included, for the message when the disk is
# full (tests/unit/dependencies/test_install_dependencies.py holds the lock to it).
INSTALLED_MEGABYTES = 30

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
    env_dir_name: str = "ENV_DIR",
) -> Path:
    """Returns a directory holding the locked dependencies, installing them first if needed.

    The caller puts the returned directory first on ``sys.path``. Raises ``BuildError`` with
    what failed and how to fix it; ``reset_hint`` says how this platform clears its cache,
    ``env_dir_name`` how it names the directory of config vars ``env_dir``.
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
        layout.remove_legacy()
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
        return _install(layout, target, key, env_dir, env_dir_name, lock_file, log, reset_hint)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise no_space(layout, reset_hint) from None
        # Cache directory unwritable: say which directory and the real cause.
        raise BuildError(
            f"Could not install the buildpack's Python dependencies into the build cache "
            f"{layout.deps}: {error.strerror or error} ({error.filename or layout.deps}).",
            hint=reset_hint,
        ) from None


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
    # Failing only costs an announcement on the next stack change; the install reports real
    # errors.
    with suppress(OSError):
        write_atomically(layout.stack_file, (stack + "\n").encode())
    return previous or None


class MarkerCheck:
    """What :func:`check_marker` found: ``trusted``, or why not. ``untrusted`` (a file changed,
    added or unreadable since the install) gets a warning; merely incomplete (no marker, a
    file missing or cut short: a build stopped half-way, a partial restore) only a note."""

    def __init__(self, *, trusted: bool = False, problem: str | None = None) -> None:
        self.trusted = trusted
        self.problem = problem

    @property
    def untrusted(self) -> bool:
        return self.problem is not None


_INCOMPLETE = MarkerCheck()


def check_marker(target: Path, key: str) -> MarkerCheck:
    """Whether ``target`` is a complete, unchanged install for ``key``: the marker, one walk of
    the tree (every file there must be listed, sizes must match), then each file's SHA-256.
    No subprocess."""
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
    files = marker.get("files")
    if marker.get("key") != key or not isinstance(files, dict) or not files:
        return _INCOMPLETE
    expected: dict[str, tuple[int, str]] = {}
    for name, record in files.items():
        if not (isinstance(record, list) and len(record) == 2):
            return _INCOMPLETE
        size, digest = record
        if not isinstance(size, int) or not isinstance(digest, str):
            return _INCOMPLETE
        expected[name] = (size, digest)
    try:
        found = _files_and_sizes(target)
    except OSError as error:
        return MarkerCheck(problem=_unreadable(error, target))
    found.pop(MARKER_NAME, None)
    for name, size in found.items():
        if name not in expected:
            what = "is not a regular file" if size < 0 else "was added"
            return MarkerCheck(problem=f"{escaped(name)} {what} since the install")
    # Sizes first: a partial restore shows there, with no file read.
    if any(found.get(name) != size for name, (size, _) in expected.items()):
        return _INCOMPLETE
    for name, (_, digest) in expected.items():
        try:
            actual = _sha256(target / name)
        except OSError as error:
            return MarkerCheck(problem=_unreadable(error, target))
        if actual != digest:
            return MarkerCheck(problem=f"{escaped(name)} changed since it was installed")
    return MarkerCheck(trusted=True)


def _files_and_sizes(root: Path) -> dict[str, int]:
    """Every entry below ``root`` that is not a directory, by its path relative to ``root``,
    with its size; -1 for anything but a regular file (a symbolic link, a FIFO), which no
    install makes."""
    found: dict[str, int] = {}
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), name + "/"))
                    continue
                info = entry.stat(follow_symlinks=False)
                found[name] = info.st_size if stat.S_ISREG(info.st_mode) else -1
    return found


def _unreadable(error: OSError, target: Path) -> str:
    where = Path(error.filename).relative_to(target) if error.filename else target
    return f"{escaped(str(where))} cannot be read ({error.strerror or error})"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_marker(target: Path, key: str) -> None:
    """Lists every file of the install with its size and SHA-256, bytecode included."""
    files = {
        name: [size, _sha256(target / name)]
        for name, size in sorted(_files_and_sizes(target).items())
        if name != MARKER_NAME and size >= 0
    }
    marker = {"format": MARKER_FORMAT, "key": key, "files": files}
    write_atomically(target / MARKER_NAME, (json.dumps(marker, indent=1) + "\n").encode())


def compile_bytecode(staging: Path, final: Path) -> None:
    """Compiles every module below ``staging`` into its ``__pycache__``, for this python3, as
    unchecked-hash .pyc files: Python reads them without looking at the sources and never
    rewrites them, and the marker checks both. Tracebacks name the modules at ``final``, where
    ``staging`` is renamed to. A module this Python cannot compile (some packages carry files
    for other versions) is left as it is: it is never imported either. A write that fails
    (a full disk) raises ``OSError``."""
    import py_compile

    cache_tag = sys.implementation.cache_tag
    for source in sorted(staging.rglob("*.py")):
        relative = source.relative_to(staging)
        compiled = source.parent / "__pycache__" / f"{source.stem}.{cache_tag}.pyc"
        try:
            py_compile.compile(
                str(source),
                cfile=str(compiled),
                dfile=str(final / relative),
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError:
            continue


def _install(
    layout: Layout,
    target: Path,
    key: str,
    env_dir: Path | None,
    env_dir_name: str,
    lock_file: Path,
    log: Log,
    reset_hint: str,
) -> Path:
    import time

    from smtp_ca.dependencies.pip import DEADLINE_SECONDS, install_command, run_tool, vendored_pip
    from smtp_ca.dependencies.pip_settings import pip_settings

    # The pip wheel and the settings are checked before anything in the cache changes.
    pip = vendored_pip()
    started = time.monotonic()
    staging = layout.deps / f"{DEPENDENCIES_STAGING_PREFIX}{key}-{os.getpid()}"
    with pip_settings(
        os.environ,
        env_dir,
        config_dir_name=env_dir_name,
        system_ca=SYSTEM_STORE,
        scratch=layout.root,
    ) as settings:
        for note in settings.notes:
            log.info(note)
        for secret in settings.secrets:
            log.redact.add(secret)
        # Whatever is in python-deps now is stale: other keys, half-done staging dirs, target.
        remove(layout.deps)
        layout.deps.mkdir(parents=True)
        staging.mkdir()
        run = run_tool(install_command(pip, staging, lock_file), env=settings.env, log=log)
    try:
        if run.no_space is not None:
            raise no_space(layout, reset_hint, staging=staging, evidence=run.no_space)
        if run.timed_out:
            raise BuildError(
                f"pip did not finish installing the buildpack's Python dependencies within "
                f"{DEADLINE_SECONDS:g} s. Last lines of pip's output:\n" + "\n".join(run.tail),
                hint=_INSTALL_HINT,
            )
        if run.status != 0:
            raise BuildError(
                f"Installing the buildpack's Python dependencies failed: pip exited with status "
                f"{run.status}. Last lines of pip's output:\n" + "\n".join(run.tail),
                hint=_INSTALL_HINT,
            )
        compile_bytecode(staging, target)
        staging.replace(target)
    except BaseException:
        remove(staging)
        raise
    try:
        write_marker(target, key)
    except BaseException:
        remove(target)  # a target without its marker would only be installed again
        raise
    log.info(installed_summary(run.tail, pip.version, time.monotonic() - started))
    return target


def no_space(
    layout: Layout, reset_hint: str, *, staging: Path | None = None, evidence: str = ""
) -> BuildError:
    """The error for a full disk during the install, naming the directory that filled up: the
    build cache, or the temporary directory where pip unpacks the wheels first. ``evidence``
    is pip's line that said so, which names the file it could not write (the cache's when it
    moves the install there); without a path in it, the directory with less room left is
    taken (``staging``, the half-done install, still takes its space when this looks)."""
    import tempfile

    temporary = Path(tempfile.gettempdir())
    if str(layout.root) in evidence:
        temporary_full = False
    elif str(temporary) in evidence:
        temporary_full = True
    else:
        cache_free, temporary_free = _free_bytes(staging or layout.deps), _free_bytes(temporary)
        temporary_full = temporary_free is not None and (
            cache_free is None or temporary_free < cache_free
        )
    if temporary_full:
        return BuildError(
            f"No space left on device: the temporary directory {temporary} filled up while pip "
            f"unpacked the buildpack's Python dependencies (about {INSTALLED_MEGABYTES} MB). "
            "Nothing was installed.",
            hint=f"Make room in {temporary}, or point TMPDIR at a directory with room, and "
            "build again.",
        )
    return BuildError(
        f"No space left on device: the build cache filled up while the buildpack's Python "
        f"dependencies were installed into {layout.deps} (they take about "
        f"{INSTALLED_MEGABYTES} MB). Nothing half-installed was kept.",
        hint=f"Make room in the build cache for them. {reset_hint}",
    )


def _free_bytes(path: Path) -> int | None:
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def installed_summary(pip_tail: Sequence[str], pip_version: str, seconds: float) -> str:
    """One line for the build log in place of pip's: what it installed, with which pip, and how
    long it took. The names come from pip's "Successfully installed NAME-VERSION ..." line."""
    packages: list[str] = []
    for line in pip_tail:
        if line.startswith("Successfully installed "):
            names = line.removeprefix("Successfully installed ").split()
            packages = [" ".join(name.rsplit("-", 1)) for name in names]
    if not packages:
        return (
            f"Installed the buildpack's Python dependencies with pip {pip_version} in "
            f"{seconds:.1f}s"
        )
    count = f"{len(packages)} package{'s' if len(packages) != 1 else ''}"
    return f"Installed {', '.join(packages)} ({count}) with pip {pip_version} in {seconds:.1f}s"
