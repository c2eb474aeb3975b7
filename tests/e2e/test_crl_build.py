"""Revocation through CRLs, end to end, as Heroku builds: bin/compile from a clean copy of the
buildpack with a pip-less python3 and config vars in ENV_DIR, against a provider whose
certificates name CRLs on a local HTTP server (as Let's Encrypt's name no OCSP responder).

A strict build fails on a leaf that only its CRL lists, naming the CRL, and writes nothing; a
passing build keeps the CRLs it read in CACHE_DIR, so the next build of the app fetches none,
and writes what it found into the app for the dyno check.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtp_ca.wiring import REVOCATION_PATH
from support.certs import Issued, make_root, utcnow
from support.crl import Revoked, make_crl
from support.heroku import snapshot
from support.http_server import LocalServer
from support.pki import issue, server_context
from support.rails_app import make_rails_app, smtp_config_vars
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e

LEAF_CRL = "/issuing-ca.crl"
ROOT_CRL = "/root-ca.crl"


@dataclass(frozen=True)
class Provider:
    root: Issued
    intermediate: Issued
    crls: LocalServer  # plain http://, as CRL distribution points are

    def leaf(self) -> Issued:
        return issue(
            "localhost", self.intermediate, hostnames=("localhost",), crl=self.crls.url(LEAF_CRL)
        )

    def config_vars(self, world: World, port: int, **extra: str) -> dict[str, str]:
        return {
            **smtp_config_vars("localhost", port),
            **world.bundle_vars("/crl-provider-root.crt", self.root.pem),
            **extra,
        }


@pytest.fixture
def provider() -> Iterator[Provider]:
    root = make_root("smtp-ca CRL Provider Root CA")
    with LocalServer() as crls:
        intermediate = issue(
            "smtp-ca CRL Provider Issuing CA", root, ca=True, crl=crls.url(ROOT_CRL)
        )
        crls.serve(ROOT_CRL, make_crl(root))
        yield Provider(root, intermediate, crls)


def test_strict_build_fails_on_a_leaf_revoked_only_in_its_crl_and_changes_nothing(
    world: World, provider: Provider, tmp_path: Path
) -> None:
    leaf = provider.leaf()  # names no OCSP responder: the CRL is the only source
    when = utcnow() - dt.timedelta(days=2)
    provider.crls.serve(
        LEAF_CRL, make_crl(provider.intermediate, revoked=[Revoked(leaf, when=when)])
    )
    context = server_context(leaf, provider.intermediate)
    with SMTPTestServer(mode="starttls", ssl_context=context) as server:
        build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")
        before = snapshot(build_dir)
        build = world.build(
            tmp_path,
            provider.config_vars(world, server.port, SMTP_CA_CHECK="strict"),
            build_dir=build_dir,
        )
    assert build.returncode == 1, build.output
    errors = build.stderr.splitlines()
    assert (
        f" !     localhost:{server.port} (STARTTLS): the server's certificate has been revoked "
        "(localhost)."
    ) in errors
    assert (
        f" !     Revocation: revoked on {when:%Y-%m-%d} (keyCompromise), says the CRL at "
        f"{provider.crls.url(LEAF_CRL)}."
    ) in errors
    assert (
        " !     Revocation of the intermediate smtp-ca CRL Provider Issuing CA: not revoked, "
        f"says the CRL at {provider.crls.url(ROOT_CRL)} (issued "
    ) in build.stderr
    assert "Traceback" not in build.output
    assert snapshot(build_dir) == before


def test_a_warm_build_fetches_no_crl_and_the_app_gets_the_findings(
    world: World, provider: Provider, tmp_path: Path
) -> None:
    leaf = provider.leaf()
    provider.crls.serve(LEAF_CRL, make_crl(provider.intermediate))
    cache = tmp_path / "cache"
    shutil.copytree(world.warm_cache, cache, symlinks=True)
    context = server_context(leaf, provider.intermediate)
    with SMTPTestServer(mode="starttls", ssl_context=context) as server:
        config_vars = provider.config_vars(world, server.port, SMTP_CA_CHECK="strict")
        builds = []
        for name in ("first", "warm"):
            build_dir = make_rails_app(tmp_path / name / "build_0123abcd", "mastodon-3.5")
            build = world.build(tmp_path / name, config_vars, cache=cache, build_dir=build_dir)
            assert build.returncode == 0, build.output
            builds.append((build, build_dir))
            if name == "first":
                fetched = (provider.crls.count(LEAF_CRL), provider.crls.count(ROOT_CRL))
    assert fetched == (1, 1)
    assert (provider.crls.count(LEAF_CRL), provider.crls.count(ROOT_CRL)) == (1, 1)
    (first, _), (warm, warm_dir) = builds
    leaf_line = f"       Revocation: not revoked, says the CRL at {provider.crls.url(LEAF_CRL)}"
    assert leaf_line in first.stdout
    (warm_line,) = [line for line in warm.stdout.splitlines() if line.startswith(leaf_line)]
    assert ", kept from an earlier build until " in warm_line
    assert f"Wrote {REVOCATION_PATH}" in warm.stdout
    findings = [
        line.split("\t")
        for line in (warm_dir / REVOCATION_PATH).read_text().splitlines()
        if line.startswith("finding\t")
    ]
    where = f"localhost:{server.port} (STARTTLS)"
    assert [(kind, at, status) for kind, at, status, _ in findings] == [
        ("finding", where, "good"),
        ("finding", where, "good"),
    ]
    assert findings[0][3] == warm_line.strip()
