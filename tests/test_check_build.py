"""What the build does with the check's outcome: the report, strict and warn, and the bundle it
writes when the server's chain had to be completed through AIA. In-process ``pipeline.run``
on the classic platform, against
real local servers; bin/compile end to end is in test_e2e_check.py."""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from cryptography import x509

from smtp_ca import pipeline
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.platforms.classic import ClassicPlatform
from support.certs import Issued, make_root
from support.http_server import LocalServer
from support.ocsp_responder import OcspResponder
from support.pki import issue, server_context
from support.smtp_server import SMTPTestServer

BUNDLE = ".smtp-ca/ca-bundle.pem"


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_root("smtp-ca Build Root CA")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return issue("smtp-ca Build Issuing CA", root, ca=True)


@pytest.fixture
def http() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


class Run:
    def __init__(self, tmp_path: Path, root: Issued) -> None:
        self.build_dir = tmp_path / "build"
        self.build_dir.mkdir()
        self.cache_dir = tmp_path / "cache"
        self.buildpack_dir = tmp_path / "buildpack"
        self.buildpack_dir.mkdir()
        self.bundle_source = root.write(tmp_path / "provider-bundle.pem")
        self.out = io.StringIO()
        self.err = io.StringIO()

    def __call__(self, port: int, **config_vars: str) -> None:
        variables = {
            "SMTP_CA_BUNDLE_URL": self.bundle_source.as_uri(),
            "SMTP_CA_BUNDLE_SHA256": hashlib.sha256(self.bundle_source.read_bytes()).hexdigest(),
            "SMTP_CA_PUBLIC_ROOTS": "false",
            "SMTP_SERVER": "localhost",
            "SMTP_PORT": str(port),
            "SMTP_OPENSSL_VERIFY_MODE": "peer",
            "SMTP_CA_CHECK_TIMEOUT": "5",
            **config_vars,
        }
        env_dir = self.build_dir.parent / "env"
        env_dir.mkdir(exist_ok=True)
        for name, value in variables.items():
            (env_dir / name).write_text(value)
        platform = ClassicPlatform(
            app_dir=self.build_dir,
            cache_dir=self.cache_dir / "smtp-ca",
            config_dir=env_dir,
            buildpack_dir=self.buildpack_dir,
        )
        pipeline.run(platform, Log(out=self.out, err=self.err))

    @property
    def output(self) -> str:
        return self.out.getvalue() + self.err.getvalue()

    @property
    def written(self) -> list[x509.Certificate]:
        return x509.load_pem_x509_certificates((self.build_dir / BUNDLE).read_bytes())


@pytest.fixture
def run(tmp_path: Path, root: Issued, monkeypatch: pytest.MonkeyPatch) -> Run:
    # The dependencies are this test process's own; the pipeline's install is test_bootstrap's.
    site_packages = Path(jinja2.__file__).resolve().parents[1]
    monkeypatch.setattr(pipeline, "ensure_dependencies", lambda *args, **kwargs: site_packages)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("STACK", "heroku-24")
    return Run(tmp_path, root)


def test_a_verified_server_is_reported_with_its_chain_and_anchor(
    run: Run, intermediate: Issued
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        run(server.port, SMTP_CA_CHECK="strict")
    out = run.out.getvalue()
    assert f"-----> Checking localhost:{server.port} (STARTTLS) against the bundle" in out
    assert f"       localhost:{server.port} (STARTTLS): verified, TLSv1.3." in out
    assert "       The server presented:" in out
    assert "         1. localhost, issued by smtp-ca Build Issuing CA, valid until" in out
    assert "       Anchored by smtp-ca Build Root CA, from SMTP_CA_BUNDLE_URL (SHA-256" in out
    assert run.err.getvalue() == ""


def test_strict_build_passes_with_an_intermediate_fetched_through_aia_and_writes_it(
    run: Run, root: Issued, intermediate: Issued, http: LocalServer
) -> None:
    http.serve("/issuer.crt", intermediate.der)
    leaf = issue(
        "localhost", intermediate, hostnames=("localhost",), ca_issuers=http.url("/issuer.crt")
    )
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
        run(server.port, SMTP_CA_CHECK="strict")
    assert " !     Warning: localhost:" in run.err.getvalue()
    assert "does not send the intermediate certificate smtp-ca Build Issuing CA" in run.output
    assert "once the bundle holds the intermediate certificate" in run.out.getvalue()
    assert run.written == [root.cert, intermediate.cert]
    bundle_text = (run.build_dir / BUNDLE).read_text()
    assert f"# From: {http.url('/issuer.crt')} (AIA caIssuers" in bundle_text


def test_strict_build_fails_on_a_revoked_certificate_and_writes_nothing(
    run: Run, intermediate: Issued
) -> None:
    with OcspResponder(intermediate) as responder:
        leaf = issue("localhost", intermediate, hostnames=("localhost",), ocsp=responder.url)
        responder.revoke(leaf)
        with (
            SMTPTestServer(
                mode="starttls", ssl_context=server_context(leaf, intermediate)
            ) as server,
            pytest.raises(BuildError) as raised,
        ):
            run(server.port, SMTP_CA_CHECK="strict")
    assert "the server's certificate has been revoked" in raised.value.message
    assert "says the certificate was revoked on" in raised.value.message
    assert "Only the mail provider" in (raised.value.hint or "")
    assert "SMTP_CA_CHECK=strict" in (raised.value.hint or "")
    assert list(run.build_dir.iterdir()) == []


def test_warn_build_reports_the_cause_and_the_fix_and_builds(
    run: Run, intermediate: Issued
) -> None:
    leaf = issue("mail.example.org", intermediate, hostnames=("mail.example.org",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        run(server.port)
    err = run.err.getvalue()
    assert " !     Warning: localhost:" in err
    assert "do not cover SMTP_SERVER=localhost" in err
    assert " !     The certificate holds: mail.example.org." in err
    assert " !     Set SMTP_SERVER to a name the certificate holds" in err
    assert "SMTP_CA_CHECK=strict would fail it" in err
    assert (run.build_dir / BUNDLE).is_file()


def test_verify_mode_none_is_warned_and_peer_is_recommended_when_it_works(
    run: Run, intermediate: Issued
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        run(server.port, SMTP_OPENSSL_VERIFY_MODE="none")
    err = run.err.getvalue()
    assert "SMTP_OPENSSL_VERIFY_MODE=none: the app verifies no certificate" in err
    assert "SMTP_OPENSSL_VERIFY_MODE=peer works" in err


def test_verify_mode_none_says_peer_would_fail(run: Run, intermediate: Issued) -> None:
    stranger = issue("smtp-ca Stranger CA", make_root("smtp-ca Stranger Root"), ca=True)
    leaf = issue("localhost", stranger, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, stranger)) as server:
        run(server.port, SMTP_OPENSSL_VERIFY_MODE="none")
    assert "SMTP_OPENSSL_VERIFY_MODE=peer would fail with this bundle" in run.err.getvalue()


STARTTLS_OFF = [{"SMTP_ENABLE_STARTTLS": "never"}, {"SMTP_ENABLE_STARTTLS_AUTO": "false"}]


@pytest.mark.parametrize("config_vars", STARTTLS_OFF)
def test_starttls_off_without_tls_warns_and_skips_the_check(
    run: Run, config_vars: dict[str, str]
) -> None:
    run(1, SMTP_CA_CHECK="warn", **config_vars)
    err = run.err.getvalue()
    assert "unencrypted, and nothing can be verified" in err
    assert "Checking" not in run.out.getvalue()
    assert (run.build_dir / BUNDLE).is_file()


@pytest.mark.parametrize("config_vars", STARTTLS_OFF)
def test_starttls_off_without_tls_fails_a_strict_build(
    run: Run, config_vars: dict[str, str]
) -> None:
    with pytest.raises(BuildError) as raised:
        run(1, SMTP_CA_CHECK="strict", **config_vars)
    assert "unencrypted" in raised.value.message
    assert "SMTP_CA_CHECK=warn" in (raised.value.hint or "")
    assert not (run.build_dir / BUNDLE).exists()
