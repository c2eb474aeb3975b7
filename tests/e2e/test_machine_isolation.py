"""The machine a build runs on (issue 19): its site-packages, its Python variables and its
umask do not change what the build runs or the modes of what it writes.

bin/compile runs as tests/e2e/test_compile.py runs it (a clean copy of the buildpack, BUILD_DIR,
CACHE_DIR, ENV_DIR, STACK, a python3 without pip), but with a python3 of this test's own whose
site-packages hold what an odd machine may hold.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import certifi
import pytest

from support.certs import make_root
from support.godaddy import GODADDY_BUNDLE
from support.heroku import clean_buildpack_copy, compile_app, write_env_dir
from support.pipless_python import make_pipless_python
from support.world import World, godaddy_vars

pytestmark = pytest.mark.e2e

BUNDLE = ".smtp-ca/ca-bundle.pem"
FOREIGN_CERTIFI_VERSION = "2000.01.01"
FOREIGN_CERTIFI = f'''\
"""A certifi that is not the pinned one, as a machine's site-packages may hold."""
from pathlib import Path

__version__ = "{FOREIGN_CERTIFI_VERSION}"


def where():
    return str(Path(__file__).with_name("cacert.pem"))


def contents():
    return Path(where()).read_text(encoding="ascii")
'''


def _purelib(python: Path) -> Path:
    return Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


def _odd_machine_python(where: Path) -> tuple[Path, Path]:
    """A python3 whose site-packages preload a foreign certifi through a .pth file, and a
    directory holding that certifi, for PYTHONPATH. Returns (python3's bin dir, the dir)."""
    python = make_pipless_python(where / "python")
    (where / "sitecustomize-ran").unlink(missing_ok=True)  # make_pipless_python ran no site
    packages = where / "machine-packages"
    (packages / "certifi").mkdir(parents=True)
    (packages / "certifi" / "__init__.py").write_text(FOREIGN_CERTIFI)
    (packages / "certifi" / "cacert.pem").write_bytes(make_root("Machine Site Root").pem)
    site = _purelib(python)
    (site / "machine.pth").write_text(
        f"import sys; sys.path.insert(0, {str(packages)!r}); import certifi\n"
    )
    # Runs in every python3 started with site (it leaves a mark): the build's must not be one.
    (site / "sitecustomize.py").write_text(
        f"from pathlib import Path\nPath({str(where / 'sitecustomize-ran')!r}).touch()\n"
    )
    return python.parent, packages


def test_the_pinned_dependencies_run_whatever_the_machine_s_python_holds(
    world: World, tmp_path: Path
) -> None:
    python_bin, packages = _odd_machine_python(tmp_path / "machine")
    env = world.environment(tmp_path)
    env.update(
        PATH=f"{python_bin}:{env['PATH']}",
        PYTHONPATH=str(packages),
        PYTHONSTARTUP=str(packages / "certifi" / "__init__.py"),
        PYTHONUSERBASE=str(tmp_path / "user-base"),
    )
    build_dir = tmp_path / "build_0123abcd"
    build_dir.mkdir()
    cache = tmp_path / "cache"
    subprocess.run(["cp", "-a", str(world.warm_cache), str(cache)], check=True)

    result = compile_app(
        clean_buildpack_copy(tmp_path / "buildpack"),
        build_dir,
        cache,
        write_env_dir(tmp_path / "env", {**godaddy_vars(), "SMTP_CA_CHECK": "off"}),
        env,
    )

    assert result.returncode == 0, result.output
    # The tests' own certifi is the pinned one (requirements-dev.lock holds the same pin).
    assert f"public roots from certifi {certifi.__version__}:" in result.stdout, result.output
    assert FOREIGN_CERTIFI_VERSION not in result.output
    assert not (tmp_path / "machine" / "sitecustomize-ran").exists()
    bundle = (build_dir / BUNDLE).read_bytes()
    assert make_root("Machine Site Root").pem not in bundle
    assert b"Machine Site Root" not in bundle
    assert GODADDY_BUNDLE.read_bytes().split(b"-----END CERTIFICATE-----")[0] in bundle


def _loose_modes(root: Path) -> list[str]:
    """Every entry under ``root`` that someone other than its owner may write."""
    loose = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            loose.append(f"{stat.filemode(mode)} {path.relative_to(root)}")
    return loose


def test_under_umask_000_what_the_build_writes_is_writable_by_its_owner_only(
    world: World, tmp_path: Path
) -> None:
    """A cold build (pip, bytecode, the bundle cache) and the app's files, from a shell whose
    umask is 000: modes are set, not inherited."""
    build_dir = tmp_path / "build_0123abcd"
    (build_dir / "config").mkdir(parents=True)  # a Rails app: the initializer and check.rb
    cache = tmp_path / "cache"
    cache.mkdir()
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    env_dir = write_env_dir(tmp_path / "env", {**godaddy_vars(), "SMTP_CA_CHECK": "off"})
    env = world.environment(tmp_path)
    completed = subprocess.run(
        [
            "bash",
            "-c",
            'umask 000 && exec "$@"',
            "umask-000",
            str(buildpack / "bin" / "compile"),
            str(build_dir),
            str(cache),
            str(env_dir),
        ],
        env={**env, "STACK": "heroku-24"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    for written in (".smtp-ca", ".profile.d", "config/initializers"):
        assert (build_dir / written).is_dir(), written
    assert _loose_modes(build_dir) == []
    cached = _loose_modes(cache / "smtp-ca")
    assert cached == [], f"{len(cached)} cache entries writable by others: {cached[:5]}"
    assert (build_dir / BUNDLE).stat().st_mode & 0o777 == 0o644
    assert (build_dir / ".smtp-ca" / "check.rb").stat().st_mode & 0o777 == 0o755
