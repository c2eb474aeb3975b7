"""Golden build logs, in the style of Heroku's Hatchet specs: the whole log a user reads.

Each test runs bin/compile as Heroku does (support.world) against real loopback servers, merges
stdout and stderr in the order they were written (as Heroku's build log shows them), normalises
what changes between runs (support.golden) and compares the result with a file in tests/golden/,
which shows the log wrapped as it prints (lines of at most 80 columns, see smtp_ca.output).
A change to what users read then shows up in review as a diff of those files. After an intended
change, rewrite them and read the diff:

    SMTP_CA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/e2e/test_golden_logs.py

The builds: a first build of a Mastodon app (its dependencies installed from an empty cache,
the provider's bundle fetched, its server checked, its CRLs read and OCSP asked), the same app
built again from that cache, a passing build with the warnings a careless configuration gets,
a strict check that fails, and a config var that fails the build.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.bundle_vars import pinned_bundle_vars
from support.certs import Issued, make_root
from support.crl import make_crl
from support.golden import GOLDEN_DIR, assert_matches_golden, normalise
from support.heroku import BuildResult, snapshot
from support.http_server import LocalServer
from support.ocsp_responder import OcspResponder
from support.offline_inputs import REPO
from support.pki import issue, server_context
from support.rails_app import make_rails_app, smtp_config_vars
from support.scratch import fixture_dir
from support.smtp_server import SMTPTestServer
from support.world import World
from support.wrapped_log import too_wide

pytestmark = pytest.mark.e2e

PASSWORD = "SG.golden-s3cret-never-printed"
LOGIN = "apikey"
BUNDLE_PATH = "/provider-root.crt"
BUNDLE_ETAG = '"golden-v1"'


@dataclass(frozen=True)
class Provider:
    """A mail provider as the builds meet it: a root in its published bundle, an intermediate
    its server sends, a leaf that names an OCSP responder, the CRL each certificate names,
    and the STARTTLS server."""

    root: Issued
    server: SMTPTestServer
    responder: OcspResponder

    def config_vars(self, world: World) -> dict[str, str]:
        world.bundle_server.serve(BUNDLE_PATH, self.root.pem, etag=BUNDLE_ETAG)
        return {
            **smtp_config_vars(
                "localhost", self.server.port, login=LOGIN, password=PASSWORD, auth_method="plain"
            ),
            **pinned_bundle_vars(world.bundle_server.url(BUNDLE_PATH), self.root.pem),
        }


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    root = make_root("smtp-ca Golden Provider Root CA")
    with LocalServer() as crls:
        intermediate = issue(
            "smtp-ca Golden Provider Issuing CA", root, ca=True, crl=crls.url("/root-ca.crl")
        )
        crls.serve("/root-ca.crl", make_crl(root))
        crls.serve("/issuing-ca.crl", make_crl(intermediate))
        with OcspResponder(intermediate) as responder:
            leaf = issue(
                "localhost",
                intermediate,
                hostnames=("localhost",),
                ocsp=responder.url,
                crl=crls.url("/issuing-ca.crl"),
            )
            with SMTPTestServer(
                mode="starttls",
                ssl_context=server_context(leaf, intermediate),
                credentials=(LOGIN, PASSWORD),
            ) as server:
                yield Provider(root, server, responder)


def _log(build: BuildResult, where: Path, world: World) -> str:
    assert PASSWORD not in build.raw_output
    assert "Traceback" not in build.output
    assert not too_wide(build.raw_stdout), build.raw_stdout
    return normalise(
        build.raw_stdout,
        [
            (where, "<TMP>"),
            (world.warm_cache.parent, "<WORLD>"),
            (REPO, "<REPO>"),
        ],
    )


@dataclass(frozen=True)
class FirstAndSecond:
    first: BuildResult
    second: BuildResult
    where: Path


@pytest.fixture(scope="module")
def first_and_second(
    world: World,
    provider: Provider,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> FirstAndSecond:
    """A first build from an empty cache, then the next build of the same app from that cache.
    Each starts from a fresh copy of the app, as Heroku's build directory is."""
    where = fixture_dir(request, tmp_path_factory, "golden-first-and-second")
    cache = where / "cache"
    cache.mkdir()
    config_vars = provider.config_vars(world)
    builds = []
    for name in ("first", "second"):
        build_dir = make_rails_app(where / name / "build_0123abcd", "mastodon-3.5")
        builds.append(
            world.build(
                where / name, config_vars, cache=cache, build_dir=build_dir, merge_output=True
            )
        )
    return FirstAndSecond(builds[0], builds[1], where)


def test_first_build(world: World, first_and_second: FirstAndSecond) -> None:
    build = first_and_second.first
    assert build.returncode == 0, build.output
    assert_matches_golden("first-build.log", _log(build, first_and_second.where, world))


def test_warm_build(world: World, first_and_second: FirstAndSecond) -> None:
    build = first_and_second.second
    assert build.returncode == 0, build.output
    assert_matches_golden("warm-build.log", _log(build, first_and_second.where, world))


def test_passing_build_with_warnings(world: World, provider: Provider, tmp_path: Path) -> None:
    """An unpinned bundle URL, SMTP_TLS=false and a misspelt SMTP_CA_ variable: each gets its
    warning, and the build passes. SMTP_OPENSSL_VERIFY_MODE is unset too: the initializer fills
    in peer at delivery, which a detail line says."""
    config_vars = provider.config_vars(world)
    del config_vars["SMTP_CA_BUNDLE_SHA256"]
    del config_vars["SMTP_OPENSSL_VERIFY_MODE"]
    config_vars |= {"SMTP_TLS": "false", "SMTP_CA_CHEK": "strict"}
    build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")
    build = world.build(tmp_path, config_vars, build_dir=build_dir, merge_output=True)
    assert build.returncode == 0, build.output
    assert_matches_golden("passing-build-with-warnings.log", _log(build, tmp_path, world))


def test_strict_check_fails(world: World, provider: Provider, tmp_path: Path) -> None:
    """The provider's bundle, but a server whose chain no bundle anchors."""
    stranger = make_root("smtp-ca Golden Stranger Root CA")
    leaf = issue("localhost", stranger, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
        config_vars = {
            **provider.config_vars(world),
            "SMTP_PORT": str(server.port),
            "SMTP_CA_CHECK": "strict",
        }
        build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")
        before = snapshot(build_dir)
        build = world.build(tmp_path, config_vars, build_dir=build_dir, merge_output=True)
    assert build.returncode == 1, build.output
    assert snapshot(build_dir) == before
    assert_matches_golden("strict-check-fails.log", _log(build, tmp_path, world))


def test_bad_config_var(world: World, provider: Provider, tmp_path: Path) -> None:
    config_vars = {**provider.config_vars(world), "SMTP_PORT": "smtp"}
    build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")
    before = snapshot(build_dir)
    build = world.build(tmp_path, config_vars, build_dir=build_dir, merge_output=True)
    assert build.returncode == 1, build.output
    assert snapshot(build_dir) == before
    assert_matches_golden("bad-config-var.log", _log(build, tmp_path, world))


@pytest.mark.parametrize("name", sorted(path.name for path in GOLDEN_DIR.glob("*.log")))
def test_golden_files_show_the_log_wrapped_as_it_prints(name: str) -> None:
    """Each file holds the log's wrapped form: no line wider than the log writes, and the
    logical lines wrapped again as the log wraps them give the file back."""
    text = (GOLDEN_DIR / name).read_text(encoding="utf-8")
    assert not too_wide(text)
    assert normalise(text) == text
