"""Writing a file so that a reader sees the old content or the new, never half of it.

Every file the buildpack keeps between builds (cached bundles, AIA and OCSP answers, the
dependency marker) goes through ``write_atomically``: a build can be killed at any moment, and
the next one must not read a torn file.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same directory and a rename.

    The temporary is flushed to disk before the rename, so a crash leaves either file whole.
    Temporaries that a killed build left beside ``path`` are removed first: builds sharing
    this buildpack's cache take turns on it (``cache.lock``), so none is another's live one.
    """
    # tempfile pulls in shutil, random and the compression modules: imported here, where a file
    # is written, so that a warm build, which writes nothing, does not pay for it.
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with suppress(OSError):
            stale.unlink()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with suppress(OSError):
            Path(temporary).unlink()
        raise


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
