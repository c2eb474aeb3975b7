"""Builds that share a cache take turns on it, and the next build removes what a killed one left.

Builds on one machine (a developer's laptop, a CI runner) may share one CACHE_DIR. Two cold
builds installing the dependencies into it at once remove each other's files, so the whole use
of the cache is one exclusive ``flock`` on ``<cache>/.lock``: a build waits for the one holding
it, up to a bound, and then fails saying so. The kernel drops the lock when its holder exits,
killed or not, so a lock is never left behind.

Under the lock, before anything reads the cache, :func:`sweep_leftovers` removes what a build
killed half-way left: temporaries of ``files.write_atomically`` in the cache, the dependency
installer's staging directories, the check's scratch files, and wiring's staging directory in the
app (which would otherwise end up in the slug). No live build owns them: it would hold the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from smtp_ca.cache.layout import (
    APP_STAGING_PREFIX,
    DEPENDENCIES_STAGING_PREFIX,
    LOCK,
    SCRATCH,
    WRITTEN_ATOMICALLY,
    Layout,
)
from smtp_ca.errors import BuildError
from smtp_ca.files import remove
from smtp_ca.output import Log

# Heroku stops a build after 15 minutes: a build waiting longer would be stopped anyway.
DEFAULT_WAIT_SECONDS = 600.0
# The wait bound, in seconds, from the build's own environment (not a config var: the tests
# and a CI runner with slow builds set it).
WAIT_VARIABLE = "SMTP_CA_CACHE_LOCK_WAIT"
_POLL_SECONDS = 0.1


def wait_bound(environ: Mapping[str, str]) -> float:
    """The longest a build waits for the lock: SMTP_CA_CACHE_LOCK_WAIT seconds, or the default
    when it is unset or not a positive number."""
    try:
        seconds = float(environ.get(WAIT_VARIABLE, ""))
    except ValueError:
        return DEFAULT_WAIT_SECONDS
    return seconds if 0 < seconds < float("inf") else DEFAULT_WAIT_SECONDS


@dataclass(frozen=True)
class LockUser:
    """Who takes turns on the cache, in the messages' words."""

    one: str  # "build": "Waiting for another build using the cache ..."
    many: str  # "Builds that share a cache take turns on it."
    hint: str  # what to do when the wait runs out


BUILD = LockUser(
    "build",
    "Builds",
    "Wait for the other build to finish and build again, or give this build a CACHE_DIR of "
    f"its own. {WAIT_VARIABLE} sets how many seconds a build waits.",
)
CHECK = LockUser(
    "bin/check run",
    "bin/check runs",
    "Wait for the other bin/check to finish and run it again, or set SMTP_CA_CACHE_DIR to a "
    f"directory of its own. {WAIT_VARIABLE} sets how many seconds it waits.",
)


@contextmanager
def cache_lock(
    cache_dir: Path, *, what: str, wait: float, log: Log, user: LockUser = BUILD
) -> Iterator[None]:
    """Holds the exclusive lock on ``cache_dir`` for the body; ``what`` names the cache in the
    message (``CACHE_DIR /path``), ``user`` who waits for it (a build, bin/check). A cache
    where no lock file can be made (read-only, missing parent) is used without one: the build
    then fails or goes on exactly as it did before, with the message the cache code gives."""
    descriptor = _open_lock_file(cache_dir)
    if descriptor is None:
        yield
        return
    try:
        if not _try_lock(descriptor):
            log.info(f"Waiting for another {user.one} using the cache ...")
            deadline = time.monotonic() + wait
            while not _try_lock(descriptor):
                if time.monotonic() >= deadline:
                    raise BuildError(
                        f"{what} is in use by another {user.one}: it still held the lock "
                        f"{cache_dir / LOCK} after {wait:g} s. {user.many} that share a "
                        "cache take turns on it.",
                        hint=user.hint,
                    )
                time.sleep(_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # closing drops the lock


def _open_lock_file(cache_dir: Path) -> int | None:
    with suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
    lock_file = cache_dir / LOCK
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):  # flock needs no write access
        with suppress(OSError):
            return os.open(lock_file, flags | os.O_CLOEXEC, 0o644)
    return None


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without flock: go on as before the lock existed
    return True


def sweep_leftovers(cache_dir: Path, app_dir: Path) -> None:
    """Removes what a killed build left in the cache and the app; called under the lock. Best
    effort: what cannot be removed is left to the cache code, which names the cause if it
    matters."""
    layout = Layout(cache_dir)
    leftovers: list[Path] = [*app_dir.glob(f"{APP_STAGING_PREFIX}*")]
    for name in WRITTEN_ATOMICALLY:
        leftovers += (cache_dir / name).glob(".*.tmp")
    leftovers += layout.deps.glob(f"{DEPENDENCIES_STAGING_PREFIX}*")
    with suppress(OSError):
        leftovers += (cache_dir / SCRATCH).iterdir()
    for leftover in leftovers:
        with suppress(OSError):
            remove(leftover)
