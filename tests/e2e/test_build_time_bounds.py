"""Bounds a build keeps on any machine: how long a silent SMTP server can hold it, and what a
warm build may reach over the network.

Behaviour, not speed (benchmarks/build_time.py measures speed): bin/compile runs as in
tests/e2e/test_compile.py, from a clean copy of the buildpack with a python3 without pip, STACK and
ENV_DIR, starting from a dependency cache that one cold build filled.

What a build reaches is recorded from inside its python3: the test's pip-less python3 is
wrapped so that, when SMTP_CA_TEST_AUDIT_LOG is set, an audit hook (PEP 578) runs before the
code bin/compile gives it, writing every ``socket.connect`` and every process start to that
file. bin/compile's python3 is that interpreter, so nothing the build does in Python escapes
the record.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from support.bundle_vars import pinned_bundle_vars
from support.heroku import (
    build_environment,
    clean_buildpack_copy,
    offline_overrides,
    write_env_dir,
)
from support.http_server import LocalServer
from support.offline_inputs import Inputs, load_inputs
from support.pipless_python import make_pipless_python
from support.scratch import fixture_dir
from support.silent_server import SilentServer
from support.smtp_server import SMTPTestServer

pytestmark = pytest.mark.e2e

STACK = "heroku-24"
BUNDLE_PATH = "/provider-bundle.crt"
ETAG = '"bundle-v1"'
CHECK_TIMEOUT = 1.0
# What the check may take beyond SMTP_CA_CHECK_TIMEOUT before the build has ended.
SLACK = 1.0

AUDIT_VARIABLE = "SMTP_CA_TEST_AUDIT_LOG"
AUDIT_MODULE = '''\
"""Test-only: with SMTP_CA_TEST_AUDIT_LOG set, records what python3 connects to and starts."""

import os
import sys

_LOG = os.environ.get("SMTP_CA_TEST_AUDIT_LOG")
_EVENTS = ("socket.connect", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn",
           "os.system", "os.fork", "os.forkpty")


def _audit(event, args):
    if event in _EVENTS:
        what = args[1] if event == "socket.connect" else args[0]
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(repr((event, what)) + "\\n")


if _LOG:
    sys.addaudithook(_audit)
'''


@dataclass(frozen=True)
class World:
    inputs: Inputs
    python: Path
    provider_ca: trustme.CA  # the SMTP server's CA: the bundle the build fetches holds it
    bundle_server: LocalServer
    bundle_host_ca: Path
    warm_cache: Path

    def bundle_vars(self) -> dict[str, str]:
        pem = self.provider_ca.cert_pem.bytes()
        return pinned_bundle_vars(self.bundle_server.url(BUNDLE_PATH), pem)

    def env(self, where: Path, *, offline: bool, **extra: str) -> dict[str, str]:
        """The build's environment; ``offline``: the wheelhouse empty."""
        env = build_environment(
            self.python.parent,
            self.inputs,
            where / "home",
            REQUESTS_CA_BUNDLE=str(self.bundle_host_ca),
            **extra,
        )
        if offline:
            env.update(offline_overrides(where))
        return env


def _install_audit_hook(python: Path) -> None:
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    audit = Path(purelib) / "smtp_ca_test_audit.py"
    audit.write_text(AUDIT_MODULE)
    # bin/compile runs python3 -I -S, so no .pth file runs: the python3 on the build's PATH
    # puts the hook in front of the code it is given with -c instead.
    wrapper = python.parent / "python3"
    wrapper.unlink()
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        "args=()\n"
        "while (($#)); do\n"
        "  if [[ $1 == -c && $# -ge 2 ]]; then\n"
        f'    args+=(-c "$(<{audit})"$\'\\n\'"$2"); shift 2\n'
        '  else args+=("$1"); shift; fi\n'
        "done\n"
        f'exec {python} "${{args[@]}}"\n'
    )
    wrapper.chmod(0o755)


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    inputs = load_inputs()
    root = fixture_dir(request, tmp_path_factory, "bounds")
    python = make_pipless_python(root / "python")
    _install_audit_hook(python)
    provider_ca, host_ca = trustme.CA(), trustme.CA()
    host_ca_file = root / "bundle-host-ca.pem"
    host_ca.cert_pem.write_to_path(str(host_ca_file))
    with LocalServer(tls=host_ca) as server:
        server.serve(BUNDLE_PATH, provider_ca.cert_pem.bytes(), etag=ETAG)
        world = World(inputs, python, provider_ca, server, host_ca_file, root / "warm-cache")
        # One cold build installs the dependencies and caches the bundle with its ETag.
        cold = _compile(world, root / "cold", world.bundle_vars(), world.env(root, offline=False))
        assert cold.returncode == 0, cold.output
        yield world


@dataclass(frozen=True)
class Build:
    returncode: int
    lines: list[tuple[float, str]]  # stdout lines, with time.monotonic() when each arrived
    stderr: str
    ended: float  # time.monotonic() when the process had exited

    @property
    def output(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines) + self.stderr

    def arrived(self, prefix: str) -> float:
        for moment, line in self.lines:
            if line.startswith(prefix):
                return moment
        raise AssertionError(f"no line starting with {prefix!r}:\n{self.output}")


def _compile(
    world: World,
    where: Path,
    config_vars: Mapping[str, str],
    env: Mapping[str, str],
    *,
    cache: Path | None = None,
    timeout: float = 300,
) -> Build:
    """bin/compile as Heroku runs it, reading its stdout line by line as it comes."""
    buildpack = clean_buildpack_copy(where / "buildpack")
    build_dir = where / "build_0123abcd"
    build_dir.mkdir(parents=True)
    env_dir = write_env_dir(where / "env", config_vars)
    cache = cache or world.warm_cache
    stderr_file = where / "stderr.txt"
    with (
        stderr_file.open("wb") as stderr,
        subprocess.Popen(
            [str(buildpack / "bin" / "compile"), str(build_dir), str(cache), str(env_dir)],
            env={**env, "STACK": STACK},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        ) as process,
    ):
        watchdog = threading.Timer(timeout, process.kill)
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
    return Build(returncode, lines, stderr_file.read_text(errors="replace"), ended)


def _warm_cache(world: World, where: Path) -> Path:
    cache = where / "cache"
    shutil.copytree(world.warm_cache, cache, symlinks=True)
    return cache


def _audit_records(log: Path) -> list[tuple[str, object]]:
    if not log.exists():
        return []
    return [ast.literal_eval(line) for line in log.read_text().splitlines()]


def test_a_silent_smtp_server_holds_the_build_no_longer_than_the_timeout_plus_one_second(
    world: World, tmp_path: Path
) -> None:
    with SilentServer() as silent:
        build = _compile(
            world,
            tmp_path,
            {
                **world.bundle_vars(),
                "SMTP_SERVER": "127.0.0.1",
                "SMTP_PORT": str(silent.port),
                "SMTP_CA_CHECK": "warn",
                "SMTP_CA_CHECK_TIMEOUT": f"{CHECK_TIMEOUT:g}",
            },
            world.env(tmp_path, offline=False),
            cache=_warm_cache(world, tmp_path),
        )
        accepted = len(silent.accepted)
    assert build.returncode == 0, build.output
    assert accepted >= 1, "the check never connected to the silent server"
    assert f"no answer within {CHECK_TIMEOUT:g} s" in build.stderr, build.output
    held = build.ended - build.arrived("-----> Checking")
    assert held <= CHECK_TIMEOUT + SLACK, (
        f"the build ended {held:.2f} s after the check started, more than "
        f"SMTP_CA_CHECK_TIMEOUT={CHECK_TIMEOUT:g} s + {SLACK:g} s:\n{build.output}"
    )


def test_a_warm_build_reaches_only_the_bundle_source_conditionally_and_the_smtp_server(
    world: World, tmp_path: Path
) -> None:
    audit_log = tmp_path / "audit.log"
    cache = _warm_cache(world, tmp_path)
    bundle_requests = len(world.bundle_server.requests)
    with SMTPTestServer(mode="starttls", ca=world.provider_ca) as smtp:
        build = _compile(
            world,
            tmp_path,
            {
                **world.bundle_vars(),
                "SMTP_SERVER": "localhost",
                "SMTP_PORT": str(smtp.port),
                "SMTP_CA_CHECK": "strict",
            },
            # The wheelhouse is empty: a warm build that needed it would fail.
            world.env(tmp_path, offline=True, **{AUDIT_VARIABLE: str(audit_log)}),
            cache=cache,
        )
    assert build.returncode == 0, build.output
    assert "Using cached dependencies" in build.output

    requests = world.bundle_server.requests[bundle_requests:]
    assert [(r.method, r.path, r.headers.get("if-none-match")) for r in requests] == [
        ("GET", BUNDLE_PATH, ETAG)
    ], "the bundle source should see exactly one conditional GET (answered 304)"

    records = _audit_records(audit_log)
    started = [what for event, what in records if event != "socket.connect"]
    assert started == [], f"a warm build started processes: {started}"
    internet = [
        what
        for event, what in records
        if event == "socket.connect" and isinstance(what, tuple) and len(what) >= 2
    ]
    allowed = {world.bundle_server.port, smtp.port}
    assert {port for _, port, *_ in internet} == allowed, internet
    assert {host for host, *_ in internet} <= {"127.0.0.1", "::1"}, internet
