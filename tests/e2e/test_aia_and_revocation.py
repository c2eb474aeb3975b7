"""End to end, as Heroku builds and a dyno runs: the check's AIA completion and OCSP revocation.

bin/compile runs from a clean copy of the buildpack with a pip-less python3 and config vars in
ENV_DIR; the provider's CA bundle comes from a local HTTPS server; the SMTP server, the AIA
issuer URL and the OCSP responder are all local. Real ActionMailer then delivers through the
bundle the build wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.certs import Issued, make_root
from support.heroku import move_to_dyno_path, snapshot
from support.http_server import LocalServer
from support.ocsp_responder import OcspResponder
from support.pki import issue, server_context
from support.rails_app import make_rails_app, require_ruby_rails, run_delivery, smtp_config_vars
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e

PASSWORD = "SG.aia-s3cret-never-printed"
BUNDLE_PATH = ".smtp-ca/ca-bundle.pem"


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_root("smtp-ca E2E Provider Root CA")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return issue("smtp-ca E2E Provider Issuing CA", root, ca=True)


def test_strict_build_completes_a_missing_intermediate_and_actionmailer_delivers(
    world: World, root: Issued, intermediate: Issued, tmp_path: Path
) -> None:
    require_ruby_rails()
    with LocalServer() as aia:  # plain http://, as caIssuers URLs are
        aia.serve("/issuing-ca.crt", intermediate.der)
        leaf = issue(
            "localhost",
            intermediate,
            hostnames=("localhost", "127.0.0.1"),
            ca_issuers=aia.url("/issuing-ca.crt"),
        )
        # The provider's server forgets its intermediate; its bundle holds only the root.
        with SMTPTestServer(
            mode="starttls",
            ssl_context=server_context(leaf),
            credentials=("apikey", PASSWORD),
        ) as server:
            config_vars = smtp_config_vars(
                "localhost", server.port, login="apikey", password=PASSWORD, auth_method="plain"
            )
            bundle_vars = world.bundle_vars("/provider-root.crt", root.pem)

            # Without the check, the bundle is the root and certifi's roots: Ruby cannot
            # build the chain, as it fetches no missing intermediate.
            unchecked_dir = make_rails_app(
                tmp_path / "unchecked" / "build_0123abcd", "mastodon-1.4"
            )
            unchecked = world.build(
                tmp_path / "unchecked",
                {**config_vars, **bundle_vars, "SMTP_CA_CHECK": "off"},
                build_dir=unchecked_dir,
            )
            assert unchecked.returncode == 0, unchecked.output
            failed = run_delivery(unchecked_dir, config_vars)
            assert failed.returncode != 0
            assert "certificate verify failed" in failed.stdout + failed.stderr

            build_dir = make_rails_app(tmp_path / "checked" / "build_0123abcd", "mastodon-1.4")
            build = world.build(
                tmp_path / "checked",
                {**config_vars, **bundle_vars, "SMTP_CA_CHECK": "strict"},
                build_dir=build_dir,
            )
            assert build.returncode == 0, build.output
            assert (
                f" !     Warning: localhost:{server.port} (STARTTLS) does not send the "
                "intermediate certificate smtp-ca E2E Provider Issuing CA. The build fetched it "
                f"from {aia.url('/issuing-ca.crt')} (the AIA caIssuers URL of the server's "
                "certificate), checked that it signed that certificate and chains to smtp-ca "
                "E2E Provider Root CA, and adds it to the bundle, because the app's SMTP client "
                "does not fetch missing intermediates. Ask the provider to send its full chain."
            ) in build.stderr.splitlines()
            assert (
                f"       localhost:{server.port} (STARTTLS): verified, TLSv1.3, once the bundle "
                "holds the intermediate certificate the server does not send."
            ) in build.stdout.splitlines()
            assert PASSWORD not in build.output
            assert "Traceback" not in build.output
            assert intermediate.pem.decode() in (build_dir / BUNDLE_PATH).read_text()

            dyno_dir = move_to_dyno_path(build_dir, tmp_path / "app")
            delivered = run_delivery(dyno_dir, config_vars)
            assert delivered.returncode == 0, delivered.stdout + delivered.stderr
            assert "DELIVERED" in delivered.stdout
            (message,) = server.wait_for_messages(1)
            assert message.tls
            assert message.authenticated_as == "apikey"
    assert aia.count("/issuing-ca.crt") == 1  # the unchecked build fetched nothing


def test_strict_build_fails_on_a_revoked_certificate_and_changes_nothing(
    world: World, root: Issued, intermediate: Issued, tmp_path: Path
) -> None:
    with OcspResponder(intermediate) as responder:
        leaf = issue("localhost", intermediate, hostnames=("localhost",), ocsp=responder.url)
        responder.revoke(leaf)
        with SMTPTestServer(
            mode="starttls", ssl_context=server_context(leaf, intermediate)
        ) as server:
            build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-3.5")
            before = snapshot(build_dir)
            build = world.build(
                tmp_path,
                {
                    **smtp_config_vars("localhost", server.port),
                    **world.bundle_vars("/provider-root.crt", root.pem),
                    "SMTP_CA_CHECK": "strict",
                },
                build_dir=build_dir,
            )
    assert build.returncode == 1, build.output
    errors = build.stderr.splitlines()
    assert (
        f" !     localhost:{server.port} (STARTTLS): the server's certificate has been revoked "
        "(localhost)."
    ) in errors
    (revoked_line,) = [line for line in errors if "Revocation: revoked on" in line]
    assert re.fullmatch(
        r" !     Revocation: revoked on \d{4}-\d{2}-\d{2} \(keyCompromise\), says the OCSP "
        rf"responder at {re.escape(responder.url)} \(in an answer signed by .+\)\.",
        revoked_line,
    ), revoked_line
    assert any(line.startswith(" !     Only the mail provider can fix this") for line in errors)
    assert "Traceback" not in build.output
    assert snapshot(build_dir) == before
    assert len(responder.requests) == 1
