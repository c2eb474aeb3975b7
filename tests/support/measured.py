"""Runs a command and measures it the way a bound is asserted: when each line of its output
came, when it ended, and its peak memory.

The peak is the child's own ``ru_maxrss`` from ``wait4``: the largest resident size of the
child and of every descendant it waited for (``bash -c 'exec ruby …'`` is one process; a
chroot's ``unshare --fork`` waits for the command it runs), so neither the test process nor
other tests' children count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    returncode: int
    lines: list[tuple[float, str]]  # stdout lines, with time.monotonic() when each arrived
    stderr: str
    started: float
    ended: float
    peak_kib: int

    @property
    def stdout(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines)

    @property
    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def since(self, prefix: str) -> float:
        """Seconds from the first stdout line that starts with ``prefix`` to the end."""
        for moment, line in self.lines:
            if line.startswith(prefix):
                return self.ended - moment
        raise AssertionError(f"no line starting with {prefix!r}:\n{self.output}")


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str = "/",
    timeout: float = 90,
) -> Measured:
    """Runs ``command`` with exactly ``env``, no stdin, in its own process group; kills the
    group after ``timeout`` seconds (the run then fails its assertions, whatever it printed)."""
    with tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        watchdog.start()
        try:
            assert process.stdout is not None
            lines = [
                (time.monotonic(), raw.decode(errors="replace").rstrip("\n"))
                for raw in process.stdout
            ]
            _, status, usage = os.wait4(process.pid, 0)
            ended = time.monotonic()
        finally:
            watchdog.cancel()
            if process.stdout is not None:
                process.stdout.close()
        process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
        stderr.seek(0)
        return Measured(
            process.returncode,
            lines,
            stderr.read().decode(errors="replace"),
            started,
            ended,
            usage.ru_maxrss,
        )
