"""Debian chroots of other eras (made by .ci/prepare-chroots), used without ever changing them.

Each test gets a :class:`ChrootSession`: an overlay whose lower layer is the cached chroot and
whose upper layer is in the test's tmp_path, mounted afresh for every command inside a private
mount namespace (``unshare --mount``). The mounts vanish with the command, so nothing is left
to unmount, and what a command writes stays in the upper layer for the next one. Where overlayfs
cannot be mounted, the session copies the chroot instead (``cp -a --reflink=auto``).

The chroot shares the host's network namespace: servers on the host's loopback are reachable at
127.0.0.1 and localhost (the chroot's /etc/hosts names it).

Usage::

    with ChrootSession(require_chroot("bullseye"), tmp_path / "bullseye") as session:
        session.write("/app/x", b"...")          # into the upper layer
        proc = session.run(["ruby", "-v"], env={...}, cwd="/app")
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType

from support.offline_inputs import last_line, skip_or_fail
from support.paths import REPO
from support.slices import require

PREPARE = REPO / ".ci" / "prepare-chroots"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Mounts the overlay (or nothing, for a copy) and /proc in a mount namespace of its own, then
# runs the command in the chroot with exactly the environment given: env -i drops the test's.
_RUNNER = r"""
set -eu
lower=$1 upper=$2 work=$3 root=$4 cwd=$5
shift 5
if [ -n "$lower" ]; then
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
fi
# /proc where it can be had; Ruby and Python run without it.
mount -t proc proc "$root/proc" 2>/dev/null || true
exec chroot "$root" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@"
"""


def chroot_problem(suite: str) -> tuple[str, Path | None]:
    """(why the suite's chroot cannot be used, with the command that fixes it, or "", and its
    directory when it is ready)."""
    problem = _prerequisite_problem()
    if problem:
        return problem, None
    found = _prepared_chroot(suite)
    if found is None:
        return f"needs the {suite} chroot: run `bash .ci/prepare-chroots`", None
    return "", found


@functools.cache
def _prerequisite_problem() -> str:
    """What .ci/prepare-chroots finds missing (root, mount, mount namespaces...): one probe, so
    a skip says what that script says before it builds anything."""
    proc = subprocess.run(
        ["bash", str(PREPARE), "--check"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return f"needs .ci/prepare-chroots --check to work: {last_line(proc.stderr)}"
    return proc.stdout.strip()


@functools.cache
def _prepared_chroot(suite: str) -> Path | None:
    proc = subprocess.run(
        ["bash", str(PREPARE), "--where", suite], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    return Path(proc.stdout.strip())


def require_chroot(suite: str) -> Path:
    """The cached chroot of ``suite``; skips the test when there is none (fails when CI=true)."""
    require("needs_chroots", f"uses the {suite} chroot")
    problem, found = chroot_problem(suite)
    if found is not None:
        return found
    skip_or_fail(problem)


@functools.cache
def _overlay_works() -> bool:
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(scratch, name))
        mount = (
            f"mount -t overlay overlay -o lowerdir={scratch}/lower,upperdir={scratch}/upper,"
            f"workdir={scratch}/work {scratch}/merged"
        )
        probe = subprocess.run(
            ["unshare", "--mount", "--fork", "sh", "-c", mount], capture_output=True, check=False
        )
    return probe.returncode == 0


class ChrootSession:
    """One test's writable view of a cached chroot; a context manager."""

    def __init__(self, chroot: Path, workdir: Path) -> None:
        self.chroot = chroot
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.root = workdir / "root"
        self.root.mkdir()
        self._overlay = _overlay_works()
        if self._overlay:
            self.upper = workdir / "upper"
            self._work = workdir / "work"
            self.upper.mkdir()
            self._work.mkdir()
        else:
            subprocess.run(
                ["cp", "-a", "--reflink=auto", f"{chroot}/.", str(self.root)],
                check=True,
            )
            self.upper = self.root
            self._work = workdir

    def path(self, inside: str) -> Path:
        """Where a path inside the chroot is written from the host (the upper layer)."""
        relative = PurePosixPath(inside).relative_to("/")
        return self.upper / relative

    def write(self, inside: str, content: bytes, mode: int = 0o644) -> Path:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
        return target

    def copy_in(self, source: Path, inside: str) -> Path:
        """Copies a host file or directory tree to ``inside`` (symlinks kept as links)."""
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
        return target

    def read(self, inside: str) -> Path:
        """A host path to read a file the chroot holds, written by a test or by the cache."""
        written = self.path(inside)
        if written.exists() or not self._overlay:
            return written
        return self.chroot / PurePosixPath(inside).relative_to("/")

    def command_line(
        self, command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str = "/"
    ) -> list[str]:
        """The host command that runs ``command`` in the chroot as root, with exactly ``env``
        (plus PATH and LANG defaults): what ``run`` runs, for a caller that starts it itself."""
        run_env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", **(env or {})}
        lower = str(self.chroot) if self._overlay else ""
        return [
            "unshare",
            "--mount",
            "--fork",
            "sh",
            "-c",
            _RUNNER,
            "sh",
            lower,
            str(self.upper),
            str(self._work),
            str(self.root),
            cwd,
            "/usr/bin/env",
            "-i",
            *(f"{name}={value}" for name, value in run_env.items()),
            *command,
        ]

    def run(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``command`` in the chroot (``command_line``); never raises on a non-zero exit."""
        return subprocess.run(
            self.command_line(command, env=env, cwd=cwd),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def __enter__(self) -> ChrootSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Nothing is mounted outside a command; the overlay's work dir holds root-only
        # leftovers that tmp_path's clean-up handles like any other file.
        return None


def add_to_system_store(session: ChrootSession, name: str, pem: bytes) -> None:
    """Puts a CA certificate into the chroot's system store, as a distribution's
    ca-certificates would carry a public root."""
    session.write(f"/usr/local/share/ca-certificates/{name}.crt", pem)
    proc = session.run(["update-ca-certificates"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
