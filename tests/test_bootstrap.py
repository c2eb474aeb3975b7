"""The dependency bootstrap: installing the buildpack's locked dependencies with a python3 that
has no pip, from a local apt repository and wheelhouse, with no network beyond loopback.

The end-to-end tests need the inputs made by ``.ci/prepare-test-inputs`` (found through
``SMTP_CA_TEST_INPUTS``, default ``<repo>/.test-inputs``); without them
they are skipped, or fail when CI=true. One cold install is shared by the module; each test
that changes the cache works on a copy of it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtp_ca import bootstrap
from smtp_ca.bootstrap import (
    MARKER_NAME,
    dependency_key,
    ensure_dependencies,
    pip_environment,
    pip_url_secrets,
)
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from support.local_apt import LocalAptRepo, unreachable_url, write_apt_config
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

LOCK = REPO / "requirements.lock"
STACK = "heroku-22"
LOCKED = ("certifi", "cffi", "charset_normalizer", "cryptography", "idna", "jinja2", "requests")


# --- End to end: a pipless python3, a local apt repository, a local wheelhouse -------------


@dataclass(frozen=True)
class ColdInstall:
    cache_dir: Path
    run: BootstrapRun
    apt_requests: list[str]


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return load_inputs()


@pytest.fixture(scope="module")
def pipless(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pipless_python(fixture_dir(request, tmp_path_factory, "pipless"))


@pytest.fixture(scope="module")
def apt_repo(
    inputs: Inputs, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalAptRepo]:
    with LocalAptRepo(fixture_dir(request, tmp_path_factory, "apt"), inputs.debs) as repo:
        yield repo


@pytest.fixture(scope="module")
def offline_apt_config(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An apt config whose only source refuses connections: any apt-get use would fail."""
    where = fixture_dir(request, tmp_path_factory, "apt-offline")
    return write_apt_config(where, unreachable_url())


@pytest.fixture(scope="module")
def base_env(inputs: Inputs, apt_repo: LocalAptRepo) -> dict[str, str]:
    return clean_env(
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(inputs.wheelhouse),
        PIP_ROOT_USER_ACTION="ignore",
        APT_CONFIG=str(apt_repo.apt_config),
    )


@pytest.fixture(scope="module")
def cold(
    pipless: Path,
    apt_repo: LocalAptRepo,
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
    return ColdInstall(root / "cache", run, list(apt_repo.requests))


def copy_cache(cold: ColdInstall, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(cold.cache_dir, cache, symlinks=True)
    return cache


def python_deps(cache: Path) -> Path:
    return cache / "smtp-ca" / "python-deps"


def assert_clean_failure(run: BootstrapRun) -> None:
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output
    assert run.stderr.startswith(" !     "), run.stderr


def test_cold_install_fetches_pip_with_apt_and_installs_the_lock(cold: ColdInstall) -> None:
    run = cold.run
    assert run.returncode == 0, run.output
    assert "Traceback" not in run.output
    out = run.stdout
    assert "-----> Installing the buildpack's Python dependencies" in out
    assert "       Using PIP_FIND_LINKS from the app's config vars" in out
    assert "       This python3 has no pip: downloading python3-pip with apt-get" in out
    # One line for pip's work, none of pip's own.
    assert re.search(
        r"^       Installed certifi \S+, .*cryptography \S+, .* \(\d+ packages\) in \d+\.\ds$",
        out,
        re.MULTILINE,
    ), out
    for pip_line in ("Looking in links", "Collecting", "Processing", "Successfully installed"):
        assert pip_line not in out
    assert any(path.endswith(".deb") for path in cold.apt_requests), cold.apt_requests

    deps = run.deps_dir
    assert deps.parent == python_deps(cold.cache_dir)
    assert deps.name == dependency_key(STACK, LOCK.read_bytes())
    assert all((deps / name).is_dir() for name in LOCKED)
    marker = json.loads((deps / MARKER_NAME).read_text())
    assert marker["key"] == deps.name
    assert [p.name for p in python_deps(cold.cache_dir).iterdir()] == [deps.name]
    smtp_ca_cache = cold.cache_dir / "smtp-ca"
    assert (smtp_ca_cache / "stack").read_text().strip() == STACK
    # pip is kept for the next cold install; apt's lists are not worth the cache space.
    assert len(list((smtp_ca_cache / "pip").iterdir())) == 1
    assert not (smtp_ca_cache / "apt").exists()


def test_warm_build_needs_no_subprocess_network_or_wheels(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    offline_apt_config: Path,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    (tmp_path / "no-wheels").mkdir()
    env = dict(
        base_env, PIP_FIND_LINKS=str(tmp_path / "no-wheels"), APT_CONFIG=str(offline_apt_config)
    )
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
    offline_apt_config: Path,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    deps = python_deps(cache) / cold.run.deps_dir.name
    damage(deps)
    # pip comes from the cache this time: apt would fail.
    env = dict(base_env, APT_CONFIG=str(offline_apt_config))
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env)
    assert run.returncode == 0, run.output
    assert "       Using pip from the build cache" in run.stdout
    if damage is not _leave_staging_behind:
        assert "Cached dependencies are incomplete" in run.stdout
    assert run.deps_dir == deps
    assert [p.name for p in python_deps(cache).iterdir()] == [deps.name]
    assert (deps / MARKER_NAME).is_file()


def test_stack_change_is_announced_and_reinstalls(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    apt_repo: LocalAptRepo,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    old_pip = list((cache / "smtp-ca" / "pip").iterdir())
    requests_before = len(apt_repo.requests)
    run = run_bootstrap(pipless, cache_dir=cache, stack="heroku-24", lock_file=LOCK, env=base_env)
    assert run.returncode == 0, run.output
    assert (
        "       Stack changed from heroku-22 to heroku-24: "
        "reinstalling the buildpack's Python dependencies"
    ) in run.stdout
    assert run.deps_dir.name == dependency_key("heroku-24", LOCK.read_bytes())
    assert [p.name for p in python_deps(cache).iterdir()] == [run.deps_dir.name]
    # The other stack's pip is dropped too, and fetched again with this stack's apt.
    assert not any(path.exists() for path in old_pip)
    assert len(apt_repo.requests) > requests_before
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
    offline_apt_config: Path,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    lock = tmp_path / "requirements.lock"
    lock.write_text(_tamper_hashes(LOCK.read_text(), "requests"))
    env = dict(base_env, APT_CONFIG=str(offline_apt_config))
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=lock, env=env)
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
    offline_apt_config: Path,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    _remove_marker(python_deps(cache) / cold.run.deps_dir.name)
    (tmp_path / "no-wheels").mkdir()
    env = dict(
        base_env, PIP_FIND_LINKS=str(tmp_path / "no-wheels"), APT_CONFIG=str(offline_apt_config)
    )
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env)
    assert_clean_failure(run)
    assert "pip exited with status 1" in run.stderr
    assert "No matching distribution found" in run.stderr


def test_index_credentials_from_config_vars_are_never_printed(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    offline_apt_config: Path,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    _remove_marker(python_deps(cache) / cold.run.deps_dir.name)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    index = unreachable_url().replace("http://", "http://builder:s3cr3t-pass@") + "/simple"
    (env_dir / "PIP_INDEX_URL").write_text(index)
    env = {
        name: value
        for name, value in base_env.items()
        if name not in ("PIP_NO_INDEX", "PIP_FIND_LINKS")
    }
    env.update(PIP_RETRIES="0", PIP_TIMEOUT="5", APT_CONFIG=str(offline_apt_config))
    run = run_bootstrap(
        pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env, env_dir=env_dir
    )
    assert_clean_failure(run)
    assert "       Using PIP_INDEX_URL from the app's config vars" in run.stdout
    assert "pip exited with status 1" in run.stderr
    assert "s3cr3t-pass" not in run.output


def test_pip_of_the_running_python_is_used_when_it_has_one(inputs: Inputs, tmp_path: Path) -> None:
    """No apt-get at all (empty PATH): a python3 with pip must not need it."""
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
    assert "apt-get" not in run.output
    assert not (cache / "smtp-ca" / "pip").exists()
    assert run.deps_dir.parent == python_deps(cache)


def test_missing_apt_get_is_a_clear_build_error(
    pipless: Path, base_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "empty-path").mkdir()
    env = dict(base_env, PATH=str(tmp_path / "empty-path"))
    run = run_bootstrap(pipless, cache_dir=tmp_path / "cache", stack=STACK, lock_file=LOCK, env=env)
    assert_clean_failure(run)
    assert "This python3 has no pip, and apt-get and dpkg could not be found" in run.stderr


def test_unreachable_apt_sources_are_a_clear_build_error(
    pipless: Path, base_env: dict[str, str], offline_apt_config: Path, tmp_path: Path
) -> None:
    env = dict(base_env, APT_CONFIG=str(offline_apt_config))
    run = run_bootstrap(pipless, cache_dir=tmp_path / "cache", stack=STACK, lock_file=LOCK, env=env)
    assert_clean_failure(run)
    assert " !     Downloading python3-pip failed: apt-get " in run.stderr
    assert not (tmp_path / "cache" / "smtp-ca" / "apt").exists()
    assert not any((tmp_path / "cache" / "smtp-ca" / "pip").iterdir())


# --- In process: the pieces that need no pip, apt or wheels --------------------------------


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


def test_pip_settings_come_from_the_environment_first_then_config_vars(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "PIP_INDEX_URL").write_text("https://config-var.invalid/simple\n")
    (env_dir / "PIP_EXTRA_INDEX_URL").write_text("https://u:pw-from-config@extra.invalid/simple")
    (env_dir / "DATABASE_URL").write_text("postgres://not-for-pip")
    environ = {"PIP_INDEX_URL": "https://environment.invalid/simple", "PATH": "/usr/bin"}
    env, notes = pip_environment(environ, env_dir, system_ca=tmp_path / "missing.crt")
    assert env["PIP_INDEX_URL"] == "https://environment.invalid/simple"
    assert env["PIP_EXTRA_INDEX_URL"] == "https://u:pw-from-config@extra.invalid/simple"
    assert "DATABASE_URL" not in env
    assert env["PATH"] == "/usr/bin"
    assert notes == ["Using PIP_EXTRA_INDEX_URL from the app's config vars"]
    assert "PIP_CERT" not in env
    assert environ == {"PIP_INDEX_URL": "https://environment.invalid/simple", "PATH": "/usr/bin"}


def test_pip_uses_the_system_trust_store_unless_told_otherwise(tmp_path: Path) -> None:
    system_ca = tmp_path / "ca-certificates.crt"
    system_ca.write_text("PEM")
    env, _ = pip_environment({}, None, system_ca=system_ca)
    assert env["PIP_CERT"] == str(system_ca)
    env, _ = pip_environment({"REQUESTS_CA_BUNDLE": "/x.pem"}, None, system_ca=system_ca)
    assert "PIP_CERT" not in env
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "PIP_CERT").write_text("/proxy-ca.pem")
    env, _ = pip_environment({}, env_dir, system_ca=system_ca)
    assert env["PIP_CERT"] == "/proxy-ca.pem"


def test_settings_that_would_move_the_install_are_not_passed(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "PIP_REQUIRE_VIRTUALENV").write_text("1")
    env, notes = pip_environment(
        {"PIP_TARGET": "/app/lib", "PIP_USER": "1"}, env_dir, system_ca=tmp_path / "none"
    )
    assert not {"PIP_TARGET", "PIP_USER", "PIP_REQUIRE_VIRTUALENV"} & env.keys()
    assert notes == [
        "Not passing PIP_REQUIRE_VIRTUALENV, PIP_TARGET, PIP_USER to pip: "
        "the buildpack installs its own dependencies into its cache"
    ]


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
    (target / "requests" / "__pycache__").mkdir()
    (target / "requests" / "__pycache__" / "x.pyc").write_bytes(b"written by Python later")
    assert bootstrap.check_marker(target, key).trusted  # bytecode is not part of the install
    (target / "requests" / "__init__.py").write_text("")
    assert not bootstrap.check_marker(target, key).trusted


# --- A cache the build cannot trust: changed, or unreadable ----------------------------------


def test_a_module_changed_with_its_size_kept_is_reinstalled_with_a_warning(
    cold: ColdInstall,
    pipless: Path,
    base_env: dict[str, str],
    offline_apt_config: Path,
    tmp_path: Path,
) -> None:
    cache = copy_cache(cold, tmp_path)
    deps = python_deps(cache) / cold.run.deps_dir.name
    module = deps / "cryptography" / "__init__.py"
    original = module.read_bytes()
    module.write_bytes(b"(" * len(original))  # same size: a SyntaxError on import
    env = dict(base_env, APT_CONFIG=str(offline_apt_config))
    run = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env)
    assert run.returncode == 0, run.output
    assert (
        f" !     Warning: The cached dependencies in {deps} cannot be trusted: "
        "cryptography/__init__.py changed since it was installed. Reinstalling them."
    ) in run.stderr
    assert "-----> Installing the buildpack's Python dependencies" in run.stdout
    assert module.read_bytes() == original
    # The next build trusts what this one installed.
    again = run_bootstrap(pipless, cache_dir=cache, stack=STACK, lock_file=LOCK, env=env)
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
            "from smtp_ca.bootstrap import ensure_dependencies\n"
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
            in completed.stderr
        ), output
        assert (
            f"ERROR Could not install the buildpack's Python dependencies into the build cache "
            f"{deps}: Permission denied ("
        ) in completed.stdout, output
        assert "File exists" not in output
