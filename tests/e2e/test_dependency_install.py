"""The dependency stage of whole builds, against what the machine, the app's config and the build
cache can hold: no apt, hostile settings, tokens in index URLs, config vars that are no files,
planted or damaged bytecode, a full disk.

bin/compile runs as Heroku runs it (a clean buildpack copy, a pip-less python3 first on PATH,
STACK, config vars in ENV_DIR), under a small Python parent that reports the build's peak
memory (``ru_maxrss`` of its children), with a watchdog. A cold build starts from an empty
CACHE_DIR and installs from the local wheelhouse with the buildpack's own pip wheel; a warm one
from a copy of the session's warm cache (support.world).
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.heroku import clean_buildpack_copy, snapshot, write_env_dir
from support.http_server import LocalServer, Reply
from support.offline_inputs import skip_or_fail
from support.slices import require
from support.world import World, godaddy_vars
from support.wrapped_log import unwrap

pytestmark = pytest.mark.e2e

MAX_PEAK_MEMORY = 200 * 1024 * 1024
PIP_VERSION = "26.3"
NOT_PASSED_REASON = (
    "the buildpack decides where its own dependencies go, what pip runs and which files it writes"
)

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
    stdout: str
    stderr: str
    seconds: float
    peak_memory: int  # bytes
    app_unchanged: bool
    cache: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def compile_app(
    world: World,
    where: Path,
    config_vars: Mapping[str, str],
    *,
    env: Mapping[str, str | None] | None = None,
    cache: Path | None = None,
    buildpack: Path | None = None,
    wrapper: Sequence[str] = (),
    timeout: float = 120,
    prepare_env_dir: Callable[[Path], object] | None = None,
) -> Build:
    """bin/compile from a clean buildpack copy (or ``buildpack``): cold (an empty CACHE_DIR)
    unless ``cache`` is given. ``env`` changes the build's environment (None removes a
    variable); ``wrapper`` runs before bin/compile (it gets the command as its arguments)."""
    buildpack = buildpack or clean_buildpack_copy(where / "buildpack")
    build_dir = where / "build_0123abcd"
    (build_dir / "config").mkdir(parents=True)
    (build_dir / "config" / "application.rb").write_text("# the app\n")
    before = snapshot(build_dir)
    if cache is None:
        cache = where / "cache"
        cache.mkdir()
    env_dir = write_env_dir(where / "env", config_vars)
    if prepare_env_dir is not None:
        prepare_env_dir(env_dir)
    build_env = {**world.environment(where), "STACK": "heroku-24"}
    for name, value in (env or {}).items():
        if value is None:
            build_env.pop(name, None)
        else:
            build_env[name] = value
    peak_file = where / "peak-kib"
    command = [str(buildpack / "bin" / "compile"), str(build_dir), str(cache), str(env_dir)]
    started = time.monotonic()
    with subprocess.Popen(
        [sys.executable, "-c", MEASURED, str(peak_file), *wrapper, *command],
        env=build_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Its own process group, so that the watchdog ends bin/compile and all it started.
        start_new_session=True,
    ) as process:
        watchdog = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        watchdog.start()
        try:
            stdout, stderr = process.communicate()
        finally:
            watchdog.cancel()
    seconds = time.monotonic() - started
    return Build(
        process.returncode,
        unwrap(stdout),
        unwrap(stderr),
        seconds,
        int(peak_file.read_text()) * 1024 if peak_file.exists() else -1,
        snapshot(build_dir) == before,
        cache,
    )


def assert_failed_cleanly(build: Build, message: str, *, within: float) -> None:
    assert build.returncode == 1, build.output
    assert message in build.stderr, build.output
    assert "Traceback" not in build.output
    assert "Internal error" not in build.output
    assert build.seconds < within, f"the build took {build.seconds:.1f} s:\n{build.output}"
    assert 0 < build.peak_memory < MAX_PEAK_MEMORY, f"peak memory {build.peak_memory} bytes"
    assert build.app_unchanged, "the failed build changed BUILD_DIR"


def assert_installed_with_the_vendored_pip(build: Build) -> None:
    assert build.returncode == 0, build.output
    assert "-----> Installing the buildpack's Python dependencies" in build.stdout
    assert f"packages) with pip {PIP_VERSION} in " in build.stdout, build.output
    assert "Traceback" not in build.output


def tools_without(where: Path, left_out: Callable[[str], bool]) -> Path:
    """A directory with a link to every program of the machine's PATH but those ``left_out``."""
    where.mkdir(parents=True)
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in sorted(Path(directory).iterdir()):
            link = where / program.name
            if not left_out(program.name) and not (link.exists() or link.is_symlink()):
                link.symlink_to(program)
    return where


def is_apt(name: str) -> bool:
    return name.startswith(("apt", "dpkg"))


def fake_program(path: Path, marker: Path) -> Path:
    """A program that only leaves ``marker`` behind (and then runs python3, if named so)."""
    path.write_text(
        f'#!/bin/sh\necho "$0 $*" >>{marker}\n'
        + ('exec /usr/bin/python3 "$@"\n' if path.name.startswith("python") else "exit 0\n")
    )
    path.chmod(0o755)
    return path


# --- pip without apt --------------------------------------------------------------------------


def test_a_cold_build_on_a_pipless_python3_needs_no_apt_get_or_dpkg(
    world: World, tmp_path: Path
) -> None:
    tools = tools_without(tmp_path / "tools", is_apt)
    path = f"{world.python_bin}:{tools}"
    assert shutil.which("apt-get", path=path) is None and shutil.which("dpkg", path=path) is None
    assert shutil.which("python3", path=path) == str(world.python_bin / "python3")
    build = compile_app(world, tmp_path, godaddy_vars(), env={"PATH": path})
    assert_installed_with_the_vendored_pip(build)
    assert "apt-get" not in build.output and "python3-pip" not in build.output
    deps = build.cache / "smtp-ca" / "python-deps"
    assert len(list(deps.glob("*/cryptography/__init__.py"))) == 1
    kept = {path.name for path in (build.cache / "smtp-ca").iterdir()}
    assert not kept & {"pip", "apt", "pycache"}, kept


def test_apt_config_and_apt_programs_cannot_make_a_cold_build_run_foreign_code(
    world: World, tmp_path: Path
) -> None:
    """APT_CONFIG, a config var in the build's environment on CNB platforms, once chose where a
    cold build's pip came from. Neither it nor an apt-get or dpkg on PATH runs now."""
    ran = tmp_path / "foreign-code-ran"
    tools = tools_without(tmp_path / "tools", is_apt)
    for name in ("apt-get", "apt", "dpkg", "dpkg-deb"):
        fake_program(tools / name, ran)
    hostile = tmp_path / "hostile-apt.conf"
    hostile.write_text('Dir::Etc::SourceList "/nowhere/sources.list";\n')
    build = compile_app(
        world,
        tmp_path,
        godaddy_vars(),
        env={"PATH": f"{world.python_bin}:{tools}", "APT_CONFIG": str(hostile)},
    )
    assert not ran.exists(), ran.read_text()
    assert_installed_with_the_vendored_pip(build)


def test_pip_settings_cannot_choose_what_runs_or_where_pip_writes(
    world: World, tmp_path: Path
) -> None:
    """Config vars and the file PIP_CONFIG_FILE names reach pip, but not the settings that would
    run another interpreter, a keyring program or sdist code, or write files anywhere."""
    ran = tmp_path / "foreign-code-ran"
    fake_python = fake_program(tmp_path / "python-of-the-app", ran)
    tools = tools_without(tmp_path / "tools", lambda name: name == "keyring")
    fake_program(tools / "keyring", ran)
    written = tmp_path / "written"
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\n"
        f"python = {fake_python}\n"
        f"log = {written / 'from-config.log'}\n"
        "keyring-provider = subprocess\n"
        "[install]\n"
        "no-binary = :all:\n"
        f"report = {written / 'report.json'}\n"
    )
    build = compile_app(
        world,
        tmp_path,
        {
            **godaddy_vars(),
            "PIP_CONFIG_FILE": str(config),
            "PIP_PYTHON": str(fake_python),
            "PIP_LOG": str(written / "pip.log"),
            "PIP_LOG_FILE": str(written / "pip-file.log"),
            "PIP_LOCAL_LOG": str(written / "local.log"),
            "PIP_NO_BINARY": ":all:",
            "PIP_KEYRING_PROVIDER": "subprocess",
        },
        env={"PIP_CONFIG_FILE": None, "PATH": f"{world.python_bin}:{tools}"},
    )
    assert not ran.exists(), ran.read_text()
    assert not written.exists(), sorted(written.iterdir())
    assert_installed_with_the_vendored_pip(build)
    assert (
        "       Not passing PIP_KEYRING_PROVIDER, PIP_LOCAL_LOG, PIP_LOG, PIP_LOG_FILE, "
        f"PIP_NO_BINARY, PIP_PYTHON to pip: {NOT_PASSED_REASON}\n"
    ) in build.stdout
    assert (
        "       Not passing keyring-provider, log, no-binary, python, report from "
        f"PIP_CONFIG_FILE to pip: {NOT_PASSED_REASON}\n"
    ) in build.stdout
    # pip's copy of the config file is not left in the cache.
    assert not list((build.cache / "smtp-ca").glob(".pip-config.*"))


@pytest.mark.parametrize("variable", ["XDG_CONFIG_DIRS", "XDG_CONFIG_HOME"])
def test_a_pip_config_file_pip_finds_by_itself_cannot_choose_what_runs_or_where_pip_writes(
    world: World, tmp_path: Path, variable: str
) -> None:
    """pip also reads pip/pip.conf under the directories XDG_CONFIG_DIRS and XDG_CONFIG_HOME
    name, variables a CNB platform's config vars can set: what such a file says about the
    interpreter, logs, reports, the install's root or extra requirements is overridden."""
    ran = tmp_path / "foreign-code-ran"
    fake_python = fake_program(tmp_path / "python-of-the-app", ran)
    written = tmp_path / "written"
    extra = tmp_path / "extra-requirements.txt"
    extra.write_text("not-in-the-lock==1.0\n")
    config_dir = tmp_path / "config"
    (config_dir / "pip").mkdir(parents=True)
    (config_dir / "pip" / "pip.conf").write_text(
        f"[global]\npython = {fake_python}\n"
        f"[install]\nlog-file = {written / 'pip.log'}\nreport = {written / 'report.json'}\n"
        f"root = {written / 'root'}\nrequirement = {extra}\nrequire-virtualenv = true\n"
    )
    build = compile_app(
        world,
        tmp_path,
        godaddy_vars(),
        env={"PIP_CONFIG_FILE": None, variable: str(config_dir)},
    )
    assert not ran.exists(), ran.read_text()
    assert not written.exists(), sorted(written.rglob("*"))
    assert_installed_with_the_vendored_pip(build)
    assert not list(build.cache.glob("smtp-ca/python-deps/*/not_in_the_lock*"))


def test_a_keyring_program_is_never_asked_for_an_index_password(
    world: World, tmp_path: Path
) -> None:
    """An index that asks for a password (401) and PIP_KEYRING_PROVIDER=subprocess: pip would
    run the ``keyring`` on PATH, which could be anything, to ask for one."""
    ran = tmp_path / "keyring-ran"
    tools = tools_without(tmp_path / "tools", lambda name: name == "keyring")
    fake_program(tools / "keyring", ran)
    with LocalServer() as index:
        for project in ("certifi", "cffi", "charset-normalizer", "cryptography", "idna"):
            index.script(
                f"/simple/{project}/",
                Reply(status=401, headers={"WWW-Authenticate": 'Basic realm="index"'}),
            )
        url = index.url("/simple").replace("http://", "http://builder@")
        build = compile_app(
            world,
            tmp_path,
            {**godaddy_vars(), "PIP_INDEX_URL": url, "PIP_KEYRING_PROVIDER": "subprocess"},
            env={
                "PIP_NO_INDEX": None,
                "PIP_FIND_LINKS": None,
                "PIP_RETRIES": "0",
                "PATH": f"{world.python_bin}:{tools}",
            },
        )
    assert_failed_cleanly(
        build, " !     Installing the buildpack's Python dependencies failed", within=60
    )
    assert any(request.path.startswith("/simple/") for request in index.requests)
    assert not ran.exists(), ran.read_text()


# --- tokens in index URLs ---------------------------------------------------------------------


TOKENS = ("tok3n-aaaa1111bbbb2222", "Zz9Yy8Xx7Ww6Vv5Uu4", "s3cr3t-cccc3333dddd4444")


def _index_urls_as_config_vars(index: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PIP_INDEX_URL": f"{index}/{TOKENS[0]}/simple",
        "PIP_EXTRA_INDEX_URL": f"{index}/{TOKENS[1]}/simple {index}/org/{TOKENS[2]}/simple",
    }


def _index_urls_in_a_config_file(index: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "pip.conf"
    config.write_text(
        f"[global]\nindex-url = {index}/{TOKENS[0]}/simple\n"
        f"[install]\nextra-index-url =\n    {index}/{TOKENS[1]}/simple\n"
        f"    {index}/org/{TOKENS[2]}/simple\n"
    )
    return {"PIP_CONFIG_FILE": str(config)}


@pytest.mark.parametrize("settings", [_index_urls_as_config_vars, _index_urls_in_a_config_file])
def test_a_token_in_the_path_of_a_pip_index_url_is_never_printed(
    world: World,
    tmp_path: Path,
    settings: Callable[[str, Path], dict[str, str]],
) -> None:
    """pip prints "Looking in indexes: URL" and the URLs it could not fetch, and the failure's
    hint asks for the build log: a token in an index URL's path is redacted there."""
    with LocalServer() as index:  # knows no project: pip finds nothing and fails
        build = compile_app(
            world,
            tmp_path,
            {**godaddy_vars(), **settings(index.url(""), tmp_path)},
            env={"PIP_NO_INDEX": None, "PIP_FIND_LINKS": None, "PIP_CONFIG_FILE": None},
        )
    assert_failed_cleanly(
        build, " !     Installing the buildpack's Python dependencies failed", within=60
    )
    for token in TOKENS:
        assert any(token in request.path for request in index.requests), token
        assert token not in build.output, token
    assert "Looking in indexes: " in build.stderr  # pip's line, with the URLs redacted
    assert "[REDACTED]" in build.stderr


# --- config vars that are no files ------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize("make", [_fifo, _dev_zero])
def test_a_pip_config_var_that_is_no_file_fails_a_cold_build_at_once(
    world: World, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    build = compile_app(
        world,
        tmp_path,
        godaddy_vars(),
        prepare_env_dir=lambda env_dir: make(env_dir / "PIP_INDEX_URL"),
        timeout=30,
    )
    assert_failed_cleanly(
        build,
        " !     The config var PIP_INDEX_URL in ENV_DIR is not a regular file: each config var "
        "must be a file whose content is its value.\n",
        within=20,
    )


@pytest.mark.parametrize("make", [_fifo, _dev_zero])
def test_a_pip_config_file_that_is_no_file_fails_a_cold_build_at_once(
    world: World, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    config = tmp_path / "pip.conf"
    make(config)
    build = compile_app(
        world,
        tmp_path,
        {**godaddy_vars(), "PIP_CONFIG_FILE": str(config)},
        env={"PIP_CONFIG_FILE": None},
        timeout=30,
    )
    assert_failed_cleanly(
        build,
        f" !     PIP_CONFIG_FILE ({config}) is not a regular file: pip config is a text file.\n",
        within=20,
    )


# --- the build cache's bytecode ---------------------------------------------------------------
#
# Earlier versions ran the build with python3 -X pycache_prefix=CACHE_DIR/smtp-ca/pycache, which
# Python read every module's bytecode from, the standard library's included, unchecked. Each test
# builds once, changes what lies there (or puts it there), and builds again from the same
# buildpack path and cache, as Heroku does.


def _build_twice(
    world: World, tmp_path: Path, change: Callable[[Path, Path], None]
) -> tuple[Build, Build]:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    cache = tmp_path / "cache"
    shutil.copytree(world.warm_cache, cache, symlinks=True)
    first = compile_app(world, tmp_path / "first", godaddy_vars(), cache=cache, buildpack=buildpack)
    assert first.returncode == 0, first.output
    change(cache / "smtp-ca" / "pycache", buildpack)
    second = compile_app(
        world, tmp_path / "second", godaddy_vars(), cache=cache, buildpack=buildpack
    )
    return first, second


def _bytecode_path(world: World, prefix: Path, module: str) -> tuple[Path, Path]:
    """Where python3 -X pycache_prefix=``prefix`` reads the bytecode of ``module`` from, and
    that module's source."""
    code = (
        f"import importlib.util, {module} as m; "
        "print(importlib.util.cache_from_source(m.__file__)); print(m.__file__)"
    )
    python = str(world.python_bin / "python3")
    found = subprocess.run(
        [python, "-I", "-S", "-X", f"pycache_prefix={prefix}", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return Path(found[0]), Path(found[1])


def _timestamp_pyc(source: Path, code: bytes) -> bytes:
    """A .pyc whose header matches ``source`` as Python checks it (mtime and size)."""
    info = source.stat()
    return (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + int(info.st_mtime).to_bytes(4, "little")
        + (info.st_size & 0xFFFFFFFF).to_bytes(4, "little")
        + code
    )


def _damage(compiled: Path, source: Path) -> None:
    """The same size, the header kept, the code garbled; made from scratch if not there."""
    if not compiled.exists():
        compiled.parent.mkdir(parents=True, exist_ok=True)
        compiled.write_bytes(_timestamp_pyc(source, bytes(4000)))
    data = compiled.read_bytes()
    compiled.write_bytes(data[:16] + b"\xff" * (len(data) - 16))


def test_a_planted_standard_library_pyc_in_the_build_cache_never_runs(
    world: World, tmp_path: Path
) -> None:
    """A .pyc for json, which the build imports, with the real source's header."""
    ran = tmp_path / "planted-code-ran"

    def plant(prefix: Path, buildpack: Path) -> None:
        compiled, source = _bytecode_path(world, prefix, "json")
        code = compile(
            f"open({str(ran)!r}, 'w').close()\n" + source.read_text(), str(source), "exec"
        )
        compiled.parent.mkdir(parents=True, exist_ok=True)
        compiled.write_bytes(_timestamp_pyc(source, marshal.dumps(code)))

    _, second = _build_twice(world, tmp_path, plant)
    assert second.returncode == 0, second.output
    assert "-----> Using cached dependencies" in second.stdout
    assert not ran.exists(), "the planted bytecode ran"


def test_damaged_bytecode_in_the_build_cache_does_not_fail_builds(
    world: World, tmp_path: Path
) -> None:
    """Same-size damage to the bytecode of json and of one of the buildpack's own modules: a
    build that ran it failed with "Internal error (SystemError)"."""

    def damage(prefix: Path, buildpack: Path) -> None:
        _damage(*_bytecode_path(world, prefix, "json"))
        source = buildpack / "src" / "smtp_ca" / "pipeline.py"
        tag = sys.implementation.cache_tag
        _damage(prefix / str(source.parent.relative_to("/")) / f"pipeline.{tag}.pyc", source)

    _, second = _build_twice(world, tmp_path, damage)
    assert second.returncode == 0, second.output
    assert "Internal error" not in second.output
    assert "-----> Using cached dependencies" in second.stdout


# --- a full disk ------------------------------------------------------------------------------


def _needs_root_for_a_tmpfs() -> None:
    require("needs_root", "mounts a tmpfs as CACHE_DIR")
    if os.geteuid() != 0:
        skip_or_fail(
            "needs root, to mount a 4 MB tmpfs as CACHE_DIR in a mount namespace: run "
            "`sudo bash scripts/test`"
        )
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        skip_or_fail(
            f"needs mount namespaces, which this machine refuses (unshare --mount: "
            f"{probe.stderr.strip()}): run the tests as root on a machine that allows them"
        )


@pytest.mark.needs_root
def test_a_full_cache_during_the_first_install_ends_the_build_in_its_own_words(
    world: World, tmp_path: Path
) -> None:
    """CACHE_DIR on a 4 MB tmpfs (the install needs some 25 MB), in a mount namespace of the
    build's own: the build ends at once, says the disk is full, where and what to do, and
    keeps nothing half-installed. Needs root (mount)."""
    _needs_root_for_a_tmpfs()
    cache = tmp_path / "cache"
    cache.mkdir()
    listing = tmp_path / "cache-listing"
    # Mounts the tmpfs over CACHE_DIR, runs the build, lists what it left there, and ends
    # with the build's status; the tmpfs goes with the namespace.
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs -o size=4m smtp-ca-test "$0" && "$@"; status=$?; '
        f'(cd "$0" && find .) >{listing}; exit $status',
        str(cache),
    ]
    build = compile_app(world, tmp_path, godaddy_vars(), cache=cache, wrapper=wrapper, timeout=60)
    cache_deps = cache / "smtp-ca" / "python-deps"
    assert_failed_cleanly(
        build,
        " !     No space left on device: the build cache filled up while the buildpack's Python "
        f"dependencies were installed into {cache_deps} (they take about 30 MB). Nothing "
        "half-installed was kept.\n"
        " !     Make room in the build cache for them. Clear the build cache (heroku "
        "builds:cache:purge) and build again.\n",
        within=60,
    )
    assert "pip's output" not in build.stderr
    assert sorted(listing.read_text().split()) == [
        ".",
        "./smtp-ca",
        "./smtp-ca/.lock",
        "./smtp-ca/python-deps",
        "./smtp-ca/stack",
    ]
    assert stat.S_ISDIR(cache.stat().st_mode) and not any(cache.iterdir())
