"""What the buildpack takes for its cache, and what it leaves alone (issue 24, Data).

bin/check keeps its cache where SMTP_CA_CACHE_DIR says, a directory a user may name by
mistake: it removed ``python-deps/`` and overwrote ``stack`` there, and with another STACK
also removed ``pip/`` and ``apt/``. It now takes a directory only when it is new or empty, or
carries the buildpack's CACHEDIR.TAG (or the layout an earlier bin/check left), and refuses
anything else by name before writing a byte. A build's own cache (CACHE_DIR/smtp-ca, the CNB
cache layer) is the buildpack's by the platform's contract; a symbolic link there is refused
instead of followed, by bin/compile's and bin/build's bash (the bytecode cache) and by Python.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from smtp_ca.cache.layout import TAG
from smtp_ca.cache.owner import claim
from smtp_ca.errors import BuildError
from smtp_ca.platforms.cnb import CnbPlatform
from support.heroku import clean_buildpack_copy, compile_app, snapshot, write_env_dir
from support.offline_inputs import REPO
from support.smtp_server import free_port
from support.world import World, godaddy_vars
from support.wrapped_log import unwrap

SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
USE_ANOTHER = "Set SMTP_CA_CACHE_DIR to a new or empty directory, which bin/check makes its own."


def users_directory(root: Path) -> Path:
    """A directory of the user's that happens to hold the names the buildpack uses."""
    root.mkdir(parents=True)
    (root / "notes.txt").write_text("mine\n")
    (root / "stack").write_text("my stack of papers\n")
    for name in ("python-deps", "pip", "apt"):
        (root / name).mkdir()
        (root / name / "keep.txt").write_text(f"my {name}\n")
    return root


def everything_in(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: files with their bytes, directories as None."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.e2e
@pytest.mark.parametrize("stack", ["heroku-24", "heroku-22"])
def test_bin_check_refuses_a_directory_of_the_users_and_touches_nothing_in_it(
    world: World, tmp_path: Path, stack: str
) -> None:
    cache = users_directory(tmp_path / "my files")
    before = everything_in(cache)
    any_bundle = tmp_path / "any.pem"
    any_bundle.write_text("not used\n")
    completed = subprocess.run(
        [str(REPO / "bin" / "check"), f"127.0.0.1:{free_port()}", "--ca-file", str(any_bundle)],
        env={**world.environment(tmp_path), "STACK": stack, "SMTP_CA_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert unwrap(completed.stderr).splitlines() == [
        f" !     The cache directory {cache} holds files bin/check did not make (notes.txt). "
        "bin/check removes and replaces what is in its cache, so it keeps it in a directory "
        "of its own, and leaves this one as it is.",
        f" !     {USE_ANOTHER}",
    ]
    assert completed.stdout == ""
    assert everything_in(cache) == before  # nothing removed, overwritten or added (.lock)


def test_bin_check_takes_a_new_or_empty_directory_and_tags_it(tmp_path: Path) -> None:
    for directory in (tmp_path / "new" / "cache", tmp_path / "empty"):
        if directory.name == "empty":
            directory.mkdir()
        claim(directory, what="The cache directory", hint=USE_ANOTHER)
        assert [entry.name for entry in directory.iterdir()] == [TAG]
        tag = (directory / TAG).read_text()
        assert tag.startswith(f"{SIGNATURE}\n")
        assert "heroku-buildpack-smtp-ca" in tag
        (directory / "python-deps").mkdir()  # tagged: whatever it holds now is its own
        (directory / "leftover.tmp").write_text("")
        claim(directory, what="The cache directory", hint=USE_ANOTHER)


def test_two_bin_checks_taking_one_new_directory_both_take_it(tmp_path: Path) -> None:
    # The other run is writing its tag this very moment: its temporary is no stranger's file.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f".{TAG}.k2x9.tmp").write_text(SIGNATURE)
    claim(cache, what="The cache directory", hint=USE_ANOTHER)
    assert (cache / TAG).read_text().startswith(SIGNATURE)


def test_bin_check_keeps_a_cache_an_earlier_bin_check_made(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for name in ("python-deps", "pip", "bundle", "scratch"):
        (cache / name).mkdir(parents=True)
    (cache / ".lock").write_text("")
    (cache / "stack").write_text("heroku-24\n")
    claim(cache, what="The cache directory", hint=USE_ANOTHER)
    assert (cache / TAG).read_text().startswith(SIGNATURE)


@pytest.mark.parametrize(
    ("make", "listed"),
    [
        (lambda root: (root / "stack").write_text("x"), "stack"),  # no .lock: not an old cache
        (lambda root: (root / "Documents").mkdir(), "Documents"),
        # Another program's cache: the tag is the convention's, the owner line is not ours.
        (lambda root: (root / TAG).write_text(f"{SIGNATURE}\n# pip\n"), TAG),
        (lambda root: [(root / f"file{n}").write_text("") for n in range(7)], "file0, file1"),
    ],
)
def test_bin_check_refuses_what_it_does_not_recognise(
    tmp_path: Path, make: object, listed: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    make(cache)  # type: ignore[operator]
    before = everything_in(cache)
    with pytest.raises(BuildError) as error:
        claim(cache, what=f"The cache directory {cache}", hint=USE_ANOTHER)
    assert error.value.message.startswith(
        f"The cache directory {cache} holds files bin/check did not make ({listed}"
    )
    assert error.value.hint == USE_ANOTHER
    assert everything_in(cache) == before


def test_a_tag_that_is_a_link_does_not_make_a_directory_the_buildpacks(tmp_path: Path) -> None:
    real_tag = tmp_path / "tag"
    real_tag.write_text(f"{SIGNATURE}\n# heroku-buildpack-smtp-ca\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "Documents").mkdir()
    (cache / TAG).symlink_to(real_tag)
    with pytest.raises(BuildError, match="holds files bin/check did not make"):
        claim(cache, what="The cache directory", hint=USE_ANOTHER)


# --- a build's cache that is a symbolic link ----------------------------------------------------


def elsewhere(root: Path) -> Path:
    """Where a planted link points: files of someone else's, under the names the build uses."""
    target = root / "elsewhere"
    for name in ("pycache", "python-deps", "bundle"):
        (target / name).mkdir(parents=True)
        (target / name / "keep.txt").write_text("not the buildpack's\n")
    return target


@pytest.mark.e2e
def test_bin_compile_refuses_a_cache_that_is_a_link(world: World, tmp_path: Path) -> None:
    target = elsewhere(tmp_path)
    before = everything_in(target)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "smtp-ca").symlink_to(target)
    build_dir = tmp_path / "build_0123abcd"
    (build_dir / "config").mkdir(parents=True)
    app_before = snapshot(build_dir)
    result = compile_app(
        clean_buildpack_copy(tmp_path / "buildpack"),
        build_dir,
        cache,
        # A local bundle: whatever the build did, nothing would leave the machine.
        write_env_dir(tmp_path / "env", godaddy_vars()),
        world.environment(tmp_path),
        timeout=60,
    )
    assert result.returncode == 1, result.output
    assert result.stderr.splitlines() == [
        f" !     The buildpack's cache {cache / 'smtp-ca'} is a symbolic link (to {target}). "
        "The build keeps its cache in a directory of its own, and does not follow a link out "
        "of it: what it removes and writes there would land where the link points.",
        " !     Clear the build cache (heroku builds:cache:purge) and build again.",
    ]
    assert everything_in(target) == before  # the bytecode cache's rm -rf did not follow it
    assert snapshot(build_dir) == app_before


@pytest.mark.e2e
def test_bin_build_refuses_a_cache_layer_that_is_a_link(world: World, tmp_path: Path) -> None:
    target = elsewhere(tmp_path)
    before = everything_in(target)
    layers = tmp_path / "layers"
    layers.mkdir()
    (layers / "cache").symlink_to(target)
    app = tmp_path / "app"
    app.mkdir()
    write_env_dir(tmp_path / "platform" / "env", godaddy_vars())
    env = {
        **world.environment(tmp_path),
        "CNB_LAYERS_DIR": str(layers),
        "CNB_PLATFORM_DIR": str(tmp_path / "platform"),
        "CNB_TARGET_DISTRO_NAME": "ubuntu",
        "CNB_TARGET_DISTRO_VERSION": "24.04",
    }
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    result = subprocess.run(
        [str(buildpack / "bin" / "build")],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert unwrap(result.stderr).splitlines()[0] == (
        f" !     The cache layer {layers / 'cache'} is a symbolic link (to {target}). The build "
        "keeps its cache in a directory of its own, and does not follow a link out of it: what "
        "it removes and writes there would land where the link points."
    )
    assert everything_in(target) == before
    assert sorted(os.listdir(layers)) == ["cache"]  # no cache.toml, no other layer
    assert list(app.iterdir()) == []


def _cnb_environment(tmp_path: Path) -> dict[str, str]:
    for name in ("layers", "platform/env"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    return {
        "CNB_LAYERS_DIR": str(tmp_path / "layers"),
        "CNB_PLATFORM_DIR": str(tmp_path / "platform"),
        "CNB_TARGET_DISTRO_NAME": "ubuntu",
        "CNB_TARGET_DISTRO_VERSION": "24.04",
    }


def test_a_layer_declaration_that_is_a_link_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    environ = _cnb_environment(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's file\n")
    (tmp_path / "layers" / "cache.toml").symlink_to(victim)
    CnbPlatform.from_environment(environ, tmp_path)
    assert victim.read_text() == "someone's file\n"
    declaration = tmp_path / "layers" / "cache.toml"
    assert not declaration.is_symlink()
    assert "cache = true" in declaration.read_text()


@pytest.mark.parametrize("linked", ["ca-file", "ca-file/env.launch"])
def test_the_env_layer_is_refused_when_it_is_a_link(tmp_path: Path, linked: str) -> None:
    environ = _cnb_environment(tmp_path)
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "layers" / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    platform = CnbPlatform.from_environment(environ, tmp_path)
    with pytest.raises(BuildError) as error:
        platform.runtime_files(".smtp-ca/ca-bundle.pem")
    assert error.value.message.startswith(
        f"The layer directory {link} is a symbolic link (to {target})."
    )
    assert list(target.iterdir()) == []
