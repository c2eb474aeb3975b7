"""Runs the buildpack the way Heroku does, and the result the way a dyno does.

A build gets a clean copy of the buildpack (only what buildpack.toml publishes), a BUILD_DIR,
CACHE_DIR and ENV_DIR (one file per config var), STACK, and a python3 without pip first on
PATH; the wheels come from a local wheelhouse, never the internet (pip is the buildpack's own).
The dyno then sees the app at another path than it was built at, config vars in its
environment and .profile.d sourced (see support.rails_app.run_delivery).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from support.offline_inputs import REPO, Inputs
from support.slices import E2E, require
from support.wrapped_log import unwrap

# What a build needs; everything else (tests, scripts, docs) is left out of the copy, as the
# buildpack registry leaves it out of its tarball.
BUILDPACK_FILES = ("bin", "src", "templates", "vendor", "requirements.lock", "buildpack.toml")


def clean_buildpack_copy(destination: Path, *, source: Path | None = None) -> Path:
    """The buildpack's files from this checkout (or ``source``, another version's tree)."""
    destination.mkdir(parents=True)
    for name in BUILDPACK_FILES:
        source_path = (source or REPO) / name
        if source_path.is_dir():
            shutil.copytree(
                source_path, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source_path, destination / name)
    return destination


@dataclass(frozen=True)
class BuildResult:
    """A build's exit status and log: ``stdout``, ``stderr`` and ``output`` with the log's
    wrapped lines joined back (support.wrapped_log), ``raw_*`` as the build printed them."""

    returncode: int
    raw_stdout: str
    raw_stderr: str
    build_dir: Path

    @property
    def stdout(self) -> str:
        return unwrap(self.raw_stdout)

    @property
    def stderr(self) -> str:
        return unwrap(self.raw_stderr)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def raw_output(self) -> str:
        return self.raw_stdout + self.raw_stderr


def build_environment(python_bin: Path, inputs: Inputs, home: Path, **extra: str) -> dict[str, str]:
    """The build process's environment: no config vars (those are in ENV_DIR), no pip config
    of this machine, a python3 without pip ahead of the system's."""
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(inputs.wheelhouse),
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    env.update(extra)
    return env


def offline_overrides(where: Path) -> dict[str, str]:
    """Build environment entries that take the wheels away from a build: an empty wheelhouse,
    made under ``where``. A build that still needs them fails, which is what a warm build must
    not need."""
    empty_wheelhouse = where / "empty-wheelhouse"
    empty_wheelhouse.mkdir(parents=True, exist_ok=True)
    return {"PIP_FIND_LINKS": str(empty_wheelhouse)}


def write_env_dir(env_dir: Path, config_vars: Mapping[str, str]) -> Path:
    env_dir.mkdir(parents=True, exist_ok=True)
    for name, value in config_vars.items():
        (env_dir / name).write_text(value)
    return env_dir


def compile_app(
    buildpack: Path,
    build_dir: Path,
    cache_dir: Path,
    env_dir: Path,
    env: Mapping[str, str],
    *,
    stack: str = "heroku-24",
    timeout: float = 300,
    merge_output: bool = False,
) -> BuildResult:
    """Run bin/compile. With ``merge_output``, stderr goes into stdout, in the order the lines
    were written, as Heroku shows the build log (``stderr`` is then empty)."""
    require(E2E, "builds an app with bin/compile")
    run_env = {**env, "STACK": stack}
    completed = subprocess.run(
        [str(buildpack / "bin" / "compile"), str(build_dir), str(cache_dir), str(env_dir)],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return BuildResult(completed.returncode, completed.stdout, completed.stderr or "", build_dir)


def move_to_dyno_path(build_dir: Path, dyno_dir: Path) -> Path:
    """Heroku builds in /tmp/build_<hash> and runs the slug at /app: move the app."""
    shutil.move(str(build_dir), str(dyno_dir))
    return dyno_dir


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, for 'nothing changed' assertions."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
