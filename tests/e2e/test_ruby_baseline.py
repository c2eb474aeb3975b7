"""Baseline, before any buildpack code: the real bug, with real parts.

Real ActionMailer (Debian's Rails 6.1, mail 2.7.1, net-smtp 0.3.1) in a Mastodon-shaped app,
started as a dyno starts it, against a real STARTTLS server on 127.0.0.1 whose certificate comes
from a throwaway CA that no system bundle trusts. This proves the test infrastructure and pins
down the facts the buildpack relies on:

* without CA help every shape fails with "certificate verify failed";
* SMTP_CA_FILE alone fixes Mastodon >= 1.4 shapes, but not 1.3 (no ca_file key at all);
* an initializer whose own ``on_load(:action_mailer)`` hook fills in ca_file fixes 1.3 too,
  because it runs after the railtie's hook that applies production.rb's smtp_settings.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from support.rails_app import (
    MASTODON_SHAPES,
    Shape,
    delivery_output,
    effective_smtp_settings,
    make_rails_app,
    require_ruby_rails,
    run_delivery,
    smtp_config_vars,
    write_initializer,
)
from support.smtp_server import SMTPServerFactory, SMTPTestServer, write_ca_pem

pytestmark = pytest.mark.e2e

#: The name the app connects to; the server's leaf covers it (and 127.0.0.1).
SMTP_HOST = "localhost"
TIMEOUT = 60.0

#: Hand-written stand-in for the initializer the buildpack renders.
CA_FILE_INITIALIZER = """\
# frozen_string_literal: true

# Fill in ca_file from SMTP_CA_FILE when the app's own smtp_settings have none.
# production.rb's settings are applied by ActionMailer's railtie in an on_load(:action_mailer)
# hook registered before config/initializers run, so this hook runs after it and sees them.
ActiveSupport.on_load(:action_mailer) do
  if smtp_settings[:ca_file].nil? && ENV['SMTP_CA_FILE'].present?
    self.smtp_settings = smtp_settings.merge(ca_file: ENV['SMTP_CA_FILE'])
  end
end
"""


@pytest.fixture(autouse=True)
def _needs_ruby_rails() -> None:
    require_ruby_rails()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_servers(ca: trustme.CA) -> Iterator[SMTPServerFactory]:
    with SMTPServerFactory(ca) as factory:
        yield factory


@pytest.fixture
def starttls_server(smtp_servers: SMTPServerFactory) -> SMTPTestServer:
    return smtp_servers(mode="starttls")


@pytest.fixture
def ca_pem(tmp_path: Path, ca: trustme.CA) -> Path:
    return write_ca_pem(ca, tmp_path / "throwaway-ca.pem")


def _app(tmp_path: Path, shape: Shape) -> Path:
    return make_rails_app(tmp_path / "app", shape)


def assert_delivered_over_tls(
    proc: subprocess.CompletedProcess[str], server: SMTPTestServer
) -> None:
    assert proc.returncode == 0, delivery_output(proc)
    assert "DELIVERED message_id=" in proc.stdout, delivery_output(proc)
    (message,) = server.wait_for_messages(1)
    assert message.tls, message
    assert message.mail_from == "notifications@localhost"
    assert message.rcpt_tos == ("admin@example.test",)
    assert "Subject: SMTP CA buildpack test" in message.text


def assert_certificate_verify_failed(
    proc: subprocess.CompletedProcess[str],
    server: SMTPTestServer,
    reason: str = "unable to get local issuer certificate",
) -> None:
    assert proc.returncode != 0, delivery_output(proc)
    assert f"certificate verify failed ({reason})" in proc.stderr, delivery_output(proc)
    assert "DELIVERY-FAILED OpenSSL::SSL::SSLError" in proc.stderr, delivery_output(proc)
    assert server.messages == ()


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_without_ca_help_delivery_fails_with_certificate_verify_failed(
    tmp_path: Path, shape: Shape, starttls_server: SMTPTestServer
) -> None:
    app = _app(tmp_path, shape)

    proc = run_delivery(app, smtp_config_vars(SMTP_HOST, starttls_server.port), TIMEOUT)

    assert_certificate_verify_failed(proc, starttls_server)


@pytest.mark.parametrize("shape", ["mastodon-1.4", "mastodon-3.5"])
def test_smtp_ca_file_fixes_shapes_that_read_it(
    tmp_path: Path, shape: Shape, starttls_server: SMTPTestServer, ca_pem: Path
) -> None:
    app = _app(tmp_path, shape)
    env = smtp_config_vars(SMTP_HOST, starttls_server.port, SMTP_CA_FILE=str(ca_pem))

    proc = run_delivery(app, env, TIMEOUT)

    assert_delivered_over_tls(proc, starttls_server)
    assert effective_smtp_settings(proc)["ca_file"] == str(ca_pem)


def test_smtp_ca_file_is_ignored_by_mastodon_1_3(
    tmp_path: Path, starttls_server: SMTPTestServer, ca_pem: Path
) -> None:
    app = _app(tmp_path, "mastodon-1.3")
    env = smtp_config_vars(SMTP_HOST, starttls_server.port, SMTP_CA_FILE=str(ca_pem))

    proc = run_delivery(app, env, TIMEOUT)

    assert_certificate_verify_failed(proc, starttls_server)
    assert "ca_file" not in effective_smtp_settings(proc)


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_an_on_load_initializer_fills_in_ca_file(
    tmp_path: Path, shape: Shape, starttls_server: SMTPTestServer, ca_pem: Path
) -> None:
    app = _app(tmp_path, shape)
    write_initializer(app, "smtp_ca_by_hand", CA_FILE_INITIALIZER)
    env = smtp_config_vars(SMTP_HOST, starttls_server.port, SMTP_CA_FILE=str(ca_pem))

    proc = run_delivery(app, env, TIMEOUT)

    assert_delivered_over_tls(proc, starttls_server)
    settings = effective_smtp_settings(proc)
    assert settings["ca_file"] == str(ca_pem)
    # production.rb's settings survived next to ca_file: the hook ran after the railtie's
    # set_configs hook (run before it, the railtie would have replaced the whole hash).
    assert settings["address"] == SMTP_HOST
    assert settings["port"] == str(starttls_server.port)
    assert settings["openssl_verify_mode"] == "peer"


def test_the_on_load_initializer_leaves_an_app_ca_file_alone(
    tmp_path: Path, starttls_server: SMTPTestServer, ca_pem: Path
) -> None:
    """3.5 without SMTP_CA_FILE has ca_file = the system bundle: the hook must not override it."""
    app = _app(tmp_path, "mastodon-3.5")
    write_initializer(app, "smtp_ca_by_hand", CA_FILE_INITIALIZER)
    env = smtp_config_vars(SMTP_HOST, starttls_server.port)

    proc = run_delivery(app, env, TIMEOUT)

    assert_certificate_verify_failed(proc, starttls_server)
    assert effective_smtp_settings(proc)["ca_file"] == "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_verify_mode_none_delivers_without_any_ca(
    tmp_path: Path, shape: Shape, starttls_server: SMTPTestServer
) -> None:
    """The dangerous workaround: TLS still happens, but nobody checks whom it is with."""
    app = _app(tmp_path, shape)
    env = smtp_config_vars(SMTP_HOST, starttls_server.port, verify_mode="none")

    proc = run_delivery(app, env, TIMEOUT)

    assert_delivered_over_tls(proc, starttls_server)


@pytest.mark.parametrize("auth_method", ["plain", "login"])
def test_auth_over_starttls(
    tmp_path: Path, auth_method: str, smtp_servers: SMTPServerFactory, ca_pem: Path
) -> None:
    server = smtp_servers(mode="starttls", credentials=("apikey", "SG.not-a-real-key"))
    app = _app(tmp_path, "mastodon-3.5")
    env = smtp_config_vars(
        SMTP_HOST,
        server.port,
        login="apikey",
        password="SG.not-a-real-key",
        auth_method=auth_method,
        SMTP_CA_FILE=str(ca_pem),
    )

    proc = run_delivery(app, env, TIMEOUT)

    assert_delivered_over_tls(proc, server)
    assert server.messages[0].authenticated_as == "apikey"
    (attempt,) = server.auth_attempts
    assert (attempt.mechanism, attempt.login, attempt.success, attempt.tls) == (
        auth_method.upper(),
        "apikey",
        True,
        True,
    )
    assert "SG.not-a-real-key" not in proc.stdout


def test_auth_with_a_wrong_password_is_refused(
    tmp_path: Path, smtp_servers: SMTPServerFactory, ca_pem: Path
) -> None:
    server = smtp_servers(mode="starttls", credentials=("apikey", "right"))
    app = _app(tmp_path, "mastodon-3.5")
    env = smtp_config_vars(
        SMTP_HOST, server.port, login="apikey", password="wrong", SMTP_CA_FILE=str(ca_pem)
    )

    proc = run_delivery(app, env, TIMEOUT)

    assert proc.returncode != 0, delivery_output(proc)
    assert "DELIVERY-FAILED Net::SMTPAuthenticationError" in proc.stderr, delivery_output(proc)
    assert server.messages == ()


def test_implicit_tls_on_an_ip_address_name(
    tmp_path: Path, smtp_servers: SMTPServerFactory, ca_pem: Path
) -> None:
    """SMTP_TLS=true (SMTPS) and SMTP_SERVER=127.0.0.1: the leaf's IP SAN is verified."""
    server = smtp_servers(mode="implicit-tls")
    app = _app(tmp_path, "mastodon-3.5")
    env = smtp_config_vars("127.0.0.1", server.port, SMTP_CA_FILE=str(ca_pem), SMTP_TLS="true")

    proc = run_delivery(app, env, TIMEOUT)

    assert_delivered_over_tls(proc, server)


def test_implicit_tls_without_ca_help_fails(
    tmp_path: Path, smtp_servers: SMTPServerFactory
) -> None:
    server = smtp_servers(mode="implicit-tls")
    app = _app(tmp_path, "mastodon-3.5")
    env = smtp_config_vars("127.0.0.1", server.port, SMTP_TLS="true")

    proc = run_delivery(app, env, TIMEOUT)

    assert_certificate_verify_failed(proc, server)


def test_plain_server_gets_mail_without_tls(
    tmp_path: Path, smtp_servers: SMTPServerFactory
) -> None:
    """enable_starttls_auto quietly sends in clear text when no STARTTLS is offered."""
    server = smtp_servers(mode="plain")
    app = _app(tmp_path, "mastodon-3.5")

    proc = run_delivery(app, smtp_config_vars(SMTP_HOST, server.port), TIMEOUT)

    assert proc.returncode == 0, delivery_output(proc)
    (message,) = server.wait_for_messages(1)
    assert not message.tls


def test_the_dyno_environment_does_not_leak_the_test_process_env(
    tmp_path: Path, starttls_server: SMTPTestServer, ca_pem: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE in the test process must not reach the app (it would hide the bug)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    monkeypatch.setenv("SMTP_CA_FILE", str(ca_pem))
    app = _app(tmp_path, "mastodon-1.4")

    proc = run_delivery(app, smtp_config_vars(SMTP_HOST, starttls_server.port), TIMEOUT)

    assert_certificate_verify_failed(proc, starttls_server)


def test_profile_d_scripts_are_sourced_with_home_as_the_app_dir(
    tmp_path: Path, starttls_server: SMTPTestServer, ca: trustme.CA
) -> None:
    """The dyno start-up path the buildpack will use: .profile.d sets SMTP_CA_FILE from $HOME."""
    app = _app(tmp_path, "mastodon-1.4")
    write_ca_pem(ca, app / ".smtp-ca" / "ca-bundle.pem")
    profile = app / ".profile.d" / "smtp-ca.sh"
    profile.parent.mkdir()
    profile.write_text('export SMTP_CA_FILE="${SMTP_CA_FILE:-$HOME/.smtp-ca/ca-bundle.pem}"\n')

    proc = run_delivery(app, smtp_config_vars(SMTP_HOST, starttls_server.port), TIMEOUT)

    assert_delivered_over_tls(proc, starttls_server)
    assert effective_smtp_settings(proc)["ca_file"] == str(app / ".smtp-ca" / "ca-bundle.pem")


def test_the_apps_ruby_takes_smtp_server_as_written_where_python_would_not(
    tmp_path: Path, starttls_server: SMTPTestServer, ca_pem: Path
) -> None:
    """Why the build refuses SMTP_SERVER=[::1] and SMTP_SERVER=127.000.000.001
    (tests/in_process/test_bad_input_and_faults.py, tests/unit/settings/test_load_settings.py): the
    mail gem hands the value to net-smtp as it is. Ruby looks "[::1]" up as a host name, brackets
    and all; it connects to 127.000.000.001 (the C library reads it as 127.0.0.1) and then checks
    the certificate for that text as a host name, which fails, where Python's TLS, as the check uses
    it, verifies."""
    from smtp_ca.check.flow import run_check
    from smtp_ca.check.smtp_session import CheckTarget

    app = _app(tmp_path, "mastodon-3.5")
    port = starttls_server.port

    bracketed = run_delivery(app, smtp_config_vars("[::1]", port, SMTP_CA_FILE=str(ca_pem)))
    assert bracketed.returncode != 0, delivery_output(bracketed)
    assert "DELIVERY-FAILED SocketError: getaddrinfo: Name or service not known" in (
        bracketed.stderr
    ), delivery_output(bracketed)

    padded = run_delivery(
        app, smtp_config_vars("127.000.000.001", port, SMTP_CA_FILE=str(ca_pem)), TIMEOUT
    )
    assert padded.returncode != 0, delivery_output(padded)
    assert (
        f"DELIVERY-FAILED OpenSSL::SSL::SSLError: SSL_connect returned=1 errno=0 "
        f"peeraddr=127.0.0.1:{port} state=error: certificate verify failed (hostname mismatch)"
    ) in padded.stderr, delivery_output(padded)
    assert starttls_server.messages == ()

    python = run_check(CheckTarget("127.000.000.001", port, timeout=10), ca_pem)
    assert python.verified, python.summary
