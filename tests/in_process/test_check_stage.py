"""What the build does with the check's outcome: the report, strict and warn, and the bundle it
writes when the server's chain had to be completed through AIA. In-process ``pipeline.run``
on the classic platform, against
real local servers; bin/compile end to end is in test_aia_and_revocation.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from cryptography import x509

from smtp_ca import pipeline
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.pipeline import STRICT_VERDICT
from smtp_ca.platforms.classic import ClassicPlatform
from support.bundle_vars import pinned_bundle_vars
from support.certs import Issued, make_root
from support.http_server import LocalServer
from support.ocsp_responder import OcspResponder
from support.pki import issue, server_context
from support.smtp_server import SMTPTestServer, free_port
from support.wrapped_log import LogBuffer

BUNDLE = ".smtp-ca/ca-bundle.pem"


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_root("smtp-ca Build Root CA")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return issue("smtp-ca Build Issuing CA", root, ca=True)


@pytest.fixture(scope="module")
def stranger() -> tuple[Issued, Issued]:
    """A leaf for localhost and its issuing CA, under a root the bundle does not hold."""
    issuer = issue("smtp-ca Stranger CA", make_root("smtp-ca Stranger Root"), ca=True)
    return issue("localhost", issuer, hostnames=("localhost",)), issuer


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
        self.out = LogBuffer()
        self.err = LogBuffer()

    def __call__(self, port: int, **config_vars: str) -> None:
        variables = {
            **pinned_bundle_vars(self.bundle_source.as_uri(), self.bundle_source.read_bytes()),
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
    anchored = next(line for line in out.splitlines() if "Anchored by" in line)
    assert anchored.startswith("       Anchored by smtp-ca Build Root CA (SHA-256 ")
    # The input it came from: the bundle at SMTP_CA_BUNDLE_URL, by its path.
    assert anchored.endswith(f"), from {run.bundle_source} (SMTP_CA_BUNDLE_URL).")
    assert run.err.getvalue() == ""


def test_an_anchor_from_smtp_ca_certs_is_named_so(run: Run, intermediate: Issued) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        run(
            server.port,
            SMTP_CA_CHECK="strict",
            SMTP_CA_BUNDLE_URL="none",
            SMTP_CA_BUNDLE_SHA256="",
            SMTP_CA_CERTS=run.bundle_source.read_text(),
        )
    out = run.out.getvalue()
    assert "       Added 1 certificate from SMTP_CA_CERTS:" in out
    assert f"       localhost:{server.port} (STARTTLS): verified, TLSv1.3." in out
    anchored = next(line for line in out.splitlines() if "Anchored by" in line)
    assert anchored.startswith("       Anchored by smtp-ca Build Root CA (SHA-256 ")
    assert anchored.endswith("), from SMTP_CA_CERTS.")


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
    errors = run.err.getvalue()
    assert (
        f" !     localhost:{server.port} (STARTTLS): the server's certificate has been revoked"
        in (errors)
    )
    assert f"), says the OCSP responder at {responder.url} (in an answer signed by " in errors
    assert " !     Only the mail provider" in errors
    assert raised.value.message == STRICT_VERDICT
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


def test_verify_mode_none_says_peer_would_fail(run: Run, stranger: tuple[Issued, Issued]) -> None:
    with SMTPTestServer(mode="starttls", ssl_context=server_context(*stranger)) as server:
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


# --- Mastodon's bulk mailer: BULK_SMTP_SERVER, checked exactly like SMTP_SERVER ---------------


def test_the_bulk_mail_server_gets_its_own_step_and_result(run: Run, intermediate: Issued) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    context = server_context(leaf, intermediate)
    with (
        SMTPTestServer(mode="starttls", ssl_context=context) as main,
        SMTPTestServer(mode="implicit-tls", ssl_context=context) as bulk,
    ):
        run(
            main.port,
            SMTP_CA_CHECK="strict",
            BULK_SMTP_SERVER="localhost",
            BULK_SMTP_PORT=str(bulk.port),
            BULK_SMTP_TLS="true",
            BULK_SMTP_OPENSSL_VERIFY_MODE="peer",
        )
    out = run.out.getvalue()
    steps = [line for line in out.splitlines() if line.startswith("-----> Checking")]
    assert steps == [
        f"-----> Checking localhost:{main.port} (STARTTLS) against the bundle",
        "-----> Checking the bulk mail server (BULK_SMTP_SERVER) "
        f"localhost:{bulk.port} (TLS) against the bundle",
    ]
    assert f"       localhost:{main.port} (STARTTLS): verified, TLSv1.3." in out
    assert f"       localhost:{bulk.port} (TLS): verified, TLSv1.3." in out
    assert out.index(steps[1]) < out.index(f"localhost:{bulk.port} (TLS): verified")
    assert run.err.getvalue() == ""


def test_a_strict_build_fails_when_only_the_bulk_mail_server_fails(
    run: Run, intermediate: Issued, stranger: tuple[Issued, Issued]
) -> None:
    good = issue("localhost", intermediate, hostnames=("localhost",))
    bad, stranger_ca = stranger
    with (
        SMTPTestServer(mode="starttls", ssl_context=server_context(good, intermediate)) as main,
        SMTPTestServer(mode="starttls", ssl_context=server_context(bad, stranger_ca)) as bulk,
        pytest.raises(BuildError) as raised,
    ):
        run(
            main.port,
            SMTP_CA_CHECK="strict",
            BULK_SMTP_SERVER="localhost",
            BULK_SMTP_PORT=str(bulk.port),
        )
    assert f"localhost:{main.port} (STARTTLS): verified" in run.out.getvalue()
    assert f" !     localhost:{bulk.port} (STARTTLS): certificate verify failed" in (
        run.err.getvalue()
    )
    assert raised.value.message == STRICT_VERDICT
    assert not (run.build_dir / BUNDLE).exists()


def test_a_strict_build_checks_every_server_before_it_fails(
    run: Run, stranger: tuple[Issued, Issued]
) -> None:
    """Both servers fail: the log says why for each, under its own step, then the build fails
    once, so one deploy shows everything to fix."""
    bad, stranger_ca = stranger
    with (
        SMTPTestServer(mode="starttls", ssl_context=server_context(bad, stranger_ca)) as main,
        SMTPTestServer(mode="starttls", ssl_context=server_context(bad, stranger_ca)) as bulk,
        pytest.raises(BuildError) as raised,
    ):
        run(
            main.port,
            SMTP_CA_CHECK="strict",
            BULK_SMTP_SERVER="localhost",
            BULK_SMTP_PORT=str(bulk.port),
        )
    steps = [line for line in run.out.getvalue().splitlines() if line.startswith("-----> ")]
    assert steps[-2:] == [
        f"-----> Checking localhost:{main.port} (STARTTLS) against the bundle",
        f"-----> Checking the bulk mail server (BULK_SMTP_SERVER) localhost:{bulk.port} "
        "(STARTTLS) against the bundle",
    ]
    errors = run.err.getvalue()
    for port in (main.port, bulk.port):
        assert f" !     localhost:{port} (STARTTLS): certificate verify failed" in errors
    assert raised.value.message == STRICT_VERDICT
    assert not (run.build_dir / BUNDLE).exists()


def test_a_warn_build_warns_about_the_bulk_mail_server_and_builds(
    run: Run, intermediate: Issued, stranger: tuple[Issued, Issued]
) -> None:
    bad, stranger_ca = stranger
    with SMTPTestServer(mode="starttls", ssl_context=server_context(bad, stranger_ca)) as bulk:
        run(
            1,
            SMTP_SERVER="",
            BULK_SMTP_SERVER="localhost",
            BULK_SMTP_PORT=str(bulk.port),
            BULK_SMTP_OPENSSL_VERIFY_MODE="none",
        )
    out, err = run.out.getvalue(), run.err.getvalue()
    assert "-----> Skipping the SMTP handshake check: SMTP_SERVER is not set" in out
    assert f"-----> Checking the bulk mail server (BULK_SMTP_SERVER) localhost:{bulk.port}" in out
    assert "BULK_SMTP_OPENSSL_VERIFY_MODE=none: the app verifies no certificate" in err
    assert f" !     Warning: localhost:{bulk.port} (STARTTLS): " in err
    assert "BULK_SMTP_OPENSSL_VERIFY_MODE=peer would fail with this bundle" in err
    assert (run.build_dir / BUNDLE).is_file()


def test_the_bulk_mail_servers_hints_name_its_own_config_vars(run: Run) -> None:
    closed = free_port()
    run(1, SMTP_SERVER="", BULK_SMTP_SERVER="localhost", BULK_SMTP_PORT=str(closed))
    assert (
        " !     Check BULK_SMTP_PORT: SendGrid and most providers take 587 (STARTTLS) or 465 (TLS)."
        in run.err.getvalue()
    )


def test_bulk_mail_without_encryption_fails_a_strict_build_by_its_own_names(run: Run) -> None:
    with pytest.raises(BuildError) as raised:
        run(
            1,
            SMTP_SERVER="",
            SMTP_CA_CHECK="strict",
            BULK_SMTP_SERVER="localhost",
            BULK_SMTP_ENABLE_STARTTLS="false",  # Mastodon 4.4 reads 'false' as never
        )
    assert "STARTTLS is turned off (BULK_SMTP_ENABLE_STARTTLS=never" in raised.value.message
    assert "BULK_SMTP_TLS is not true" in raised.value.message
    assert "heroku config:unset BULK_SMTP_ENABLE_STARTTLS BULK_SMTP_ENABLE_STARTTLS_AUTO" in (
        raised.value.hint or ""
    )
