"""A python3 without pip, like Heroku's build images, and a way to run the bootstrap with it.

``python3 -m venv --without-pip`` gives an interpreter of the same version as the tests' one
(so the same wheels fit) that cannot ``import pip``: exactly the situation
``smtp_ca.dependencies.install`` exists for. :func:`run_bootstrap` runs
:func:`smtp_ca.dependencies.install.ensure_dependencies` in a subprocess of such an
interpreter, the way ``smtp_ca.__main__`` does: catch ``BuildError``, print it Heroku-style,
exit 1; on success put the directory first on ``sys.path`` and import.

:func:`clean_env` is the environment every such run starts from: none of this machine's pip
settings (``PIP_*``, pip config files), no proxies, no Python path of the test runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from support.paths import REPO
from support.wrapped_log import unwrap

SRC = REPO / "src"

# What smtp_ca.__main__ does around ensure_dependencies, plus two switches for the tests:
# FORBID_SUBPROCESS makes any subprocess or socket an error (the warm path must need neither),
# and the imports prove the returned directory holds working (compiled) dependencies.
RUNNER = r"""
import os, sys
from pathlib import Path

# A site .pth file may import a package at startup (some machines preload certifi this way).
preloaded = set(sys.modules)

from smtp_ca.dependencies.install import ensure_dependencies
from smtp_ca.errors import BuildError
from smtp_ca.output import Log

if os.environ.get("SMTP_CA_TEST_FORBID_SUBPROCESS") == "1":
    import socket, subprocess

    def forbidden(*args, **kwargs):
        raise RuntimeError(f"warm path used a subprocess or socket: {args[:1]!r}")

    subprocess.Popen.__init__ = forbidden
    socket.socket.__init__ = forbidden
    os.posix_spawn = forbidden
    os.fork = forbidden

cache_dir, stack, env_dir, lock_file = sys.argv[1:5]
log = Log()
try:
    deps = ensure_dependencies(
        Path(cache_dir) / "smtp-ca",  # as classic Heroku's CACHE_DIR holds it
        stack=stack,
        env_dir=Path(env_dir) if env_dir else None,
        lock_file=Path(lock_file),
        log=log,
    )
except BuildError as error:
    log.error(error.message, *([error.hint] if error.hint else []))
    sys.exit(1)
sys.path.insert(0, str(deps))
import certifi, cryptography, jinja2, requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

ec.generate_private_key(ec.SECP256R1())
assert jinja2.Template("{{ x }}").render(x="ok") == "ok"
assert Path(certifi.where()).is_file()
for module in (certifi, cryptography, jinja2, requests):
    if module.__name__ not in preloaded:
        assert str(module.__file__).startswith(str(deps)), module.__file__
print(f"DEPS={deps}")
"""


@dataclass(frozen=True)
class BootstrapRun:
    """The bootstrap's exit status and log: ``stdout``, ``stderr`` and ``output`` with the
    log's wrapped lines joined back (support.wrapped_log), ``raw_*`` as printed."""

    returncode: int
    raw_stdout: str
    raw_stderr: str

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

    @property
    def deps_dir(self) -> Path:
        for line in self.stdout.splitlines():
            if line.startswith("DEPS="):
                return Path(line.removeprefix("DEPS="))
        raise AssertionError(f"the bootstrap did not succeed:\n{self.output}")


def clean_env(**overrides: str) -> dict[str, str]:
    """os.environ without pip settings, proxies or Python paths, plus ``overrides``."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PIP_")
        and not name.lower().endswith("_proxy")
        and name not in dropped
        and name not in ("REQUESTS_CA_BUNDLE", "SMTP_CA_TEST_FORBID_SUBPROCESS")
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(overrides)
    return env


def make_pipless_python(directory: Path, base: Path | None = None) -> Path:
    """Creates a venv without pip in ``directory`` from ``base`` (default: the tests' own
    interpreter); returns its python, checked to lack pip."""
    subprocess.run(
        [str(base or sys.executable), "-m", "venv", "--without-pip", str(directory)],
        check=True,
        capture_output=True,
        env=clean_env(),
    )
    python = directory / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, env=clean_env()
    )
    assert probe.returncode != 0, f"{python} should have no pip, yet: {probe.stdout}"
    return python


def run_bootstrap(
    python: Path,
    *,
    cache_dir: Path,
    stack: str,
    lock_file: Path,
    env: Mapping[str, str],
    env_dir: Path | None = None,
    forbid_subprocess: bool = False,
    timeout: float = 300,
) -> BootstrapRun:
    """Runs ensure_dependencies with ``python`` (PYTHONPATH=src) in the given environment, with
    -B as bin/compile runs it: no bytecode written, so any written by the install is seen."""
    run_env = dict(env)
    run_env["PYTHONPATH"] = str(SRC)
    if forbid_subprocess:
        run_env["SMTP_CA_TEST_FORBID_SUBPROCESS"] = "1"
    completed = subprocess.run(
        [
            str(python),
            "-B",
            "-c",
            RUNNER,
            str(cache_dir),
            stack,
            str(env_dir or ""),
            str(lock_file),
        ],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return BootstrapRun(completed.returncode, completed.stdout, completed.stderr)
