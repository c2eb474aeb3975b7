"""bin/compile as Heroku runs it, measured: when each line of its output arrived, when it
ended, its peak memory, and whether BUILD_DIR is as it was.

The build runs under a small Python parent that reports the peak RSS of its descendants
(``ru_maxrss`` of its children), so neither the test process nor other tests' children count;
a watchdog ends its whole process group if it outlives ``timeout``. Used by the tests that
hold a build to a bound against hostile peers (tests/unit/net/test_hostile_http_servers.py,
tests/e2e/test_egress.py)::

    build = compile_measured(world, tmp_path, config_vars, extra_env={"HTTPS_PROXY": ...})
    assert build.peak_memory < 200 * 1024 * 1024
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from support.heroku import clean_buildpack_copy, snapshot, write_env_dir
from support.world import World
from support.wrapped_log import unwrap

# The build's parent: runs bin/compile, then writes the peak RSS of its descendants (KiB).
MEASURED = """\
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)
"""


@dataclass(frozen=True)
class Build:
    returncode: int
    # stdout lines as printed (wrapped), with time.monotonic() when each arrived
    lines: list[tuple[float, str]]
    raw_stderr: str
    ended: float
    peak_memory: int  # bytes
    app_unchanged: bool
    export_written: bool

    @property
    def raw_stdout(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines)

    @property
    def stdout(self) -> str:
        """stdout with the log's wrapped lines joined back (support.wrapped_log)."""
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

    def arrived(self, prefix: str) -> float:
        for moment, line in self.lines:
            if line.startswith(prefix):
                return moment
        raise AssertionError(f"no line starting with {prefix!r}:\n{self.output}")


def compile_measured(
    world: World,
    where: Path,
    config_vars: Mapping[str, str],
    *,
    requests_ca: Path | None = None,
    stdin: int = subprocess.DEVNULL,
    timeout: float = 60,
    extra_env: Mapping[str, str] | None = None,
) -> Build:
    """bin/compile from a clean buildpack copy and a copy of the warm cache, its stdout read
    line by line as it comes, its peak memory measured. ``extra_env``: more of the build's
    environment (a proxy), over the world's."""

    buildpack = clean_buildpack_copy(where / "buildpack")
    build_dir = where / "build_0123abcd"
    (build_dir / "config").mkdir(parents=True)
    (build_dir / "config" / "application.rb").write_text("# the app\n")
    (build_dir / "Gemfile").write_text("source 'https://rubygems.org'\n")
    before = snapshot(build_dir)
    cache = where / "cache"
    shutil.copytree(world.warm_cache, cache, symlinks=True)
    env_dir = write_env_dir(where / "env", config_vars)
    env = {**world.environment(where), "STACK": "heroku-24"}
    if requests_ca is not None:
        env["REQUESTS_CA_BUNDLE"] = str(requests_ca)
    env.update(extra_env or {})
    peak_file = where / "peak-kib"
    command = [str(buildpack / "bin" / "compile"), str(build_dir), str(cache), str(env_dir)]
    stderr_file = where / "stderr.txt"
    with (
        stderr_file.open("wb") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", MEASURED, str(peak_file), *command],
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
            # Its own process group, so that the watchdog ends bin/compile and all it started.
            start_new_session=True,
        ) as process,
    ):
        watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        watchdog.start()
        try:
            assert process.stdout is not None
            lines = [
                (time.monotonic(), raw.decode(errors="replace").rstrip("\n"))
                for raw in process.stdout
            ]
            returncode = process.wait()
            ended = time.monotonic()
        finally:
            watchdog.cancel()
    return Build(
        returncode,
        lines,
        stderr_file.read_text(errors="replace"),
        ended,
        int(peak_file.read_text()) * 1024 if peak_file.exists() else -1,
        snapshot(build_dir) == before,
        (buildpack / "export").exists(),
    )
