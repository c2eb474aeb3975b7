"""Builds that share a cache (issue 19, "Faults"): they take turns on it, a build waits for the
lock no longer than its bound, and the next build removes what a killed one left.

Every build runs the real bin/compile, with the session's ``world`` for the stand-ins of the
internet; the caches are made here, cold or copied from the world's warm one.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from smtp_ca.cache.lock import WAIT_VARIABLE, cache_lock
from smtp_ca.output import Log
from support.heroku import BuildResult, clean_buildpack_copy, compile_app, write_env_dir
from support.world import World, godaddy_vars

BUNDLE = Path(".smtp-ca") / "ca-bundle.pem"


def _build(
    world: World, where: Path, buildpack: Path, cache: Path, **environment: str
) -> BuildResult:
    build_dir = where / "build_0123abcd"
    build_dir.mkdir(parents=True, exist_ok=True)
    env_dir = write_env_dir(where / "env", godaddy_vars())
    env = {**world.environment(where), **environment}
    return compile_app(buildpack, build_dir, cache, env_dir, env, merge_output=True, timeout=240)


def _buildpack_and_warm_cache(world: World, tmp_path: Path) -> tuple[Path, Path]:
    """A clean copy of the buildpack and a copy of the world's warm cache, both the test's own."""
    cache = tmp_path / "cache"
    shutil.copytree(world.warm_cache, cache, symlinks=True)
    return clean_buildpack_copy(tmp_path / "buildpack"), cache


@pytest.mark.e2e
def test_four_cold_builds_sharing_one_cache_all_succeed_with_the_same_bundle(
    world: World, tmp_path: Path
) -> None:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    builds = [tmp_path / f"build-{number}" for number in range(4)]

    with ThreadPoolExecutor(max_workers=len(builds)) as pool:
        results = list(pool.map(lambda where: _build(world, where, buildpack, cache), builds))

    for result in results:
        assert result.returncode == 0, result.output
    bundles = {(result.build_dir / BUNDLE).read_bytes() for result in results}
    assert len(bundles) == 1
    # One build installed the dependencies; the others waited for it and used them.
    installs = [
        result for result in results if "Installing the buildpack's Python" in result.output
    ]
    assert len(installs) == 1, [result.output for result in results]
    waited = [
        result for result in results if "Waiting for another build using the cache" in result.output
    ]
    assert waited


@pytest.mark.e2e
def test_a_build_waits_for_the_lock_no_longer_than_its_bound_and_says_why(
    world: World, tmp_path: Path
) -> None:
    buildpack, cache = _buildpack_and_warm_cache(world, tmp_path)
    lock_file = cache / "smtp-ca" / ".lock"
    bound = 2.0

    with lock_file.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another build, still running
        started = time.monotonic()
        result = _build(world, tmp_path / "waiting", buildpack, cache, **{WAIT_VARIABLE: "2"})
        elapsed = time.monotonic() - started

    assert result.returncode != 0
    assert elapsed < bound + 5  # the interpreter's start and the settings, generously
    assert elapsed >= bound
    smtp_ca_cache = (cache / "smtp-ca").resolve()
    assert result.output.splitlines()[-3:] == [
        "       Waiting for another build using the cache ...",
        f" !     CACHE_DIR {smtp_ca_cache} is in use by another build: it still held the lock "
        f"{smtp_ca_cache}/.lock after 2 s. Builds that share a cache take turns on it.",
        " !     Wait for the other build to finish and build again, or give this build a "
        f"CACHE_DIR of its own. {WAIT_VARIABLE} sets how many seconds a build waits.",
    ]
    assert "Traceback" not in result.output
    assert not (result.build_dir / ".smtp-ca").exists()


@pytest.mark.e2e
def test_the_next_build_removes_what_a_killed_build_left_in_the_app_and_the_cache(
    world: World, tmp_path: Path
) -> None:
    buildpack, cache = _buildpack_and_warm_cache(world, tmp_path)
    where = tmp_path / "next"
    build_dir = where / "build_0123abcd"
    # What a build killed during wiring leaves in the app, and one killed just before the
    # cached source was renamed into place leaves in the cache.
    staging = build_dir / ".smtp-ca-staging-k1ll3d"
    (staging / "new-0").parent.mkdir(parents=True)
    (staging / "new-0").write_text("half-written\n")
    stray_source = cache / "smtp-ca" / "bundle" / ".source.pem.k1ll3d.tmp"
    stray_source.write_bytes(b"-----BEGIN CERT")
    # ... and one killed while a CRL was arriving leaves its partial download.
    stray_crl = cache / "smtp-ca" / "crl" / ".0123abcd.crl.k1ll3d.tmp"
    stray_crl.parent.mkdir()
    stray_crl.write_bytes(b"\x30\x84" + b"\x00" * 1024)
    stray_staging = cache / "smtp-ca" / "python-deps" / ".staging-0123456789abcdef-4242"
    stray_staging.mkdir()
    (stray_staging / "half.py").write_text("")

    result = _build(world, where, buildpack, cache)

    assert result.returncode == 0, result.output
    assert not staging.exists()
    assert not list(build_dir.glob(".smtp-ca-staging-*"))
    assert not stray_source.exists()
    assert not stray_crl.exists()
    assert not stray_staging.exists()
    assert (build_dir / BUNDLE).is_file()


def test_a_cache_where_no_lock_file_can_be_made_is_used_without_one(tmp_path: Path) -> None:
    """As before the lock existed: the cache code then names what is wrong with the cache."""
    not_a_directory = tmp_path / "CACHE_DIR"
    not_a_directory.write_text("a file where the cache must be\n")
    ran = []

    with cache_lock(not_a_directory / "smtp-ca", what="CACHE_DIR", wait=0.1, log=Log()):
        ran.append(True)

    assert ran == [True]
