"""Running a piece of the buildpack as an unprivileged user, so that file modes apply.

CI runs the tests as root, and root reads and writes any file whatever its mode: a test of an
unreadable or read-only file would prove nothing there. As root, such a test runs its Python in
a child that drops to ``nobody`` (uid and gid 65534) with util-linux's ``setpriv``; as any other
user it runs as that user.

A child running as nobody must be able to reach what it imports and reads: pytest's temporary
directories and a clone made with ``mktemp -d`` are 0700 and owned by root. ``Sandbox`` is a
world-traversable directory, where the test puts the files it works on, holding a copy of the
buildpack's ``src`` and ``templates`` and of the few pinned packages the code under test
imports (the test's virtualenv, inside such a clone, is out of nobody's reach).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.paths import REPO

NOBODY = 65534
# Debian's own python3: the test's virtualenv may live under a directory nobody cannot enter.
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Sandbox:
    root: Path  # world-traversable; the test's files go here
    src: Path  # a copy of the buildpack's src, readable by nobody
    packages: Path  # copies of the pinned packages asked for, readable by nobody

    def python(
        self, code: str, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in a python3 with the copied ``src`` importable, unprivileged."""
        return subprocess.run(
            [*_unprivileged_python(), "-c", code, *args],
            capture_output=True,
            text=True,
            env={
                "PATH": "/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "PYTHONPATH": f"{self.src}:{self.packages}",
            },
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )


@contextmanager
def sandbox(
    prefix: str = "smtp-ca-unprivileged-", packages: Sequence[str] = ()
) -> Iterator[Sandbox]:
    """A world-traversable scratch directory with the buildpack's src and a copy of each of
    ``packages`` (import names, e.g. ``jinja2``, as the test's own Python has them), removed
    afterwards with every mode put back (a 0555 directory inside it would stop rmtree)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        root.chmod(0o755)
        src = root / "src"
        shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
        # src finds the templates it renders and its pip wheel beside itself, as in the
        # buildpack.
        templates = root / "templates"
        shutil.copytree(REPO / "templates", templates)
        vendor = root / "vendor"
        shutil.copytree(REPO / "vendor", vendor)
        site = root / "packages"
        site.mkdir()
        for name in packages:
            _copy_importable(name, site)
        for path in (
            src,
            *src.rglob("*"),
            templates,
            *templates.rglob("*"),
            vendor,
            *vendor.rglob("*"),
            site,
            *site.rglob("*"),
        ):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield Sandbox(root=root, src=src, packages=site)
    finally:
        for path in (root, *root.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(root)


def give_to_nobody(paths: Sequence[Path]) -> None:
    """As root, hand ``paths`` to the unprivileged user, so that their owner's modes are the
    ones that apply to it; as anyone else the files are the test's own already."""
    if os.geteuid() != 0:
        return
    for path in paths:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)


def pinned_imports() -> tuple[str, ...]:
    """The import names of every package requirements.lock pins, as the test's own Python has
    them (cffi gives ``cffi`` and ``_cffi_backend``): what a whole build imports. Read from the
    lock, so a new dependency is copied into the sandbox without a list here to update."""
    names: set[str] = set()
    for line in (REPO / "requirements.lock").read_text().splitlines():
        pinned = re.match(r"([A-Za-z0-9][A-Za-z0-9_.-]*)==", line)
        if pinned is None:
            continue
        try:
            files = importlib.metadata.distribution(pinned[1]).files or []
        except importlib.metadata.PackageNotFoundError:
            continue  # pinned for another Python only (its marker)
        for file in files:
            top = file.parts[0]
            if top.endswith((".dist-info", ".data")) or top in ("..", "bin"):
                continue
            name = top.split(".")[0]  # a package's directory, or a lone module's file
            if name.isidentifier() and not name.startswith("__"):
                names.add(name)
    return tuple(sorted(names))


def _copy_importable(name: str, site: Path) -> None:
    """Copy what the test's own Python imports as ``name`` (the pinned package, or a lone
    module such as cffi's ``_cffi_backend``) into ``site``."""
    spec = importlib.util.find_spec(name)
    if spec is None or (spec.origin is None and not spec.submodule_search_locations):
        raise LookupError(f"{name} cannot be imported by the test's Python")
    if spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(package, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        assert spec.origin is not None
        shutil.copy(spec.origin, site / Path(spec.origin).name)


def _unprivileged_python() -> list[str]:
    if os.geteuid() != 0:
        return [sys.executable]
    if shutil.which("setpriv") is None or not SYSTEM_PYTHON.is_file():
        pytest.skip(
            "Running as root, the test needs setpriv (Debian package util-linux) and "
            "/usr/bin/python3 to drop to an unprivileged user: apt-get install util-linux python3"
        )
    return [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        str(SYSTEM_PYTHON),
    ]
