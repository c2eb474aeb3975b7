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
lock file), so a warm build only reads two small files, hashes the lock and stats the installed
files against the marker's list: no subprocess, no network. The marker is written last, after the
atomic rename, so a build killed half-way leaves a directory without a marker, which the next
build removes and installs again; a file lost or cut short since then fails the size check.
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

from smtp_ca.certificates import SYSTEM_STORE
from smtp_ca.errors import BuildError
from smtp_ca.files import write_atomically
from smtp_ca.output import Log, url_secrets

# How classic Heroku users start the build cache afresh; each platform says it its own way.
CLASSIC_CACHE_RESET_HINT = "Clear the build cache (heroku builds:cache:purge) and build again."
MARKER_NAME = ".smtp-ca-complete.json"
MARKER_FORMAT = 2  # 2: the marker lists every file and its size
STAGING_PREFIX = ".staging-"
APT_PIP_PACKAGE = "python3-pip"
# Where Debian and Ubuntu's python3-pip puts pip; it vendors its own dependencies there too.
DEB_PIP_SITE = Path("usr/lib/python3/dist-packages")
ERROR_TAIL_LINES = 20

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
    layout = _Layout(cache_dir)
    target = layout.deps / key

    try:
        previous_stack = _forget_other_stack(layout, stack)
        if _marker_is_valid(target, key):
            log.step("Using cached dependencies")
            return target

        log.step("Installing the buildpack's Python dependencies")
        if previous_stack:
            log.info(
                f"Stack changed from {previous_stack} to {stack}: "
                "reinstalling the buildpack's Python dependencies"
            )
        elif target.exists():
            log.info("Cached dependencies are incomplete (a build stopped half-way?): reinstalling")
        return _install(layout, target, key, stack, env_dir, lock_file, log)
    except OSError as error:
        # Cache directory unwritable, disk full: say so rather than print a traceback.
        raise BuildError(
            f"Could not install the buildpack's Python dependencies into the build cache: "
            f"{error.strerror or error} ({error.filename or cache_dir}).",
            hint=reset_hint,
        ) from None


class _Layout:
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


def _forget_other_stack(layout: _Layout, stack: str) -> str | None:
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
        _remove(layout.deps)
        _remove(layout.pip)
        _remove(layout.apt)
    # Failing only costs an announcement on the next stack change; the install reports real
    # errors.
    with suppress(OSError):
        write_atomically(layout.stack_file, (stack + "\n").encode())
    return previous or None


def _marker_is_valid(target: Path, key: str) -> bool:
    """Whether ``target`` is a complete install for ``key``: the marker, then one stat() per
    installed file (a few milliseconds, no subprocess). A file missing or cut short since the
    install (a partial cache restore, a disk that filled up) makes it invalid."""
    try:
        marker = json.loads((target / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        return False
    entries, files = marker.get("entries"), marker.get("files")
    if marker.get("key") != key or not isinstance(entries, list) or not entries:
        return False
    if not isinstance(files, dict) or not files:
        return False
    if not all(isinstance(name, str) and os.path.lexists(target / name) for name in entries):
        return False
    try:
        return all(
            isinstance(size, int) and (target / name).stat().st_size == size
            for name, size in files.items()
        )
    except OSError:
        return False


def _manifest(target: Path) -> dict[str, int]:
    """Every installed file and its size; compiled bytecode is left out, because Python
    rewrites it when it likes."""
    files: dict[str, int] = {}
    for directory, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(name for name in dirnames if name != "__pycache__")
        for name in sorted(filenames):
            path = Path(directory) / name
            relative = path.relative_to(target).as_posix()
            if relative != MARKER_NAME and not path.is_symlink():
                files[relative] = path.stat().st_size
    return files


def _write_marker(target: Path, key: str) -> None:
    entries = sorted(entry.name for entry in target.iterdir() if entry.name != MARKER_NAME)
    marker = {
        "format": MARKER_FORMAT,
        "key": key,
        "entries": entries,
        "files": _manifest(target),
    }
    write_atomically(target / MARKER_NAME, (json.dumps(marker, indent=1) + "\n").encode())


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _install(
    layout: _Layout,
    target: Path,
    key: str,
    stack: str,
    env_dir: Path | None,
    lock_file: Path,
    log: Log,
) -> Path:
    # Whatever is in python-deps now is stale: other keys, half-done staging dirs, ``target``.
    _remove(layout.deps)
    layout.deps.mkdir(parents=True)

    env, notes = pip_environment(os.environ, env_dir, system_ca=SYSTEM_STORE)
    for note in notes:
        log.info(note)
    for secret in pip_url_secrets(env):
        log.redact.add(secret)
    pip_argv, pip_path = _find_pip(layout, stack, log)
    if pip_path is not None:
        env["PYTHONPATH"] = str(pip_path)

    import time

    started = time.monotonic()
    staging = layout.deps / f"{STAGING_PREFIX}{key}-{os.getpid()}"
    staging.mkdir()
    argv = [
        *pip_argv,
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
    status, tail = _run(argv, env=env, log=log, what="pip")
    if status != 0:
        _remove(staging)
        raise BuildError(
            f"Installing the buildpack's Python dependencies failed: pip exited with status "
            f"{status}. Last lines of pip's output:\n" + "\n".join(tail),
            hint=_INSTALL_HINT,
        )
    staging.replace(target)
    _write_marker(target, key)
    log.info(f"Installed the buildpack's Python dependencies in {time.monotonic() - started:.1f}s")
    return target


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


def _find_pip(layout: _Layout, stack: str, log: Log) -> tuple[list[str], Path | None]:
    """The command that runs pip, and the directory to put on PYTHONPATH for it (if any).

    Prefers a pip this python3 already has; else the one extracted by an earlier build; else
    python3-pip from the stack's own apt sources, the way heroku-buildpack-apt fetches packages:
    no root needed, and it is the pip the stack's python3 is built to run.
    """
    import importlib.util

    python = [sys.executable, "-m", "pip"]
    try:
        has_pip = importlib.util.find_spec("pip") is not None
    except (ImportError, ValueError):
        has_pip = False
    if has_pip:
        return python, None

    pip_key = dependency_key(stack, b"python3-pip")
    pip_root = layout.pip / pip_key
    site = pip_root / DEB_PIP_SITE
    if _marker_is_valid(pip_root, pip_key) and (site / "pip" / "__init__.py").is_file():
        log.info("Using pip from the build cache")
        return python, site

    _remove(layout.pip)
    layout.pip.mkdir(parents=True)
    staging = layout.pip / f"{STAGING_PREFIX}{pip_key}-{os.getpid()}"
    try:
        _fetch_pip_with_apt(layout.apt, staging, log)
        staged_site = staging / DEB_PIP_SITE
        env = dict(os.environ, PYTHONPATH=str(staged_site))
        status, tail = _run([*python, "--version"], env=env, log=log, what="pip", show=False)
        if status != 0:
            major, minor = sys.version_info[:2]
            raise BuildError(
                f"The {APT_PIP_PACKAGE} package from the stack's apt sources does not run with "
                f"this python3 ({major}.{minor}). Its output:\n" + "\n".join(tail),
                hint=f"Build on a supported stack (heroku-22 or later); if {stack} is one, "
                "report this with the build log.",
            )
        staging.replace(pip_root)
        _write_marker(pip_root, pip_key)
    finally:
        _remove(staging)
        _remove(layout.apt)
    return python, site


def _fetch_pip_with_apt(apt_root: Path, destination: Path, log: Log) -> None:
    """Downloads python3-pip with apt-get and extracts it with ``dpkg -x``, all without root.

    apt's state, lists and caches go to private directories (a build is not root and must not
    touch /var), locking is off (nothing else uses those directories), and dpkg's status is an
    empty file: ``apt-get download`` needs package lists, not what is installed. The sources are
    the stack's own, or whatever APT_CONFIG names.
    """
    import shutil

    apt_get, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
    missing = [name for name, path in (("apt-get", apt_get), ("dpkg", dpkg)) if path is None]
    if apt_get is None or dpkg is None:
        raise BuildError(
            f"This python3 has no pip, and {' and '.join(missing)} could not be found to "
            f"download the {APT_PIP_PACKAGE} package.",
            hint="Build on a Heroku stack image (heroku-22 or later), which has apt-get and dpkg.",
        )
    log.info(f"This python3 has no pip: downloading {APT_PIP_PACKAGE} with apt-get")
    _remove(apt_root)
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
        status, tail = _run(
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
    status, tail = _run(
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


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Log,
    what: str,
    cwd: Path | None = None,
    show: bool = True,
) -> tuple[int, list[str]]:
    """Runs ``argv``, showing its output indented as it comes; returns status and last lines."""
    import subprocess
    from collections import deque

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
                if show:
                    log.info(line)
                tail.append(log.redact(line))
    return process.returncode, list(tail)
