"""Where the build finds the SMTP server, run as the platforms run the buildpack: bin/compile
from a clean copy (support.world) and the CNB lifecycle's builder (support.cnb_world).

A Rails app of its own (not Mastodon): the Mailgun add-on's config vars and CloudMailin's URL,
a literal host in its production.rb and another in an initializer, each a real STARTTLS or TLS
server on loopback whose private CA is given only in SMTP_CA_CERTS. Every server is checked
once, under its own step that says where it was found; the add-ons' secrets appear nowhere in
the build log; a config var the build does not read stays unread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from support.cnb_world import CnbWorld
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e

# The add-ons' secrets that name no server of their own (SendGrid's would: smtp.sendgrid.net,
# which this machine cannot reach).
SECRETS = {
    "MAILGUN_SMTP_LOGIN": "postmaster@mg.e2e-login.example",
    "MAILGUN_SMTP_PASSWORD": "mailgun-e2e-Passw0rd-never-printed",
    "MAILGUN_API_KEY": "key-mailgun-e2e-never-printed",
    "SPARKPOST_API_KEY": "sparkpost-e2e-key-never-printed",
    "MANDRILL_APIKEY": "mandrill-e2e-key-never-printed",
    "CLOUDMAILIN_PASSWORD": "cloudmailin-e2e-login-never-printed",
}
URL_PASSWORD = "cloudmailin-e2e-url-Passw0rd"
PRODUCTION = "config/environments/production.rb"
INITIALIZER = "config/initializers/mailer.rb"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def servers(ca: trustme.CA) -> Iterator[dict[str, SMTPTestServer]]:
    with (
        SMTPTestServer(mode="starttls", ca=ca) as mailgun,
        SMTPTestServer(mode="starttls", ca=ca) as cloudmailin,
        SMTPTestServer(mode="starttls", ca=ca) as production,
        SMTPTestServer(mode="implicit-tls", ca=ca) as initializer,
    ):
        yield {
            "mailgun": mailgun,
            "cloudmailin": cloudmailin,
            "production": production,
            "initializer": initializer,
        }


def write_app(app: Path, servers: dict[str, SMTPTestServer]) -> Path:
    production = app / PRODUCTION
    production.parent.mkdir(parents=True, exist_ok=True)
    production.write_text(
        "Rails.application.configure do\n"
        "  config.action_mailer.delivery_method = :smtp\n"
        "  config.action_mailer.smtp_settings = {\n"
        f'    address: "localhost", port: {servers["production"].port},\n'
        "    user_name: ENV['MAIL_USER'], password: ENV['MAIL_PASSWORD'],\n"
        "  }\nend\n"
    )
    initializer = app / INITIALIZER
    initializer.parent.mkdir(parents=True, exist_ok=True)
    initializer.write_text(
        "ActionMailer::Base.add_delivery_method :transactional, Mail::SMTP,\n"
        "  :address => '127.0.0.1',\n"
        f"  :port => {servers['initializer'].port},\n"
        "  :tls => true\n"
    )
    return app


def config_vars(ca: trustme.CA, servers: dict[str, SMTPTestServer]) -> dict[str, str]:
    return {
        "SMTP_CA_BUNDLE_URL": "none",
        "SMTP_CA_PUBLIC_ROOTS": "false",
        "SMTP_CA_CERTS": ca.cert_pem.bytes().decode(),
        "SMTP_CA_CHECK": "strict",
        "MAILGUN_SMTP_SERVER": "localhost",
        "MAILGUN_SMTP_PORT": str(servers["mailgun"].port),
        "CLOUDMAILIN_SMTP_URL": (
            f"smtp://account:{URL_PASSWORD}@localhost:{servers['cloudmailin'].port}"
        ),
        **SECRETS,
    }


def expected_steps(servers: dict[str, SMTPTestServer]) -> list[str]:
    def step(server: str, mode: str, found_in: str, host: str = "localhost") -> str:
        port = servers[server].port
        return f"-----> Checking {host}:{port} ({mode}, from {found_in}) against the bundle"

    return [
        step("mailgun", "STARTTLS", "MAILGUN_SMTP_SERVER"),
        step("cloudmailin", "STARTTLS", "CLOUDMAILIN_SMTP_URL"),
        step("production", "STARTTLS", PRODUCTION),
        step("initializer", "TLS", INITIALIZER, host="127.0.0.1"),
    ]


def assert_checked_each(output: str, servers: dict[str, SMTPTestServer]) -> None:
    steps = [line for line in output.splitlines() if line.startswith("-----> Checking")]
    assert steps == expected_steps(servers), output
    for name, server in servers.items():
        host = "127.0.0.1" if name == "initializer" else "localhost"
        mode = "TLS" if name == "initializer" else "STARTTLS"
        assert output.count(f"       {host}:{server.port} ({mode}): verified, TLSv1.3.") == 1
    assert not [s for s in servers.values() if s.auth_commands], "the check never logs in"
    for secret in [*SECRETS.values(), URL_PASSWORD]:
        assert secret not in output
    # An app of its own: Mastodon's variable is none of its business.
    assert "SMTP_OPENSSL_VERIFY_MODE" not in output
    assert "Traceback" not in output


def test_bin_compile_checks_every_server_it_finds(
    world: World, tmp_path: Path, ca: trustme.CA, servers: dict[str, SMTPTestServer]
) -> None:
    build_dir = write_app(tmp_path / "build_0123abcd", servers)
    # A config var the build does not read: were it read, the build would fail on it.
    (tmp_path / "env" / "DATABASE_URL").mkdir(parents=True)
    build = world.build(tmp_path, config_vars(ca, servers), build_dir=build_dir, merge_output=True)
    assert build.returncode == 0, build.output
    assert_checked_each(build.output, servers)
    assert (build_dir / ".smtp-ca/ca-bundle.pem").is_file()


@pytest.mark.needs_lifecycle
def test_the_cnb_build_checks_every_server_it_finds(
    cnb_world: CnbWorld, ca: trustme.CA, servers: dict[str, SMTPTestServer]
) -> None:
    app = write_app(cnb_world.root / "source-server-discovery", servers)
    run = cnb_world.build("server-discovery", config_vars(ca, servers), app=app)
    assert run.returncode == 0, run.output
    assert_checked_each(run.build_output, servers)
