"""The CNB platform on its own: the stack from the target distro, the layers it declares and the
files it writes, without the lifecycle (test_cnb.py runs the real one)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from smtp_ca.errors import BuildError
from smtp_ca.output import Log, Redactor
from smtp_ca.pipeline import read_settings
from smtp_ca.platforms.cnb import CnbPlatform, stack_from_target
from smtp_ca.wiring import BUNDLE_HEADER, BUNDLE_PATH, INITIALIZER_PATH, commit, plan_wiring
from support.cnb import read_toml
from support.heroku import clean_buildpack_copy

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _target(name: str, version: str) -> dict[str, str]:
    return {"CNB_TARGET_DISTRO_NAME": name, "CNB_TARGET_DISTRO_VERSION": version}


@pytest.mark.parametrize(
    ("version", "stack"),
    [("22.04", "heroku-22"), ("24.04", "heroku-24"), ("26.04", "heroku-26")],
)
def test_each_current_ubuntu_is_its_heroku_stack(version: str, stack: str) -> None:
    assert stack_from_target(_target("ubuntu", version)) == stack


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (_target("ubuntu", "20.04"), "Ubuntu 20.04 (heroku-20), which is end of life"),
        (_target("ubuntu", "18.04"), "Ubuntu 18.04 (heroku-18), which is end of life"),
        (_target("debian", "12"), "The run image's distro is debian 12"),
        (_target("ubuntu", "25.10"), "The run image's distro is ubuntu 25.10"),
        ({}, "CNB_TARGET_DISTRO_NAME=(unset), CNB_TARGET_DISTRO_VERSION=(unset)"),
    ],
)
def test_any_other_distro_is_refused_by_name(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(BuildError) as raised:
        stack_from_target(environ)
    assert expected in raised.value.message
    assert "Ubuntu 22.04, 24.04 and 26.04" in raised.value.message
    assert raised.value.hint and "--builder heroku/builder:24" in raised.value.hint


def _platform(tmp_path: Path) -> CnbPlatform:
    for name in ("app", "layers", "platform/env"):
        (tmp_path / name).mkdir(parents=True)
    environ = {
        "CNB_LAYERS_DIR": str(tmp_path / "layers"),
        "CNB_PLATFORM_DIR": str(tmp_path / "platform"),
        **_target("ubuntu", "24.04"),
    }
    return CnbPlatform.from_environment(environ, tmp_path / "app")


def test_the_platform_declares_its_cache_layer_before_any_work(tmp_path: Path) -> None:
    platform = _platform(tmp_path)
    assert platform.cache_dir == tmp_path / "layers" / "cache"
    assert platform.cache_dir.is_dir()
    assert read_toml(tmp_path / "layers" / "cache.toml") == {
        "types": {"launch": False, "build": False, "cache": True}
    }
    assert platform.config_dir == tmp_path / "platform" / "env"
    assert platform.raw_stack() == "heroku-24"


@pytest.mark.parametrize("missing", ["CNB_LAYERS_DIR", "CNB_PLATFORM_DIR"])
def test_outside_a_lifecycle_the_missing_variable_is_named(tmp_path: Path, missing: str) -> None:
    environ = {"CNB_LAYERS_DIR": str(tmp_path), "CNB_PLATFORM_DIR": str(tmp_path)}
    del environ[missing]
    with pytest.raises(BuildError, match=f"^{missing} not set"):
        CnbPlatform.from_environment(environ, tmp_path)


def test_config_vars_come_from_the_platform_env_dir_with_classic_rules(tmp_path: Path) -> None:
    platform = _platform(tmp_path)
    env = tmp_path / "platform" / "env"
    (env / "SMTP_SERVER").write_text("smtp.example.test")
    (env / "DATABASE_URL").write_text("postgres://not-ours")
    log = Log(Redactor())
    settings = read_settings(platform, log)
    assert settings.smtp_server == "smtp.example.test"
    assert settings.stack == "heroku-24"

    (env / "SMTP_PORT").mkdir()
    with pytest.raises(BuildError) as raised:
        read_settings(platform, log)
    assert "SMTP_PORT in the platform's env/ directory is a directory" in raised.value.message


def test_wiring_writes_the_app_files_and_the_ca_file_layer(tmp_path: Path) -> None:
    platform = _platform(tmp_path)
    app = tmp_path / "app"
    (app / "config").mkdir()
    commit(app, plan_wiring(app, PEM, platform.runtime_files(BUNDLE_PATH)))

    assert (app / BUNDLE_PATH).read_bytes() == BUNDLE_HEADER + PEM
    assert (app / INITIALIZER_PATH).is_file()
    assert not (app / ".profile.d").exists()  # never sourced on CNB
    layers = tmp_path / "layers"
    assert read_toml(layers / "ca-file.toml") == {
        "types": {"launch": True, "build": True, "cache": False}
    }
    written = {
        str(path.relative_to(layers / "ca-file")): path.read_bytes()
        for path in sorted((layers / "ca-file").rglob("*"))
        if path.is_file()
    }
    bundle = str(app / BUNDLE_PATH).encode()
    assert written == {
        "env.build/BULK_SMTP_CA_FILE.default": bundle,
        "env.build/SMTP_CA_FILE.default": bundle,
        "env.launch/BULK_SMTP_CA_FILE.default": bundle,
        "env.launch/SMTP_CA_FILE.default": bundle,
    }
    assert platform.runtime_bundle_path(BUNDLE_PATH) == str(app / BUNDLE_PATH)


def test_a_restored_metadata_only_declaration_is_replaced(tmp_path: Path) -> None:
    platform = _platform(tmp_path)
    restored = tmp_path / "layers" / "ca-file.toml"
    restored.write_text("")  # what the restorer leaves of last build's launch layer
    app = tmp_path / "app"
    commit(app, plan_wiring(app, PEM, platform.runtime_files(BUNDLE_PATH)))
    assert read_toml(restored)["types"] == {"launch": True, "build": True, "cache": False}


def test_cnb_detect_passes_and_plans_nothing(tmp_path: Path) -> None:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    (tmp_path / "app").mkdir()
    environ = {"PATH": os.environ["PATH"], "CNB_BUILDPACK_DIR": str(buildpack)}
    cnb = subprocess.run(
        [buildpack / "bin" / "detect", tmp_path / "platform", tmp_path / "plan.toml"],
        cwd=tmp_path / "app",
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cnb.returncode == 0
    assert not (tmp_path / "plan.toml").exists()  # nothing required or provided


def test_bin_build_outside_a_lifecycle_says_what_it_needs(tmp_path: Path) -> None:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    completed = subprocess.run(
        [buildpack / "bin" / "build"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "CNB_LAYERS_DIR and" in completed.stderr and "bin/compile" in completed.stderr


def test_a_broken_cache_layer_says_how_cnb_users_clear_the_cache(tmp_path: Path) -> None:
    from smtp_ca import pipeline

    platform = _platform(tmp_path)
    platform.cache_dir.rmdir()
    platform.cache_dir.write_text("a file where the cache layer must be\n")
    with pytest.raises(BuildError) as raised:
        pipeline.load_dependencies(
            platform.cache_dir,
            what=f"{platform.cache_dir_name} {platform.cache_dir}",
            hint=platform.cache_reset_hint,
            stack="heroku-24",
            config_dir=platform.config_dir,
            log=Log(Redactor()),
        )
    assert raised.value.message.startswith(f"The cache layer {platform.cache_dir} cannot be")
    assert raised.value.hint == (
        "Clear the build cache and build again: heroku builds:cache:purge on Heroku Fir, "
        "pack build --clear-cache with pack."
    )
