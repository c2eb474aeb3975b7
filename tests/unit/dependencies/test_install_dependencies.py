"""The dependency bootstrap: installing the buildpack's locked dependencies with a python3 that
has no pip, with the pip wheel the buildpack carries and a local wheelhouse, with no network
beyond loopback.

The end-to-end tests need the inputs made by ``.ci/prepare-test-inputs`` (found through
``SMTP_CA_TEST_INPUTS``, default ``<repo>/.test-inputs``); without them
they are skipped, or fail when CI=true. One cold install is shared by the module; each test
that changes the cache works on a copy of it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtp_ca.cache.layout import CLASSIC_NAMESPACE, DEPENDENCIES, MARKER_NAME, Layout
from smtp_ca.dependencies import install as bootstrap
from smtp_ca.dependencies import pip as pip_install
from smtp_ca.dependencies import pip_settings as pip_settings_module
from smtp_ca.dependencies.install import dependency_key, ensure_dependencies
from smtp_ca.dependencies.pip_settings import pip_settings, pip_url_secrets
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from support.http_server import unreachable_url
from support.offline_inputs import Inputs, load_inputs
from support.pipless_python import (
    REPO,
    BootstrapRun,
    clean_env,
    make_pipless_python,
    run_bootstrap,
)
from support.scratch import fixture_dir
from support.unprivileged import sandbox
from support.wrapped_log import unwrap

LOCK = REPO / "requirements.lock"
STACK = "heroku-22"
LOCKED = ("certifi", "cffi", "charset_normalizer", "cryptography", "idna", "jinja2", "requests")
PIP_VERSION = "26.3"


# --- End to end: a pipless python3, the vendored pip, a local wheelhouse ------------------------


@dataclass(frozen=True)
class ColdInstall:
    cache_dir: Path
    run: BootstrapRun


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return load_inputs()


@pytest.fixture(scope="module")
def pipless(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pipless_python(fixture_dir(request, tmp_path_factory, "pipless"))


@pytest.fixture(scope="module")
def base_env(inputs: Inputs) -> dict[str, str]:
    return clean_env(
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(inputs.wheelhouse),
        PIP_ROOT_USER_ACTION="ignore",
    )


@pytest.fixture(scope="module")
def cold(
    pipless: Path,
    base_env: dict[str, str],
    inputs: Inputs,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> ColdInstall:
    """One cold install, the wheelhouse named by a config var (ENV_DIR), not the environment."""
    root = fixture_dir(request, tmp_path_factory, "cold")
    env_dir = root / "env"
    env_dir.mkdir()
    (env_dir / "PIP_FIND_LINKS").write_text(str(inputs.wheelhouse))
    env = {name: value for name, value in base_env.items() if name != "PIP_FIND_LINKS"}
    run = run_bootstrap(
        pipless,
        cache_dir=root / "cache",
        stack=STACK,
        lock_file=LOCK,
        env=env,
        env_dir=env_dir,
    )
    return ColdInstall(root / "cache", run)


def copy_cache(cold: ColdInstall, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(cold.cache_dir, cache, symlinks=True)
    return cache


def python_deps(cache: Path) -> Path:
    return cache / CLASSIC_NAMESPACE / DEPENDENCIES


def installed_copy(cold: ColdInstall, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the cold install's cache, and the installed dependencies' directory in it."""
    cache = copy_cache(cold, tmp_path)
    return cache, python_deps(cache) / cold.run.deps_dir.name


def assert_clean_failure(run: BootstrapRun) -> None:
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith(" !     "), run.stderr


def test_cold_install_runs_the_vendored_pip_and_installs_the_lock(cold: ColdInstall) -> None:
    run = cold.run
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    out = run.stdout
    assert "-----> Installing the buildpack's Python dependencies" in out
    assert "       Using PIP_FIND_LINKS from the app's config vars" in out
    # One line for pip's work, none of pip's own.
    assert re.search(
        rf"^       Installed certifi \S+, .*cryptography \S+, .* \(\d+ packages\) "
        rf"with pip {re.escape(PIP_VERSION)} in \d+\.\ds$",
        out,
        re.MULTILINE,
    ), out
    for pip_line in ("Looking in links", "Collecting", "Processing", "Successfully installed"):
        assert pip_line not in out
    assert "apt" not in out.replace("Installed", "")

    deps = run.deps_dir
    assert deps.parent == python_deps(cold.cache_dir)
    assert deps.name == dependency_key(STACK, LOCK.read_bytes())
    assert all((deps / name).is_dir() for name in LOCKED)
    marker = json.loads((deps / MARKER_NAME).read_text())
    assert marker["key"] == deps.name
    assert [p.name for p in python_deps(cold.cache_dir).iterdir()] == [deps.name]
    smtp_ca_cache = cold.cache_dir / "smtp-ca"
    assert (smtp_ca_cache / "stack").read_text().strip() == STACK
    # Nothing but the install and the stack: no pip, no apt state, no bytecode cache.
    assert sorted(p.name for p in smtp_ca_cache.iterdir()) == ["python-deps", "stack"]


def test_the_dependencies_bytecode_is_compiled_at_install_and_listed_in_the_marker(
    cold: ColdInstall,
) -> None:
    deps = cold.run.deps_dir
    marker = json.loads((deps / MARKER_NAME).read_text())
    tag = sys.implementation.cache_tag
    compiled = deps / "requests" / "__pycache__" / f"__init__.{tag}.pyc"
    # Unchecked-hash .pyc (PEP 552 flags 0b01): Python never looks at the source or rewrites it.
    assert int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b01
    listed = marker["files"][f"requests/__pycache__/__init__.{tag}.pyc"]
    assert listed == [compiled.stat().st_size, hashlib.sha256(compiled.read_bytes()).hexdigest()]
    sources = [path for path in deps.rglob("*.py") if "__pycache__" not in path.parts]
    missing = [
        path
        for path in sources
        if not (path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc").is_file()
    ]
    assert len(missing) < len(sources) / 50, missing  # a few files for other Pythons at most


def test_the_install_takes_no_more_than_the_full_disk_message_says(cold: ColdInstall) -> None:
    size = sum(path.stat().st_size for path in cold.run.deps_dir.rglob("*") if path.is_file())
    assert size < bootstrap.INSTALLED_MEGABYTES * 1_000_000, size


def test_warm_build_needs_no_subprocess_network_or_wheels(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    (tmp_path / "no-wheels").mkdir()
    env = dict(base_env, PIP_FIND_LINKS=str(tmp_path / "no-wheels"))
    run = run_bootstrap(
        pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env, forbid_subprocess=True
    )
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines()[0] == "-----> Using cached dependencies"
    assert run.stderr == ""
    assert run.deps_dir == python_deps(cache) / cold.run.deps_dir.name


def _remove_marker(deps: Path) -> None:
    (deps / MARKER_NAME).unlink()


def _garble_marker(deps: Path) -> None:
    (deps / MARKER_NAME).write_text('{"format": 1, "key": ')


def _remove_a_package(deps: Path) -> None:
    shutil.rmtree(deps / "cryptography")


def _cut_a_file_short(deps: Path) -> None:
    """A partial cache restore: the file is there, but not all of it."""
    path = deps / "cryptography" / "__init__.py"
    path.write_bytes(path.read_bytes()[:10])


def _leave_staging_behind(deps: Path) -> None:
    """As if the build was killed after pip finished but before the rename."""
    (deps / MARKER_NAME).unlink()
    deps.rename(deps.parent / f".staging-{deps.name}-4242")


@pytest.mark.parametrize(
    "damage",
    [_remove_marker, _garble_marker, _remove_a_package, _cut_a_file_short, _leave_staging_behind],
)
def test_incomplete_cache_is_removed_and_rebuilt(
    damage: Callable[[Path], None],
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache, deps = installed_copy(cold, tmp_path)
    damage(deps)
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=base_env)
    assert run.returncode == 0, run.output
    if damage is not _leave_staging_behind:
        assert "Cached dependencies are incomplete" in run.stdout
    assert run.deps_dir == deps
    assert [p.name for p in python_deps(cache).iterdir()] == [deps.name]
    assert (deps / MARKER_NAME).is_file()


def test_stack_change_is_announced_and_reinstalls(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    run = run_bootstrap(pipless, cache_dir=cache, stack="heroku-24", lock_file=LOCK, env=base_env)
    assert run.returncode == 0, run.output
    assert (
        "       Stack changed from heroku-22 to heroku-24: "
        "reinstalling the buildpack's Python dependencies"
    ) in run.stdout
    assert run.deps_dir.name == dependency_key("heroku-24", LOCK.read_bytes())
    assert [p.name for p in python_deps(cache).iterdir()] == [run.deps_dir.name]
    assert (cache / "smtp-ca" / "stack").read_text().strip() == "heroku-24"


def _tamper_hashes(lock_text: str, package: str) -> str:
    """Replaces every hash of ``package`` in a lock file with a hash no file has."""
    block = re.search(rf"^{package}==.*?(?=^\S)", lock_text, re.MULTILINE | re.DOTALL)
    assert block is not None
    tampered = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block.group(0))
    return lock_text.replace(block.group(0), tampered)


def test_hash_mismatch_is_a_clear_build_error(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    lock = tmp_path / "requirements.lock"
    lock.write_text(_tamper_hashes(LOCK.read_text(), "requests"))
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=lock, env=base_env)
    assert_clean_failure(run)
    assert (
        " !     Installing the buildpack's Python dependencies failed: "
        "pip exited with status 1. Last lines of pip's output:"
    ) in run.stderr
    assert "DO NOT MATCH THE HASHES" in run.stderr
    assert "PIP_INDEX_URL" in run.stderr  # the hint
    # Nothing half-installed is left for the next build to trust.
    assert [p.name for p in python_deps(cache).iterdir()] == []


def test_missing_wheels_are_a_clear_build_error(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache, deps = installed_copy(cold, tmp_path)
    _remove_marker(deps)
    (tmp_path / "no-wheels").mkdir()
    env = dict(base_env, PIP_FIND_LINKS=str(tmp_path / "no-wheels"))
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env)
    assert_clean_failure(run)
    assert "pip exited with status 1" in run.stderr
    assert "No matching distribution found" in run.stderr


def test_index_credentials_from_config_vars_are_never_printed(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache, deps = installed_copy(cold, tmp_path)
    _remove_marker(deps)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    index = unreachable_url().replace("http://", "http://builder:s3cr3t-pass@") + "/simple"
    (env_dir / "PIP_INDEX_URL").write_text(index)
    env = {
        name: value
        for name, value in base_env.items()
        if name not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")
    }
    env.update(PIP_RETRIES="0", PIP_TIMEOUT="5")
    run = run_bootstrap(
        pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env, env_dir=env_dir
    )
    assert_clean_failure(run)
    assert "       Using PIP_INDEX_URL from the app's config vars" in run.stdout
    assert "pip exited with status 1" in run.stderr
    assert "s3cr3t-pass" not in run.output


def test_a_python3_with_its_own_pip_runs_the_buildpacks_pip_without_apt(
    inputs: Inputs, tmp_path: Path
) -> None:
    """The tests' python3 has pip of its own, and PATH is empty (no apt-get, no dpkg): the
    install runs the vendored wheel all the same."""
    assert importlib.util.find_spec("pip") is not None
    (tmp_path / "empty-path").mkdir()
    env = clean_env(
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(inputs.wheelhouse),
        PIP_ROOT_USER_ACTION="ignore",
        PATH=str(tmp_path / "empty-path"),
    )
    cache = tmp_path / "cache"
    run = run_bootstrap(Path(sys.executable), cache_dir=cache, stack=STACK, lock_file=LOCK, env=env)
    assert run.returncode == 0, run.output
    assert f" with pip {PIP_VERSION} in " in run.stdout
    assert run.deps_dir.parent == python_deps(cache)


def test_damaged_bytecode_of_a_dependency_is_reinstalled_with_a_warning(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """A same-size damaged .pyc would fail every later build with a SystemError if it ran: the
    marker's SHA-256 catches it, and the install is made again."""
    cache, deps = installed_copy(cold, tmp_path)
    name = f"jinja2/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    compiled = deps / name
    original = compiled.read_bytes()
    compiled.write_bytes(original[:16] + b"\xff" * (len(original) - 16))
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=base_env)
    assert run.returncode == 0, run.output
    assert (
        f" !     Warning: The cached dependencies in {deps} cannot be trusted: "
        f"{name} changed since it was installed. Reinstalling them."
    ) in run.stderr
    # Compiled again (marshal's output may differ from one compilation to the next), and listed.
    marker = json.loads((deps / MARKER_NAME).read_text())
    assert marker["files"][name][1] == hashlib.sha256(compiled.read_bytes()).hexdigest()
    assert b"\xff" * 64 not in compiled.read_bytes()
    assert "Traceback" not in run.output


def test_a_module_planted_beside_the_dependencies_is_never_imported(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The dependencies come first on sys.path: a planted ssl.py there would shadow the
    standard library's. Every file there must be one the install made."""
    cache, deps = installed_copy(cold, tmp_path)
    ran = tmp_path / "planted-ran"
    (deps / "ssl.py").write_text(f"open({str(ran)!r}, 'w').close()\nraise ImportError\n")
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=base_env)
    assert run.returncode == 0, run.output
    assert (
        f" !     Warning: The cached dependencies in {deps} cannot be trusted: "
        "ssl.py was added since the install. Reinstalling them."
    ) in run.stderr
    assert not (deps / "ssl.py").exists()
    assert not ran.exists()


# --- In process: the pieces that need no pip or wheels ------------------------------------


def test_key_depends_on_stack_python_machine_and_lock() -> None:
    base = dependency_key("heroku-24", b"lock", python=(3, 12), machine="x86_64")
    assert re.fullmatch(r"[0-9a-f]{16}", base)
    assert base == dependency_key("heroku-24", b"lock", python=(3, 12), machine="x86_64")
    variants = {
        dependency_key("heroku-22", b"lock", python=(3, 12), machine="x86_64"),
        dependency_key("heroku-24", b"lock2", python=(3, 12), machine="x86_64"),
        dependency_key("heroku-24", b"lock", python=(3, 13), machine="x86_64"),
        dependency_key("heroku-24", b"lock", python=(3, 12), machine="aarch64"),
    }
    assert base not in variants
    assert len(variants) == 4


# The vendored pip and its pin.


def test_the_pin_matches_the_vendored_pip_wheel() -> None:
    pin = (REPO / "vendor" / "pip.sha256").read_text()
    digest, name = pin.split()
    wheel = REPO / "vendor" / name
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == digest
    assert name == f"pip-{PIP_VERSION}-py3-none-any.whl"
    assert sorted(path.name for path in (REPO / "vendor").iterdir()) == sorted(["pip.sha256", name])
    found = pip_install.vendored_pip()
    assert (found.wheel, found.version) == (wheel, PIP_VERSION)


def test_the_vendored_pip_supports_every_python_of_the_stacks() -> None:
    import zipfile

    with zipfile.ZipFile(pip_install.vendored_pip().wheel) as wheel:
        metadata = wheel.read(f"pip-{PIP_VERSION}.dist-info/METADATA").decode()
    assert "\nRequires-Python: >=3.10\n" in metadata  # heroku-22's 3.10 to heroku-26's 3.14


def _vendor_copy(tmp_path: Path) -> Path:
    vendor = tmp_path / "vendor"
    shutil.copytree(REPO / "vendor", vendor)
    return vendor


def test_a_vendored_pip_that_does_not_match_its_pin_is_never_run(tmp_path: Path) -> None:
    vendor = _vendor_copy(tmp_path)
    wheel = vendor / f"pip-{PIP_VERSION}-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[1000] ^= 0xFF
    wheel.write_bytes(bytes(data))
    with pytest.raises(BuildError) as raised:
        pip_install.vendored_pip(vendor)
    assert raised.value.message.startswith(
        f"The buildpack's pip {wheel} does not match its pin in {vendor / 'pip.sha256'}: SHA-256 "
    )
    assert raised.value.hint == (
        "The buildpack checkout is incomplete or damaged: use a released version of it."
    )


@pytest.mark.parametrize(
    "pin", ["", "0" * 64 + " pip.whl\n", "0" * 64 + "  ../pip-1-py3-none-any.whl"]
)
def test_a_pin_file_that_is_not_one_pin_line_is_a_build_error(tmp_path: Path, pin: str) -> None:
    vendor = _vendor_copy(tmp_path)
    (vendor / "pip.sha256").write_text(pin)
    with pytest.raises(BuildError) as raised:
        pip_install.vendored_pip(vendor)
    assert raised.value.message == (
        f"{vendor / 'pip.sha256'} is not one line '<SHA-256>  pip-<version>-py3-none-any.whl'."
    )


def test_the_install_command_fixes_what_no_setting_may_change(tmp_path: Path) -> None:
    pip = pip_install.VendoredPip(tmp_path / "pip.whl", PIP_VERSION)
    argv = pip_install.install_command(pip, tmp_path / "target", LOCK)
    assert argv[:4] == [sys.executable, "-I", "-S", f"{tmp_path}/pip.whl/pip"]
    for option in (
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--keyring-provider=disabled",
        "--no-input",
    ):
        assert option in argv


def test_a_tool_that_outlives_its_deadline_is_stopped_with_all_it_started(tmp_path: Path) -> None:
    started = time.monotonic()
    run = pip_install.run_tool(
        ["bash", "-c", "echo started; sleep 60 & sleep 60; echo never"],
        env={"PATH": "/usr/bin:/bin"},
        log=Log(out=io.StringIO(), err=io.StringIO()),
        deadline=0.5,
    )
    assert time.monotonic() - started < 5
    assert run.timed_out
    assert run.tail == ["started"]


def test_a_tool_that_prints_a_huge_line_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    run = pip_install.run_tool(
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 50_000_000 + '\\n')"],
        env={},
        log=Log(out=io.StringIO(), err=io.StringIO()),
    )
    assert run.status == 0
    assert len(run.tail) == pip_install.ERROR_TAIL_LINES
    assert all(len(line) <= pip_install.MAX_LINE_CHARACTERS for line in run.tail)


def test_a_tool_that_says_the_disk_is_full_is_noticed_even_in_a_cut_line() -> None:
    line = "x" * 1000 + f"[Errno 28] {os.strerror(28)}: '/cache/x'"
    run = pip_install.run_tool(
        [sys.executable, "-c", f"print({line!r}); raise SystemExit(1)"],
        env={},
        log=Log(out=io.StringIO(), err=io.StringIO()),
    )
    assert run.status == 1
    assert run.no_space == line
    assert os.strerror(28) not in run.tail[-1]  # the line as the log would show it is cut


# Which pip settings reach pip.


def _settings(
    environ: dict[str, str], env_dir: Path | None, tmp_path: Path, system_ca: Path | None = None
) -> tuple[dict[str, str], list[str], list[str]]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    with pip_settings(
        environ, env_dir, system_ca=system_ca or tmp_path / "missing.crt", scratch=scratch
    ) as settings:
        config = settings.env.get("PIP_CONFIG_FILE")
        if config and config != os.devnull:
            settings.env["PIP_CONFIG_FILE"] = Path(config).read_text()
        result = settings.env, settings.notes, settings.secrets
    assert list(scratch.iterdir()) == []  # pip's copy of a config file is gone afterwards
    return result


def test_pip_settings_come_from_the_environment_first_then_config_vars(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "PIP_INDEX_URL").write_text("https://config-var.invalid/simple\n")
    (env_dir / "PIP_EXTRA_INDEX_URL").write_text("https://u:pw-from-config@extra.invalid/simple")
    (env_dir / "DATABASE_URL").write_text("postgres://not-for-pip")
    environ = {"PIP_INDEX_URL": "https://environment.invalid/simple", "PATH": "/usr/bin"}
    env, notes, secrets = _settings(environ, env_dir, tmp_path)
    assert env["PIP_INDEX_URL"] == "https://environment.invalid/simple"
    assert env["PIP_EXTRA_INDEX_URL"] == "https://u:pw-from-config@extra.invalid/simple"
    assert "DATABASE_URL" not in env
    assert env["PATH"] == "/usr/bin"
    assert notes == ["Using PIP_EXTRA_INDEX_URL from the app's config vars"]
    assert secrets == ["pw-from-config"]
    assert "PIP_CERT" not in env
    assert environ == {"PIP_INDEX_URL": "https://environment.invalid/simple", "PATH": "/usr/bin"}


def test_pip_uses_the_system_trust_store_unless_told_otherwise(tmp_path: Path) -> None:
    system_ca = tmp_path / "ca-certificates.crt"
    system_ca.write_text("PEM")
    env, _, _ = _settings({}, None, tmp_path, system_ca)
    assert env["PIP_CERT"] == str(system_ca)
    env, _, _ = _settings({"REQUESTS_CA_BUNDLE": "/x.pem"}, None, tmp_path, system_ca)
    assert "PIP_CERT" not in env
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "PIP_CERT").write_text("/proxy-ca.pem")
    env, _, _ = _settings({}, env_dir, tmp_path, system_ca)
    assert env["PIP_CERT"] == "/proxy-ca.pem"


def test_settings_that_would_move_the_install_run_code_or_write_files_are_not_passed(
    tmp_path: Path,
) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    for name, value in {
        "PIP_REQUIRE_VIRTUALENV": "1",
        "PIP_LOG": "/tmp/anywhere.log",
        "PIP_LOG_FILE": "/tmp/anywhere-else.log",
        "PIP_KEYRING_PROVIDER": "subprocess",
        "PIP_PYTHON": "/usr/bin/python2",
        "PIP_REPORT": "/tmp/report.json",
    }.items():
        (env_dir / name).write_text(value)
    env, notes, _ = _settings(
        {"PIP_TARGET": "/app/lib", "PIP_USER": "1", "PIP_LOCAL_LOG": "/x", "PIP_TIMEOUT": "5"},
        env_dir,
        tmp_path,
    )
    pinned = pip_settings_module.PINNED
    assert {name: env[name] for name in env if name.startswith("PIP_")} == {
        "PIP_TIMEOUT": "5",
        **{name: value for name, value in pinned.items() if name.startswith("PIP_")},
    }
    assert env["PIP_LOG"] == os.devnull and env["PIP_USER"] == "0"
    assert notes == [
        "Not passing PIP_KEYRING_PROVIDER, PIP_LOCAL_LOG, PIP_LOG, PIP_LOG_FILE, PIP_PYTHON, "
        "PIP_REPORT, PIP_REQUIRE_VIRTUALENV, PIP_TARGET, PIP_USER to pip: the buildpack decides "
        "where its own dependencies go, what pip runs and which files it writes"
    ]


def test_a_pip_config_file_reaches_pip_without_those_settings(tmp_path: Path) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\n"
        "index-url = https://index.invalid/tok3n-0123456789abcdef/simple\n"
        "python = /tmp/evil-python\n"
        "log = /tmp/pip.log\n"
        "timeout = 7\n"
        "[install]\n"
        "extra-index-url =\n"
        "    https://a.invalid/simple\n"
        "    https://user:pass-w0rd@b.invalid/simple\n"
        "Keyring_Provider = subprocess\n"
        "no-binary = :all:\n"
    )
    env, notes, secrets = _settings({"PIP_CONFIG_FILE": str(config)}, None, tmp_path)
    kept = env["PIP_CONFIG_FILE"]
    assert "index-url = https://index.invalid/tok3n-0123456789abcdef/simple" in kept
    assert "timeout = 7" in kept
    assert "https://user:pass-w0rd@b.invalid/simple" in kept
    for dropped in ("python", "log", "keyring", "no-binary"):
        assert dropped not in kept.lower()
    assert notes == [
        "Not passing keyring-provider, log, no-binary, python from PIP_CONFIG_FILE to pip: the "
        "buildpack decides where its own dependencies go, what pip runs and which files it writes"
    ]
    assert sorted(secrets) == ["pass-w0rd", "tok3n-0123456789abcdef"]


def test_pip_config_file_dev_null_is_passed_as_it_is_and_a_missing_one_is_named(
    tmp_path: Path,
) -> None:
    env, notes, _ = _settings({"PIP_CONFIG_FILE": os.devnull}, None, tmp_path)
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert notes == []
    env, notes, _ = _settings({"PIP_CONFIG_FILE": str(tmp_path / "none.conf")}, None, tmp_path)
    assert "PIP_CONFIG_FILE" not in env
    assert notes == [
        f"PIP_CONFIG_FILE ({tmp_path / 'none.conf'}) names no file: pip reads no config file "
        "from it"
    ]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _dev_zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("make", [_fifo, _dev_zero, _directory])
def test_a_pip_config_var_that_is_no_regular_file_is_a_build_error_at_once(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    make(env_dir / "PIP_INDEX_URL")
    with pytest.raises(BuildError) as raised:
        _settings({}, env_dir, tmp_path)
    kind = "a directory" if make is _directory else "not a regular file"
    assert raised.value.message == (
        f"The config var PIP_INDEX_URL in ENV_DIR is {kind}: each config var must be a file "
        "whose content is its value."
    )


@pytest.mark.parametrize("make", [_fifo, _dev_zero, _directory])
def test_a_pip_config_file_that_is_no_regular_file_is_a_build_error_at_once(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / "pip.conf")
    with pytest.raises(BuildError) as raised:
        _settings({"PIP_CONFIG_FILE": str(path)}, None, tmp_path)
    assert raised.value.message == (
        f"PIP_CONFIG_FILE ({path}) is not a regular file: pip config is a text file."
    )


def test_a_pip_config_file_too_big_or_not_a_config_file_is_a_build_error_naming_no_content(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.conf"
    big.write_bytes(b"#" * 70_000)
    with pytest.raises(BuildError) as raised:
        _settings({"PIP_CONFIG_FILE": str(big)}, None, tmp_path)
    assert raised.value.message == (
        f"PIP_CONFIG_FILE ({big}) is larger than 65536 bytes: that is no pip config file."
    )
    broken = tmp_path / "broken.conf"
    broken.write_text("[global]\nindex-url = https://u:s3cret-pw@x.invalid\n  \x00\n[global]\n")
    with pytest.raises(BuildError) as raised:
        _settings({"PIP_CONFIG_FILE": str(broken)}, None, tmp_path)
    assert raised.value.message == (
        f"PIP_CONFIG_FILE ({broken}) is not a pip config file pip could read (line 4): "
        "DuplicateSectionError."
    )
    assert "s3cret" not in raised.value.message


def test_passwords_in_pip_urls_are_found_for_redaction() -> None:
    env = {
        "PIP_INDEX_URL": "https://user:p%40ss@index.invalid/simple",
        "PIP_EXTRA_INDEX_URL": "https://a.invalid/simple https://tok:t0ken-x@b.invalid/simple",
        "PIP_PROXY": "http://[broken",
    }
    assert sorted(pip_url_secrets(env)) == ["p%40ss", "p@ss", "t0ken-x"]


def test_a_token_given_as_the_user_name_of_a_pip_url_is_found_for_redaction() -> None:
    # Private indexes often take a token as the whole user info: https://TOKEN@host/simple.
    env = {"PIP_INDEX_URL": "https://gh0-t0ken-0123456789@index.invalid/simple"}
    assert pip_url_secrets(env) == ["gh0-t0ken-0123456789"]


def test_a_token_in_the_path_of_a_pip_url_is_found_for_redaction() -> None:
    # Some indexes take the token as a path segment: https://host/TOKEN/simple/.
    env = {
        "PIP_INDEX_URL": "https://pypi.invalid/Ab12Cd34Ef56/org/simple/",
        "PIP_EXTRA_INDEX_URL": (
            "https://a.invalid/api/v4/projects/12345678/packages/pypi/simple "
            "https://b.invalid/api/pypi/abcdefghijklmnopqrstuvwxyz/simple "
            "https://c.invalid/x%2Fy-s3cr3t-t0k3n/simple"
        ),
    }
    assert sorted(pip_url_secrets(env)) == [
        "Ab12Cd34Ef56",
        "abcdefghijklmnopqrstuvwxyz",
        "x%2Fy-s3cr3t-t0k3n",
        "x/y-s3cr3t-t0k3n",
    ]


def _fake_install(cache_dir: Path, stack: str) -> Path:
    target = cache_dir / "smtp-ca" / "python-deps" / dependency_key(stack, LOCK.read_bytes())
    (target / "requests").mkdir(parents=True)
    (target / "requests" / "__init__.py").write_text("# installed\n")
    bootstrap.write_marker(target, target.name)
    (cache_dir / "smtp-ca" / "stack").write_text(stack + "\n")
    return target


def test_warm_path_in_process_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = _fake_install(tmp_path, STACK)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the warm path started a subprocess")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    out, err = io.StringIO(), io.StringIO()
    result = ensure_dependencies(
        tmp_path / "smtp-ca", stack=STACK, env_dir=None, lock_file=LOCK, log=Log(out=out, err=err)
    )
    assert result == target
    assert out.getvalue() == "-----> Using cached dependencies\n"
    assert err.getvalue() == ""


def test_unreadable_lock_file_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as raised:
        ensure_dependencies(
            tmp_path / "smtp-ca",
            stack=STACK,
            env_dir=None,
            lock_file=tmp_path / "requirements.lock",
            log=Log(out=io.StringIO(), err=io.StringIO()),
        )
    assert "Cannot read the buildpack's dependency lock file" in raised.value.message
    assert raised.value.hint


def test_a_file_cut_short_after_the_install_invalidates_the_marker(tmp_path: Path) -> None:
    target = _fake_install(tmp_path, STACK)
    key = target.name
    assert bootstrap.check_marker(target, key).trusted
    (target / "requests" / "__init__.py").write_text("")
    verdict = bootstrap.check_marker(target, key)
    assert not verdict.trusted and not verdict.untrusted  # incomplete: reinstalled, no warning


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        (
            lambda target: (
                (target / "requests" / "__pycache__").mkdir()
                or (target / "requests" / "__pycache__" / "x.pyc").write_bytes(b"code")
            ),
            "requests/__pycache__/x.pyc was added since the install",
        ),
        (
            lambda target: (target / "json.py").write_text("print('shadowed')\n"),
            "json.py was added since the install",
        ),
        (
            lambda target: (target / "ssl.py").symlink_to("/tmp/elsewhere.py"),
            "ssl.py is not a regular file since the install",
        ),
    ],
)
def test_a_file_added_after_the_install_makes_the_cache_untrusted(
    tmp_path: Path, plant: Callable[[Path], object], problem: str
) -> None:
    target = _fake_install(tmp_path, STACK)
    plant(target)
    assert bootstrap.check_marker(target, target.name).problem == problem


def test_what_earlier_versions_left_in_the_cache_is_removed_and_nothing_else(
    tmp_path: Path,
) -> None:
    _fake_install(tmp_path, STACK)
    root = tmp_path / "smtp-ca"
    (root / "pip" / "0123456789abcdef" / "usr").mkdir(parents=True)
    (root / "pip" / "0123456789abcdef" / MARKER_NAME).write_text("{}")
    (root / "apt" / "state" / "lists").mkdir(parents=True)
    (root / "pycache" / "usr" / "lib").mkdir(parents=True)
    (root / "pycache" / ".checked-hash").write_text("key\n")
    log = Log(out=io.StringIO(), err=io.StringIO())
    ensure_dependencies(root, stack=STACK, env_dir=None, lock_file=LOCK, log=log)
    assert sorted(path.name for path in root.iterdir()) == ["python-deps", "stack"]

    # A directory of those names that earlier versions did not make is someone else's.
    (root / "pip" / "notes").mkdir(parents=True)
    (root / "pycache").mkdir()
    ensure_dependencies(root, stack=STACK, env_dir=None, lock_file=LOCK, log=log)
    assert (root / "pip" / "notes").is_dir() and (root / "pycache").is_dir()


def test_a_full_disk_is_named_in_the_buildpacks_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which directory filled up: the one with less room left (tests/e2e/test_dependency_install.py
    fills a real one)."""
    import tempfile

    layout = Layout(tmp_path / "smtp-ca")
    hint = "Clear the build cache and build again."
    temporary = Path(tempfile.gettempdir())
    free = {layout.deps: 0, temporary: 10**9}
    monkeypatch.setattr(bootstrap, "_free_bytes", lambda path: free.get(path))
    error = bootstrap.no_space(layout, hint)
    assert error.message == (
        "No space left on device: the build cache filled up while the buildpack's Python "
        f"dependencies were installed into {layout.deps} (they take about "
        f"{bootstrap.INSTALLED_MEGABYTES} MB). Nothing half-installed was kept."
    )
    assert error.hint == f"Make room in the build cache for them. {hint}"
    free = {layout.deps: 10**9, temporary: 4096}
    error = bootstrap.no_space(layout, hint)
    temporary_message = error.message
    assert error.message == (
        f"No space left on device: the temporary directory {temporary} filled up while pip "
        "unpacked the buildpack's Python dependencies (about "
        f"{bootstrap.INSTALLED_MEGABYTES} MB). Nothing was installed."
    )
    assert error.hint == (
        f"Make room in {temporary}, or point TMPDIR at a directory with room, and build again."
    )
    # pip's own line names the file it could not write: that settles it, whatever is free now
    # (pip has removed its temporary files by then).
    unpacking = f"[Errno 28] No space left on device: '{temporary}/pip-unpack-x/y.whl'"
    moving = f"[Errno 28] No space left on device: '{temporary}/a' -> '{layout.deps}/.staging/a'"
    free = {layout.deps: 0, temporary: 10**9}
    assert bootstrap.no_space(layout, hint, evidence=unpacking).message == temporary_message
    free = {layout.deps: 10**9, temporary: 0}
    assert bootstrap.no_space(layout, hint, evidence=moving).message.startswith(
        "No space left on device: the build cache filled up"
    )


# --- A cache the build cannot trust: changed, or unreadable ----------------------------------


def test_a_module_changed_with_its_size_kept_is_reinstalled_with_a_warning(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cache, deps = installed_copy(cold, tmp_path)
    module = deps / "cryptography" / "__init__.py"
    original = module.read_bytes()
    module.write_bytes(b"(" * len(original))  # same size: a SyntaxError on import
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=base_env)
    assert run.returncode == 0, run.output
    assert (
        f" !     Warning: The cached dependencies in {deps} cannot be trusted: "
        "cryptography/__init__.py changed since it was installed. Reinstalling them."
    ) in run.stderr
    assert "-----> Installing the buildpack's Python dependencies" in run.stdout
    assert module.read_bytes() == original
    # The next build trusts what this one installed.
    again = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=base_env)
    assert again.stdout.splitlines()[0] == "-----> Using cached dependencies", again.output


def test_an_unreadable_cache_it_cannot_rebuild_is_named_with_the_real_cause() -> None:
    """A cached module nobody may read, in a cache directory the build may not change: the
    build says which directory and why (not "File exists", not an internal error later)."""
    with sandbox("smtp-ca-unreadable-") as box:
        lock = box.root / LOCK.name
        shutil.copyfile(LOCK, lock)
        lock.chmod(0o644)
        target = _fake_install(box.root, STACK)
        (target / "requests" / "__init__.py").chmod(0o000)
        (target / MARKER_NAME).chmod(0o644)
        deps = target.parent
        for directory in (target / "requests", target, deps):
            directory.chmod(0o555)
        runner = (
            "import sys; from pathlib import Path\n"
            "from smtp_ca.dependencies.install import ensure_dependencies\n"
            "from smtp_ca.errors import BuildError\n"
            "from smtp_ca.output import Log\n"
            "try:\n"
            "    ensure_dependencies(Path(sys.argv[1]), stack=sys.argv[2], env_dir=None,\n"
            "                        lock_file=Path(sys.argv[3]), log=Log())\n"
            "except BuildError as error:\n"
            "    print('ERROR', error.message)\n"
        )
        completed = box.python(runner, str(box.root / "smtp-ca"), STACK, str(lock))
        output = completed.stdout + completed.stderr
        assert "Traceback" not in output
        assert (
            "cannot be trusted: requests/__init__.py cannot be read (Permission denied)"
            in unwrap(completed.stderr)
        ), output
        assert (
            f"ERROR Could not install the buildpack's Python dependencies into the build cache "
            f"{deps}: Permission denied ("
        ) in completed.stdout, output
        assert "File exists" not in output
