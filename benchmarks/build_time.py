"""Times bin/compile as Heroku runs it, on loopback only, and checks the build's time budget.

    .venv/bin/python benchmarks/build_time.py [--runs N] [--cold-runs N] [--no-write]

Run it with the development virtualenv (bash scripts/setup-dev makes it, and the offline
inputs of .ci/prepare-test-inputs): it uses the tests' real parts, trustme and aiosmtpd. It is
not a test: timings depend on the machine, so nothing in the test suite times a build. Nothing
leaves the machine: the CA bundle comes from a local HTTPS server, the SMTP server is aiosmtpd
on 127.0.0.1, and the wheels come from the local wheelhouse (pip is the buildpack's own wheel).

The builds run in the tests' own world (tests/support/world.py, the session fixture of the
end-to-end tests), and the way tests/e2e/test_compile.py runs one: a clean copy of the buildpack
(made again before every build, at the same path, as Heroku fetches it again at a path named after
its URL, and with new mtimes, as a git clone leaves them), a python3 without pip first on PATH,
STACK, config vars only in ENV_DIR. The time is the wall time of the whole bin/compile process.
Scenarios:

* cold build: an empty CACHE_DIR, so the buildpack's pip wheel installs the dependencies, the
  wheels downloaded from a package index on loopback (support.simple_index, named by
  PIP_INDEX_URL); the dependency install alone is the time from its "-----> Installing" line to
  the next step's line. The bytes the index served are counted: what a cold build takes from
  the network (before pip came with the buildpack, python3-pip's .deb and apt's lists came on
  top: see benchmarks/results.md).
* warm build: the same CACHE_DIR again, the bundle unchanged (the HTTPS source answers the
  conditional GET with 304). These builds run with an empty wheelhouse, which proves they need
  none. The provider's chain is a root, an intermediate and a leaf, each certificate naming a
  CRL on a plain http:// server, as public CAs publish them: the leaf's CRL is a partition the
  size of DigiCert's (about 10 MB), the intermediate's a small one. A warm build reads both
  from CACHE_DIR and fetches neither.
* floor: the same python3, with the dependency directory first on sys.path, importing exactly
  the modules the warm build imports, and nothing else. The list is taken from the warm build
  itself: one warm build runs with ``-X importtime`` (a python3 first on PATH adds it: the
  build's ``python3 -I`` ignores PYTHONPROFILEIMPORTTIME), and every
  module it names that a bare ``python3 -X importtime -c pass`` does not is imported, in the
  same order (an import the build tried and failed, such as an optional accelerator, is tried
  and fails the same way). The floor has its own copy of the buildpack's modules and its own
  bytecode cache, warmed before timing: it is what the build would cost if it did nothing but
  import, with every module's bytecode at hand.
* CNB warm build: the same warm build as a Cloud Native Buildpack, timed as the wall time of
  the CNB lifecycle's ``builder`` phase (lifecycle from .ci/prepare-lifecycle, run as
  tests/e2e/test_cnb.py runs it, as its unprivileged user), each from the layers of the build
  before; with its own floor, the same modules imported by the python3 that build runs. Skipped,
  and said so, when the lifecycle is missing.
* check alone: ``smtp_ca.check.run_check`` in this process, against the loopback STARTTLS
  server, trusting the bundle a warm build wrote, with the CRLs the warm builds kept.
* paired with a baseline (``--baseline DIR``, a checkout or ``git archive`` of another
  version, such as the main branch): warm builds of this checkout and of the baseline take
  turns, each from its own warm CACHE_DIR, against the same servers; the median of the ratios
  of each pair says what this version changes, whatever the machine was doing meanwhile.
* warm dependency check: ``smtp_ca.dependencies.install.ensure_dependencies`` on the warm
  cache, called many times in this process; and once per fresh python3, timed from before
  ``import smtp_ca.dependencies.install`` to its return (what a build pays for it).
* silent SMTP server: a TCP listener that accepts and never greets, SMTP_CA_CHECK_TIMEOUT=1:
  the time from the "-----> Checking" line to the end of the process.

Warm builds and floor runs alternate, so a machine that gets busier halfway slows both. Two
details of that world keep the stand-ins honest. The build's requests trusts certifi's roots as
well as the local server's CA (REQUESTS_CA_BUNDLE), as it trusts certifi's roots on Heroku:
OpenSSL loads some 140 roots on every build. And the local HTTPS server sets TCP_NODELAY on its
connections, as real web servers do: Python's http.server does not, and then each TLS 1.3
answer waits some 40 ms for the client's delayed ACK, a stall that no real bundle host adds.

It prints a Markdown table and the targets of issue 5, and writes both to
benchmarks/results.md (unless --no-write), keeping the sections (``## ...``) written there by
hand after them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

if TYPE_CHECKING:
    from support.http_server import LocalServer
    from support.world import World as TestsWorld

STACK = "heroku-24"
CACHE_NAMESPACE = (
    "smtp-ca"  # smtp_ca.cache.layout.CLASSIC_NAMESPACE, the buildpack's part of CACHE_DIR
)
WARM_TO_FLOOR_TARGET = 1.5
DEPENDENCY_CHECK_TARGET = 0.050
COLD_INSTALL_TARGET = 30.0
SILENT_TIMEOUT = 1.0
SILENT_SLACK = 1.0
DEPENDENCY_CHECK_CALLS = 200
RESULTS = REPO / "benchmarks" / "results.md"
BUNDLE_PATH = "/provider-bundle.crt"
ETAG = '"bundle-v1"'
ROOT_CRL_PATH = "/root-ca.crl"
ISSUING_CRL_PATH = "/issuing-ca.crl"
# Made-up entries that make the leaf's CRL a partition the size of DigiCert's: about 10 MB.
PARTITION_ENTRIES = 260_000

# The floor: import what the build imports, from where the build imports it, and nothing else.
FLOOR_CODE = """\
import importlib, sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
"""

# The warm dependency check as a build pays for it: the module's imports and one call.
DEPENDENCY_CHECK_CODE = """\
import time
started = time.perf_counter()
import io, sys
from pathlib import Path
from smtp_ca.dependencies.install import ensure_dependencies
from smtp_ca.output import Log
out = io.StringIO()
log = Log(out=out, err=io.StringIO())
ensure_dependencies(
    Path(sys.argv[1]), stack=sys.argv[2], env_dir=Path(sys.argv[3]), lock_file=Path(sys.argv[4]),
    log=log,
)
assert "Using cached dependencies" in out.getvalue(), out.getvalue()
print(time.perf_counter() - started)
"""


# --- running a build and timing it ---------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """One process run: its wall time, and each stdout line with when it arrived."""

    seconds: float
    returncode: int
    lines: tuple[tuple[float, str], ...]
    stderr: str

    @property
    def stdout(self) -> str:
        return "".join(f"{line}\n" for _, line in self.lines)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def when(self, prefix: str) -> float:
        """Seconds from the start to the first stdout line starting with ``prefix``."""
        for moment, line in self.lines:
            if line.startswith(prefix):
                return moment
        raise BenchmarkError(f"no line starting with {prefix!r} in:\n{self.output}")


class BenchmarkError(Exception):
    pass


def run_timed(argv: Sequence[str], env: Mapping[str, str], timeout: float = 300) -> Timed:
    """Runs ``argv``; stdout is read line by line as it comes, stderr goes to a file."""
    with tempfile.TemporaryFile() as errors:
        lines: list[tuple[float, str]] = []
        started = time.perf_counter()
        with subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        ) as process:
            watchdog = threading.Timer(timeout, process.kill)
            watchdog.start()
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    text = raw.decode(errors="replace").rstrip("\n")
                    lines.append((time.perf_counter() - started, text))
                returncode = process.wait()
                seconds = time.perf_counter() - started
            finally:
                watchdog.cancel()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    return Timed(seconds, returncode, tuple(lines), stderr)


# --- the world the builds run in ------------------------------------------------------------------


@dataclass
class World:
    """The tests' world (tests/support/world.py: the pip-less python3, the local wheelhouse,
    the HTTPS bundle host), plus what the timed builds add: the provider's
    bundle with an ETag, a STARTTLS server it anchors, and the config vars that point there."""

    root: Path
    tests_world: TestsWorld
    config_vars: dict[str, str]
    smtp_port: int
    provider_pem: bytes  # what the bundle server serves at BUNDLE_PATH
    crl_server: LocalServer  # the provider's CRLs, plain http://
    online_env: dict[str, str] = field(init=False)  # with the wheelhouse
    offline_env: dict[str, str] = field(init=False)  # no wheels
    buildpack: Path = field(init=False)

    def __post_init__(self) -> None:
        self.online_env = self.tests_world.environment(self.root)
        self.offline_env = self.tests_world.environment(self.root, offline=True)
        self.buildpack = self.root / "buildpack"

    @property
    def python(self) -> Path:
        return self.tests_world.python_bin / "python"

    @property
    def bundle_server(self) -> LocalServer:
        return self.tests_world.bundle_server

    def build(
        self,
        name: str,
        cache: Path,
        *,
        env: Mapping[str, str],
        config_vars: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        source: Path | None = None,
    ) -> Timed:
        """bin/compile from a fresh copy of this checkout's buildpack (or ``source``'s)."""
        from support.heroku import clean_buildpack_copy, write_env_dir

        # A fresh copy of the buildpack for every build, at the same path, as on Heroku; its
        # files get new mtimes, as a git clone leaves them.
        shutil.rmtree(self.buildpack, ignore_errors=True)
        clean_buildpack_copy(self.buildpack, source=source)
        for path in self.buildpack.rglob("*"):
            os.utime(path)
        build_dir = self.root / "builds" / name
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        env_dir = self.root / "env" / name
        shutil.rmtree(env_dir, ignore_errors=True)
        write_env_dir(env_dir, dict(config_vars or self.config_vars))
        return run_timed(
            [str(self.buildpack / "bin" / "compile"), str(build_dir), str(cache), str(env_dir)],
            {**env, **(extra_env or {}), "STACK": STACK},
        )


@contextlib.contextmanager
def world(root: Path) -> Iterator[World]:
    from support.certs import make_root
    from support.crl import make_crl
    from support.http_server import LocalServer
    from support.pki import issue, server_context
    from support.smtp_server import SMTPTestServer
    from support.world import open_world

    provider_root = make_root("smtp-ca Benchmark Provider Root CA")
    pem = provider_root.pem
    with LocalServer() as crls:
        intermediate = issue(
            "smtp-ca Benchmark Provider Issuing CA",
            provider_root,
            ca=True,
            crl=crls.url(ROOT_CRL_PATH),
        )
        leaf = issue(
            "localhost", intermediate, hostnames=("localhost",), crl=crls.url(ISSUING_CRL_PATH)
        )
        crls.serve(ROOT_CRL_PATH, make_crl(provider_root))
        crls.serve(ISSUING_CRL_PATH, make_crl(intermediate, filler=PARTITION_ENTRIES))
        context = server_context(leaf, intermediate)
        with (
            open_world(root / "tests-world") as tests_world,
            SMTPTestServer(mode="starttls", ssl_context=context) as smtp,
        ):
            tests_world.bundle_server.serve(BUNDLE_PATH, pem, etag=ETAG)
            yield World(
                root=root,
                tests_world=tests_world,
                config_vars={
                    "SMTP_CA_BUNDLE_URL": tests_world.bundle_server.url(BUNDLE_PATH),
                    "SMTP_CA_BUNDLE_SHA256": hashlib.sha256(pem).hexdigest(),
                    "SMTP_SERVER": "localhost",
                    "SMTP_PORT": str(smtp.port),
                    "SMTP_CA_CHECK": "strict",
                },
                smtp_port=smtp.port,
                provider_pem=pem,
                crl_server=crls,
            )


# --- scenarios ------------------------------------------------------------------------------------


@dataclass
class Sample:
    scenario: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _expect(result: Timed, *texts: str, returncode: int = 0) -> Timed:
    if result.returncode != returncode or any(text not in result.output for text in texts):
        raise BenchmarkError(
            f"unexpected build (exit {result.returncode}, wanted {returncode} and {texts}):\n"
            + result.output
        )
    return result


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class NetworkBytes:
    """What cold builds fetched from the loopback stand-in for the internet, per build: the
    package index's pages and wheels (pip itself comes with the buildpack)."""

    index: list[int]

    def summary(self) -> str:
        return (
            f"{_megabytes(statistics.median(self.index))} per cold build, median of "
            f"{len(self.index)}, all of it from the package index (no apt-get)"
        )


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.2f} MB"


def cold_builds(w: World, runs: int) -> tuple[Sample, Sample, NetworkBytes, Path]:
    """Cold builds that download the wheels from a package index on loopback (pip's
    PIP_INDEX_URL, no wheelhouse), so that every byte a cold build fetches is counted."""
    from support.http_server import LocalServer
    from support.simple_index import SimpleIndex

    builds, installs = [], []
    fetched = NetworkBytes([])
    with LocalServer() as server:
        index = SimpleIndex(server, w.tests_world.inputs.wheelhouse)
        env = {
            name: value
            for name, value in w.online_env.items()
            if name not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")
        }
        env["PIP_INDEX_URL"] = index.url
        for run in range(runs):
            index_before = index.bytes_served()
            result = _expect(
                w.build(f"cold-{run}", w.root / f"cold-cache-{run}", env=env),
                "-----> Installing the buildpack's Python dependencies",
            )
            fetched.index.append(index.bytes_served() - index_before)
            install = result.when("-----> Preparing") - result.when("-----> Installing")
            _progress(
                f"cold build {run + 1}/{runs}: {result.seconds:.2f} s (install {install:.2f} s, "
                f"{_megabytes(fetched.index[-1])} fetched)"
            )
            builds.append(result.seconds)
            installs.append(install)
    return (
        Sample(
            "Cold build (the buildpack's pip, dependencies installed, then the pipeline)", builds
        ),
        Sample("Cold dependency install (its step's line to the next step's)", installs),
        fetched,
        w.root / "cold-cache-0",
    )


def imported_modules(importtime: str) -> list[str]:
    """Module names in ``-X importtime`` output, in the order their imports finished."""
    names: list[str] = []
    for line in importtime.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3:
            name = parts[2].strip()
            if name != "imported package" and name not in names:
                names.append(name)
    return names


def floor_modules(w: World, cache: Path) -> list[str]:
    # bin/compile runs python3 -I, which ignores PYTHONPROFILEIMPORTTIME: a python3 first on
    # PATH that asks for -X importtime itself traces the build's imports.
    tracing = w.root / "importtime-bin"
    tracing.mkdir(exist_ok=True)
    wrapper = tracing / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec {w.python} -X importtime "$@"\n')
    wrapper.chmod(0o755)
    path = f"{tracing}:{w.offline_env['PATH']}"
    traced = _expect(
        w.build("importtime", cache, env=w.offline_env, extra_env={"PATH": path}),
        "Using cached dependencies",
    )
    startup = subprocess.run(
        [str(w.python), "-X", "importtime", "-c", "pass"],
        env=w.online_env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    already = set(imported_modules(startup))
    return [
        name
        for name in imported_modules(traced.stderr)
        if name not in already and name != "smtp_ca.__main__"
    ]


def dependency_dir(cache: Path, lock_file: Path) -> Path:
    from smtp_ca.dependencies.install import ensure_dependencies
    from smtp_ca.output import Log

    out = io.StringIO()
    deps = ensure_dependencies(
        cache, stack=STACK, env_dir=None, lock_file=lock_file, log=Log(out=out)
    )
    if "Using cached dependencies" not in out.getvalue():
        raise BenchmarkError(f"the dependency cache was not warm:\n{out.getvalue()}")
    return deps


def warm_and_floor(w: World, cache: Path, runs: int) -> tuple[Sample, Sample, str, list[str]]:
    modules = floor_modules(w, cache)
    deps = dependency_dir(cache / CACHE_NAMESPACE, w.buildpack / "requirements.lock")
    # The floor's own copy of the buildpack's modules, and its own bytecode cache, both kept
    # from one run to the next: no module is ever compiled twice, the floor is the best case.
    floor_src = w.root / "floor-src"
    shutil.copytree(w.buildpack / "src", floor_src, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = f"pycache_prefix={w.root / 'floor-pycache'}"

    def floor() -> Timed:
        return run_timed(
            [str(w.python), "-X", prefix, "-c", FLOOR_CODE, str(deps), *modules],
            {**w.online_env, "PYTHONPATH": str(floor_src)},
        )

    _expect(floor())  # writes the floor's bytecode cache: the floor is the best case
    requests_before = len(w.bundle_server.requests)
    crl_requests_before = len(w.crl_server.requests)
    warm, floors = [], []
    for run in range(runs):
        # SMTP_CA_CHECK=strict: a build that exits 0 has verified the server.
        result = _expect(
            w.build(f"warm-{run}", cache, env=w.offline_env), "Using cached dependencies"
        )
        warm.append(result.seconds)
        floors.append(_expect(floor()).seconds)
        _progress(
            f"warm build {run + 1}/{runs}: {duration(warm[-1])}, floor {duration(floors[-1])}"
        )
    requests = w.bundle_server.requests[requests_before:]
    crl_requests = len(w.crl_server.requests) - crl_requests_before
    # The server answers 304 to an If-None-Match that names its ETag.
    conditional = [r for r in requests if r.headers.get("if-none-match") == ETAG]
    network_ok = len(requests) == runs == len(conditional) and crl_requests == 0
    network = (
        f"the bundle server saw {len(requests)} requests for {runs} warm builds, "
        f"{len(conditional)} of them conditional (If-None-Match, answered 304); the CRL server "
        f"saw {crl_requests} (both CRLs came from CACHE_DIR); the wheelhouse was empty"
    )
    return (
        Sample("Warm build (dependencies cached, bundle unchanged: 304)", warm),
        Sample(
            f"Floor: python3 importing what the warm build imports ({len(modules)} modules)", floors
        ),
        ("pass" if network_ok else "FAIL") + f": {network}",
        modules,
    )


def cnb_warm_and_floor(w: World, modules: list[str], runs: int) -> tuple[Sample, Sample, str] | str:
    """Warm builds as a Cloud Native Buildpack: the CNB lifecycle's ``builder`` phase (the
    lifecycle .ci/prepare-lifecycle builds, run as tests/e2e/test_cnb.py runs it), each from the
    layers of the build before, restored as the restorer restores them; and the floor of the
    python3 that build runs. The time is the wall time of the whole ``builder`` process; the
    ``detector`` runs before it, untimed. Returns why it was skipped when the lifecycle is
    missing."""
    import pytest

    from support.cnb import (
        buildpack_descriptor,
        lay_out,
        lifecycle_env,
        make_reachable,
        phase_argv,
    )
    from support.cnb_world import open_cnb_world

    try:
        opened = open_cnb_world()
        cw = opened.__enter__()
    except pytest.skip.Exception as missing:
        return f"skipped: {missing.msg}"
    try:
        config = {**w.config_vars, **cw.bundle_vars(BUNDLE_PATH, w.provider_pem, etag=ETAG)}
        # The first build with this bundle fills the cache layer (and the bytecode) for it.
        primed = cw.build("primed", config, probe=False)
        if primed.returncode != 0:
            raise BenchmarkError(f"the CNB build failed:\n{primed.output}")
        layers = primed.layout.layers
        cache = primed.layout.buildpack_layers(buildpack_descriptor()[0]) / "cache"
        deps = dependency_dir(cache, w.buildpack / "requirements.lock")
        account = cw.lifecycle.account
        floor_src = make_reachable(cw.root / "floor")
        shutil.copytree(
            w.buildpack / "src", floor_src / "src", ignore=shutil.ignore_patterns("__pycache__")
        )
        make_reachable(floor_src / "pycache")
        account.give(floor_src / "pycache")
        floor_argv = [
            cw.python_bin / "python3",
            "-X",
            f"pycache_prefix={floor_src / 'pycache'}",
            "-c",
            FLOOR_CODE,
            str(deps),
            *modules,
        ]
        floor_env = {"PATH": cw.path, "LANG": "C.UTF-8", "PYTHONPATH": str(floor_src / "src")}

        def timed(argv: Sequence[str | Path], env: Mapping[str, str], what: str) -> float:
            started = time.perf_counter()
            completed = account.run(argv, env=env)
            seconds = time.perf_counter() - started
            if completed.returncode != 0:
                raise BenchmarkError(f"{what} failed:\n{completed.stdout}{completed.stderr}")
            if what == "CNB warm build" and "Using cached dependencies" not in completed.stdout:
                raise BenchmarkError(f"the CNB build was not warm:\n{completed.stdout}")
            return seconds

        timed(floor_argv, floor_env, "CNB floor")  # fills its bytecode cache: the best case
        requests_before = len(cw.bundle_server.requests)
        # Every warm build at the same paths, as on a platform (/workspace, /layers): bytecode
        # is cached by the absolute path of its source, the dependencies' included.
        root, stash = cw.root / "warm", cw.root / "previous-layers"
        warm, floors = [], []
        for run in range(runs):
            shutil.rmtree(stash, ignore_errors=True)
            shutil.copytree(layers, stash, symlinks=True)
            shutil.rmtree(root, ignore_errors=True)
            layout = lay_out(
                root,
                config_vars=config,
                build_settings=cw.build_settings(offline=True),
                account=account,
                buildpacks=cw.buildpacks,
                layers_from=stash,
                probe=False,
            )
            env = lifecycle_env(layout, cw.path)
            timed(phase_argv(cw.lifecycle, layout, "detector"), env, "CNB detect")
            warm.append(timed(phase_argv(cw.lifecycle, layout, "builder"), env, "CNB warm build"))
            floors.append(timed(floor_argv, floor_env, "CNB floor"))
            layers = layout.layers
            _progress(
                f"CNB warm build {run + 1}/{runs}: {duration(warm[-1])}, "
                f"floor {duration(floors[-1])}"
            )
        requests = cw.bundle_server.requests[requests_before:]
        conditional = [r for r in requests if r.headers.get("if-none-match") == ETAG]
        network = (
            ("pass" if len(requests) == runs == len(conditional) else "FAIL")
            + f": the bundle server saw {len(requests)} requests for {runs} CNB warm builds, "
            f"{len(conditional)} of them conditional; the wheelhouse was empty"
        )
    finally:
        opened.__exit__(None, None, None)
    return (
        Sample(
            f"CNB warm build (lifecycle {cw.lifecycle.version} builder phase, cache layer "
            "restored, bundle unchanged: 304)",
            warm,
        ),
        Sample("CNB floor: the build's python3 importing the same modules", floors),
        network,
    )


def check_alone(w: World, cache: Path, runs: int) -> Sample:
    from smtp_ca.check.flow import run_check
    from smtp_ca.check.smtp_session import CheckTarget

    bundle = w.root / "builds" / "warm-0" / ".smtp-ca" / "ca-bundle.pem"
    target = CheckTarget("localhost", w.smtp_port, timeout=10)
    kept = cache / CACHE_NAMESPACE  # the CRLs the warm builds read
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        outcome = run_check(target, bundle, cache_dir=kept)
        times.append(time.perf_counter() - started)
        if not outcome.verified:
            raise BenchmarkError(f"the check failed: {outcome.summary}")
    return Sample(
        "Check alone (run_check against the loopback STARTTLS server, its CRLs kept)", times
    )


def paired_with_baseline(
    w: World, cache: Path, baseline: Path, runs: int
) -> tuple[Sample, Sample, str]:
    """Warm builds of this checkout and of ``baseline`` in turns, each from its own warm
    CACHE_DIR (a copy of the cold build's, primed by one build of its own)."""
    from support.heroku import BUILDPACK_FILES

    missing = [name for name in BUILDPACK_FILES if not (baseline / name).exists()]
    if missing:
        raise BenchmarkError(f"--baseline {baseline} has no {', '.join(missing)}")
    label = baseline.name
    caches = {}
    for name in ("this", "baseline"):
        caches[name] = w.root / f"paired-cache-{name}"
        shutil.copytree(cache, caches[name], symlinks=True)
    this, other, ratios = [], [], []

    def one(name: str, run: str) -> float:
        source = baseline if name == "baseline" else None
        result = _expect(
            w.build(f"paired-{name}-{run}", caches[name], env=w.offline_env, source=source),
            "Using cached dependencies",
        )
        return result.seconds

    one("this", "prime")
    one("baseline", "prime")
    for run in range(runs):
        # Which goes first alternates, so neither always follows the other.
        if run % 2:
            other.append(one("baseline", str(run)))
            this.append(one("this", str(run)))
        else:
            this.append(one("this", str(run)))
            other.append(one("baseline", str(run)))
        ratios.append(this[-1] / other[-1])
        _progress(
            f"paired warm build {run + 1}/{runs}: this {duration(this[-1])}, "
            f"baseline {duration(other[-1])}"
        )
    ratio = statistics.median(ratios)
    return (
        Sample("Warm build, this checkout, paired with the baseline", this),
        Sample(f"Warm build, the baseline ({label}), paired", other),
        f"Warm build against the baseline ({label}): {ratio:.3f}x, the median of {runs} paired "
        f"ratios (from {min(ratios):.3f}x to {max(ratios):.3f}x)",
    )


def dependency_checks(w: World, cache: Path, runs: int) -> tuple[Sample, Sample]:
    from smtp_ca.dependencies.install import ensure_dependencies
    from smtp_ca.output import Log

    cache = cache / CACHE_NAMESPACE  # the buildpack's own directory in CACHE_DIR

    lock = w.buildpack / "requirements.lock"
    env_dir = w.root / "env" / "warm-0"
    log = Log(out=io.StringIO(), err=io.StringIO())
    calls = []
    for _ in range(DEPENDENCY_CHECK_CALLS):
        started = time.perf_counter()
        ensure_dependencies(cache, stack=STACK, env_dir=env_dir, lock_file=lock, log=log)
        calls.append(time.perf_counter() - started)
    fresh = []
    argv = [str(w.python), "-X", f"pycache_prefix={w.root / 'floor-pycache'}", "-c"]
    for _ in range(runs + 1):
        completed = subprocess.run(
            [*argv, DEPENDENCY_CHECK_CODE, str(cache), STACK, str(env_dir), str(lock)],
            env={**w.online_env, "PYTHONPATH": str(w.root / "floor-src")},
            capture_output=True,
            text=True,
            check=True,
        )
        fresh.append(float(completed.stdout))
    return (
        Sample("Warm dependency check (ensure_dependencies, one call in a warm process)", calls),
        # The first run only fills the bytecode cache.
        Sample("Warm dependency check in a fresh python3 (its imports and one call)", fresh[1:]),
    )


def silent_server(w: World, cache: Path, runs: int) -> Sample:
    from support.silent_server import SilentServer

    times = []
    with SilentServer() as silent:
        config_vars = {
            **w.config_vars,
            "SMTP_PORT": str(silent.port),
            "SMTP_CA_CHECK": "warn",
            "SMTP_CA_CHECK_TIMEOUT": f"{SILENT_TIMEOUT:g}",
        }
        for run in range(runs):
            result = _expect(
                w.build(
                    f"silent-{run}",
                    cache,
                    env=w.offline_env,
                    config_vars=config_vars,
                ),
                "no answer within",
            )
            times.append(result.seconds - result.when("-----> Checking"))
            _progress(f"silent server {run + 1}/{runs}: {times[-1]:.2f} s")
    return Sample(
        f"Silent SMTP server, SMTP_CA_CHECK_TIMEOUT={SILENT_TIMEOUT:g}: check line to exit", times
    )


# --- the report -----------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.2f} ms"


def machine(python: Path) -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    system = platform.system()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = line.partition("=")[2].strip('"')
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import sys, ssl; print(sys.version.split()[0], '/', ssl.OPENSSL_VERSION)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    load = (
        f", load average {os.getloadavg()[0]:.2f} at the end" if hasattr(os, "getloadavg") else ""
    )
    return f"{cores} cores ({model}), {system}, Linux {platform.release()}, Python {versions}{load}"


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def report(samples: list[Sample], targets: list[str], about: str) -> str:
    rows = [
        "| Scenario | Runs | Median | Min | Max |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {s.scenario} | {len(s.seconds)} | {duration(s.median)} | "
            f"{duration(min(s.seconds))} | {duration(max(s.seconds))} |"
            for s in samples
        ),
    ]
    return "\n".join([about, "", *rows, "", *(f"- {line}" for line in targets), ""])


def _kept_notes() -> str:
    """The sections of benchmarks/results.md after the latest run's table (``## ...``): notes
    and comparisons written by hand, which a new run keeps."""
    try:
        previous = RESULTS.read_text()
    except OSError:
        return ""
    start = previous.find("\n## ")
    return "" if start < 0 else previous[start:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--runs", type=int, default=7, help="warm builds, floor and fresh-process runs"
    )
    parser.add_argument("--cold-runs", type=int, default=3, help="cold builds")
    parser.add_argument("--silent-runs", type=int, default=3, help="builds against a silent server")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    parser.add_argument(
        "--paired-runs", type=int, help="pairs of warm builds with --baseline (default: --runs)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another version's checkout (git archive of a branch): its warm builds paired "
        "with this one's",
    )
    arguments = parser.parse_args(argv)
    if min(arguments.runs, arguments.cold_runs, arguments.silent_runs) < 1:
        parser.error("every number of runs must be at least 1")

    try:
        import pytest
        import trustme  # noqa: F401 - only to fail early, with a hint
    except ImportError as error:
        _progress(f"{error}: run this with the development virtualenv (bash scripts/setup-dev).")
        return 2
    try:
        with (
            tempfile.TemporaryDirectory(prefix="smtp-ca-bench-") as scratch,
            world(Path(scratch)) as w,
        ):
            cold, install, fetched, cache = cold_builds(w, arguments.cold_runs)
            warm, floor, network, modules = warm_and_floor(w, cache, arguments.runs)
            cnb = cnb_warm_and_floor(w, modules, arguments.runs)
            check = check_alone(w, cache, arguments.runs * 3)
            paired = (
                paired_with_baseline(
                    w, cache, arguments.baseline.resolve(), arguments.paired_runs or arguments.runs
                )
                if arguments.baseline
                else None
            )
            calls, fresh = dependency_checks(w, cache, arguments.runs)
            silent = silent_server(w, cache, arguments.silent_runs)
            about = machine(w.python)
    except pytest.skip.Exception as missing:  # support.offline_inputs: no offline inputs
        _progress(f"{missing.msg} (or bash scripts/setup-dev)")
        return 2

    ratio = warm.median / floor.median
    slowest_install = max(install.seconds)
    silent_limit = SILENT_TIMEOUT + SILENT_SLACK
    targets = [
        f"Warm build / floor: {ratio:.2f}x, medians (target at most {WARM_TO_FLOOR_TARGET}x): "
        f"{verdict(ratio <= WARM_TO_FLOOR_TARGET)}",
        f"Warm dependency check: {duration(calls.median)} per call, {duration(fresh.median)} in a "
        f"fresh python3 with its imports (target under {duration(DEPENDENCY_CHECK_TARGET)}): "
        f"{verdict(max(calls.median, fresh.median) < DEPENDENCY_CHECK_TARGET)}",
        f"No network on a warm build but the conditional GET and the handshake: {network}",
        f"Cold build's bytes from the network (loopback stand-ins): {fetched.summary()}",
        f"Cold dependency install: {duration(slowest_install)} at most (target under "
        f"{COLD_INSTALL_TARGET:g} s on 2 cores): {verdict(slowest_install < COLD_INSTALL_TARGET)}",
        f"Silent SMTP server: {duration(max(silent.seconds))} at most from the check's line to the "
        f"end of the build (limit SMTP_CA_CHECK_TIMEOUT + 1 s = {silent_limit:g} s): "
        f"{verdict(max(silent.seconds) <= silent_limit)}",
    ]
    paired_samples: list[Sample] = []
    if paired is not None:
        paired_samples = [paired[0], paired[1]]
        targets.insert(1, paired[2])
    cnb_samples: list[Sample] = []
    if isinstance(cnb, str):
        targets.append(f"CNB warm build: {cnb}")
    else:
        cnb_warm, cnb_floor, cnb_network = cnb
        cnb_samples = [cnb_warm, cnb_floor]
        cnb_ratio = cnb_warm.median / cnb_floor.median
        targets[1:1] = [
            f"CNB warm build / its floor: {cnb_ratio:.2f}x, medians (target at most "
            f"{WARM_TO_FLOOR_TARGET}x): {verdict(cnb_ratio <= WARM_TO_FLOOR_TARGET)}",
            f"No network on a CNB warm build but the conditional GET and the handshake: "
            f"{cnb_network}",
        ]
    today = datetime.date.today().isoformat()
    baseline = f" --baseline {arguments.baseline.name}" if arguments.baseline else ""
    if arguments.baseline and arguments.paired_runs:
        baseline = f" --paired-runs {arguments.paired_runs}{baseline}"
    about = (
        f"Measured {today} with `benchmarks/build_time.py --runs {arguments.runs} "
        f"--cold-runs {arguments.cold_runs}{baseline}` on {about}."
    )
    text = report(
        [cold, install, warm, floor, *paired_samples, *cnb_samples, check, calls, fresh, silent],
        targets,
        about,
    )
    print(text)
    print("Floor modules:", " ".join(modules), file=sys.stderr)
    if not arguments.no_write:
        RESULTS.write_text("# Build benchmark results\n\n" + text + _kept_notes())
        _progress(f"Wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
