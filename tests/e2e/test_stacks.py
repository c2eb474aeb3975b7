"""A cold build with the python3 of each stack's build image, where this machine has it.

Heroku's build images have different Pythons (heroku-22 3.10, heroku-24 3.12, heroku-26 3.14)
and none has pip. Each build here starts from an empty CACHE_DIR with a pip-less venv of that
version, so the bootstrap runs the buildpack's own pip wheel with it and installs that version's
wheels, and the whole pipeline runs on it, handshake check included. A version this machine
lacks is skipped, with the reason (a failure with CI=true); heroku-26's 3.14 then builds inside
the Debian sid chroot instead (support.heroku26), as a root machine with .ci/prepare-chroots run
has it. Only ``bash scripts/test --all`` runs these: a fresh Debian 12 has none of these Pythons.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trustme

from support.chroots import ChrootSession, require_chroot
from support.heroku import build_environment, clean_buildpack_copy, compile_app, write_env_dir
from support.heroku26 import Heroku26Build
from support.interpreters import STACK_PYTHONS, find_python
from support.offline_inputs import skip_or_fail
from support.pipless_python import make_pipless_python
from support.rails_app import smtp_config_vars
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = [pytest.mark.e2e, pytest.mark.needs_other_pythons]


@pytest.mark.parametrize(
    ("stack", "version"),
    [
        # heroku-26's 3.14 builds inside the sid chroot where the machine has no python3.14.
        pytest.param(
            stack, version, marks=[pytest.mark.needs_chroots] if stack == "heroku-26" else []
        )
        for stack, version in sorted(STACK_PYTHONS.items())
    ],
)
def test_cold_build_with_the_stacks_python(
    world: World, tmp_path: Path, stack: str, version: str
) -> None:
    base = find_python(version)
    if base is None and stack == "heroku-26":
        build_heroku_26_in_sid(world, tmp_path)
        return
    if base is None:
        skip_or_fail(
            f"needs Python {version}, the python3 of {stack}, as python{version} on PATH or in "
            f"pyenv's versions/ (`pyenv install {version}`): then run "
            "`bash .ci/prepare-test-inputs` for its wheels"
        )
    python = make_pipless_python(tmp_path / "python", base)
    provider = trustme.CA()
    bundle_vars = world.bundle_vars(f"/{stack}.crt", provider.cert_pem.bytes())
    build_dir = tmp_path / "build_0123abcd"
    (build_dir / "config").mkdir(parents=True)
    cache = tmp_path / "cache"
    with SMTPTestServer(mode="starttls", ca=provider) as server:
        env_dir = write_env_dir(
            tmp_path / "env",
            {
                **smtp_config_vars("localhost", server.port),
                **bundle_vars,
                "SMTP_CA_CHECK": "strict",
            },
        )
        env = build_environment(
            python.parent,
            world.inputs,
            tmp_path / "home",
            REQUESTS_CA_BUNDLE=str(world.bundle_host_ca),
        )
        build = compile_app(
            clean_buildpack_copy(tmp_path / "buildpack"),
            build_dir,
            cache,
            env_dir,
            env,
            stack=stack,
        )
    assert build.returncode == 0, build.output
    assert re.search(r"\(\d+ packages\) with pip \S+ in ", build.stdout), build.output
    assert f"localhost:{server.port} (STARTTLS): verified" in build.stdout
    assert (build_dir / ".smtp-ca" / "ca-bundle.pem").is_file()
    assert (build_dir / "config" / "initializers" / "smtp_ca.rb").is_file()
    # The compiled parts of the dependencies are that Python's own.
    tag = "cpython-" + version.replace(".", "")
    assert list((cache / "smtp-ca" / "python-deps").glob(f"*/markupsafe/_speedups.{tag}-*.so"))


def build_heroku_26_in_sid(world: World, tmp_path: Path) -> None:
    """The same cold build with sid's python3.14."""
    session = ChrootSession(require_chroot("sid"), tmp_path / "sid")
    provider = trustme.CA()
    heroku26 = Heroku26Build(session, world.inputs)
    with SMTPTestServer(mode="starttls", ca=provider) as server:
        build = heroku26.compile(
            "app",
            {
                **smtp_config_vars("localhost", server.port),
                **heroku26.bundle_vars("provider.pem", provider.cert_pem.bytes()),
                "SMTP_CA_CHECK": "strict",
            },
        )
    assert build.returncode == 0, build.stdout + build.stderr
    assert re.search(r"\(\d+ packages\) with pip \S+ in ", build.stdout), build.stdout
    assert f"localhost:{server.port} (STARTTLS): verified" in build.stdout
    app = heroku26.app("app")
    assert (app / ".smtp-ca" / "ca-bundle.pem").is_file()
    assert (app / "config" / "initializers" / "smtp_ca.rb").is_file()
    deps = session.path("/cache/smtp-ca/python-deps")
    assert list(deps.glob("*/markupsafe/_speedups.cpython-314-*.so"))
