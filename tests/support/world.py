"""Everything outside the buildpack that an end-to-end build needs, as one reusable fixture.

tests/conftest.py makes one per test run (the session-wide ``world`` fixture): a pip-less
python3, the local wheelhouse, and a local HTTPS server standing in for the CA's website.
One cold build fills a dependency cache; each build then starts from a copy of it::

    with open_world(fixture_dir(request, tmp_path_factory, "world")) as world:
        world.publish("/provider-bundle.crt", root.pem)
        result = world.build(tmp_path, {**world.bundle_vars("/provider-bundle.crt"), ...})
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

from support.bundle_vars import pinned_bundle_vars
from support.godaddy import GODADDY_BUNDLE, GODADDY_SHA256
from support.heroku import (
    BuildResult,
    build_environment,
    clean_buildpack_copy,
    compile_app,
    offline_overrides,
    write_env_dir,
)
from support.http_server import LocalServer
from support.offline_inputs import Inputs, load_inputs
from support.pipless_python import make_pipless_python


def godaddy_vars() -> dict[str, str]:
    """The real GoDaddy bundle, read from disk: tests never reach the internet."""
    return {
        "SMTP_CA_BUNDLE_URL": GODADDY_BUNDLE.as_uri(),
        "SMTP_CA_BUNDLE_SHA256": GODADDY_SHA256,
    }


@dataclass(frozen=True)
class World:
    inputs: Inputs
    python_bin: Path
    bundle_server: LocalServer  # stands in for the CA's website, over HTTPS
    bundle_host_ca: Path  # what the build's requests trust for bundle_server
    warm_cache: Path

    def publish(self, path: str, body: bytes) -> None:
        self.bundle_server.serve(path, body)

    def bundle_vars(self, path: str, body: bytes) -> dict[str, str]:
        """Config vars for a bundle published at ``path``, pinned."""
        self.publish(path, body)
        return pinned_bundle_vars(self.bundle_server.url(path), body)

    def environment(self, where: Path, *, offline: bool = False) -> dict[str, str]:
        """The build process's environment, with its HOME under ``where``. ``offline``: the
        wheelhouse empty, so a build that still needs it fails (what a warm build must not
        need)."""
        env = build_environment(
            self.python_bin,
            self.inputs,
            where / "home",
            REQUESTS_CA_BUNDLE=str(self.bundle_host_ca),
        )
        if offline:
            env.update(offline_overrides(where))
        return env

    def build(
        self,
        where: Path,
        config_vars: dict[str, str],
        *,
        cache: Path | None = None,
        build_dir: Path | None = None,
        stack: str = "heroku-24",
        buildpack: Path | None = None,
        merge_output: bool = False,
    ) -> BuildResult:
        return run_build(
            self,
            where,
            config_vars,
            cache=cache,
            build_dir=build_dir,
            stack=stack,
            buildpack=buildpack,
            merge_output=merge_output,
        )


def run_build(
    world: World,
    where: Path,
    config_vars: dict[str, str],
    *,
    cache: Path | None = None,
    build_dir: Path | None = None,
    stack: str = "heroku-24",
    buildpack: Path | None = None,
    merge_output: bool = False,
) -> BuildResult:
    """bin/compile from a clean buildpack copy (or ``buildpack``), with a copy of the warm
    cache (or ``cache`` itself, to see what builds leave there). ``merge_output``: see
    support.heroku.compile_app."""
    buildpack = buildpack or clean_buildpack_copy(where / "buildpack")
    build_dir = build_dir or where / "build_0123abcd"
    build_dir.mkdir(parents=True, exist_ok=True)
    if cache is None:
        cache = where / "cache"
        shutil.copytree(world.warm_cache, cache, symlinks=True)
    env_dir = write_env_dir(where / "env", config_vars)
    env = world.environment(where)
    return compile_app(
        buildpack, build_dir, cache, env_dir, env, stack=stack, merge_output=merge_output
    )


@contextmanager
def open_bundle_server(root: Path, *, public_roots: bool) -> Iterator[tuple[LocalServer, Path]]:
    """An HTTPS server standing in for the CA's website, and the file (under ``root``) the
    build's requests trusts for that host: its CA, plus certifi's roots with ``public_roots``."""
    host_ca = trustme.CA()
    host_ca_file = root / "bundle-host-ca.pem"
    public = Path(certifi.where()).read_bytes() if public_roots else b""
    host_ca_file.write_bytes(host_ca.cert_pem.bytes() + public)
    with LocalServer(tls=host_ca) as bundle_server:
        yield bundle_server, host_ca_file


@contextmanager
def open_world(root: Path) -> Iterator[World]:
    inputs = load_inputs()
    python = make_pipless_python(root / "python")
    # The bundle's host trusted with certifi's roots too, as on Heroku (OpenSSL loads some 140
    # roots on every build; the benchmark times that too).
    with open_bundle_server(root, public_roots=True) as (bundle_server, host_ca_file):
        cold_world = World(inputs, python.parent, bundle_server, host_ca_file, root / "none")
        # One cold build fills the dependency cache that the other builds start from.
        cold = run_build(
            cold_world,
            root / "cold",
            godaddy_vars(),
            cache=root / "warm-cache",
        )
        assert cold.returncode == 0, cold.output
        yield World(inputs, python.parent, bundle_server, host_ca_file, root / "warm-cache")
