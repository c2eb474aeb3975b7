"""Where the build finds the SMTP server when the app does not use Mastodon's SMTP_SERVER: the
mail add-ons' config vars (smtp_ca.settings.addons) and a literal host in the app's own config
(smtp_ca.settings.app_config), then the check of each one.

The unit tests read config vars and Ruby files; the builds run ``pipeline.run`` in-process on the
classic platform (and once on the CNB platform), with a real STARTTLS server on loopback whose
private CA is given only in SMTP_CA_CERTS. Providers with one documented host (SendGrid,
Mandrill) are reached through a name lookup that answers for that host alone with loopback:
the test never resolves a real host. bin/compile and the CNB lifecycle run in
test_server_discovery_builds.py.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import jinja2
import pytest
import trustme

from smtp_ca import pipeline
from smtp_ca.check import smtp_session
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.pipeline import NO_SERVER_FOUND, STRICT_VERDICT
from smtp_ca.platforms.classic import ClassicPlatform
from smtp_ca.platforms.cnb import CnbPlatform
from smtp_ca.settings.addons import addon_servers
from smtp_ca.settings.app_config import (
    MAX_FILE_BYTES,
    MAX_FILES,
    AppMailSettings,
    read_app_mail_settings,
)
from smtp_ca.settings.load import load_settings
from smtp_ca.settings.values import VARIABLES, read_config_dir
from support.silent_server import SilentServer
from support.smtp_server import SMTPTestServer, free_port
from support.unprivileged import give_to_nobody, sandbox
from support.wrapped_log import LogBuffer

STACK = "heroku-24"

# Every add-on secret, each with a value no message could contain by chance.
ADDON_SECRETS = {
    "MAILGUN_SMTP_LOGIN": "postmaster@mg.secret-login.example",
    "MAILGUN_SMTP_PASSWORD": "mailgun-Passw0rd-never-printed",
    "MAILGUN_API_KEY": "key-mailgun-api-never-printed",
    "SENDGRID_USERNAME": "sendgrid-user-never-printed",
    "SENDGRID_PASSWORD": "sendgrid-Passw0rd-never-printed",
    "SENDGRID_API_KEY": "SG.sendgrid-api-key-never-printed",
    "SPARKPOST_SMTP_PASSWORD": "sparkpost-Passw0rd-never-printed",
    "SPARKPOST_API_KEY": "sparkpost-api-key-never-printed",
    "MANDRILL_USERNAME": "mandrill-user@never-printed.example",
    "MANDRILL_APIKEY": "mandrill-api-key-never-printed",
    "CLOUDMAILIN_PASSWORD": "cloudmailin-login-never-printed",
}
CLOUDMAILIN_USER = "cloudmailin-account"
CLOUDMAILIN_SECRET = "cloudmailin-url-Passw0rd-never-printed"


def smtp_url(port: int, host: str = "localhost") -> str:
    return f"smtp://{CLOUDMAILIN_USER}:{CLOUDMAILIN_SECRET}@{host}:{port}"


# --- the add-ons' config vars: unit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"MAILGUN_SMTP_SERVER": "smtp.mailgun.org", "MAILGUN_SMTP_PORT": "587"},
            ("smtp.mailgun.org", 587, False, "MAILGUN_SMTP_SERVER"),
        ),
        # Unset, the port is the one Mailgun recommends; 465 is Mailgun's TLS port.
        (
            {"MAILGUN_SMTP_SERVER": "smtp.eu.mailgun.org"},
            ("smtp.eu.mailgun.org", 587, False, "MAILGUN_SMTP_SERVER"),
        ),
        (
            {"MAILGUN_SMTP_SERVER": "smtp.mailgun.org", "MAILGUN_SMTP_PORT": "465"},
            ("smtp.mailgun.org", 465, True, "MAILGUN_SMTP_SERVER"),
        ),
        (
            {"SENDGRID_USERNAME": "app123@heroku.com", "SENDGRID_PASSWORD": "x"},
            ("smtp.sendgrid.net", 587, False, "SENDGRID_USERNAME"),
        ),
        ({"SENDGRID_API_KEY": "SG.x"}, ("smtp.sendgrid.net", 587, False, "SENDGRID_API_KEY")),
        (
            {"SPARKPOST_SMTP_HOST": "smtp.sparkpostmail.com", "SPARKPOST_SMTP_PORT": "2525"},
            ("smtp.sparkpostmail.com", 2525, False, "SPARKPOST_SMTP_HOST"),
        ),
        (
            {"MANDRILL_USERNAME": "me@example.com", "MANDRILL_APIKEY": "x"},
            ("smtp.mandrillapp.com", 587, False, "MANDRILL_USERNAME"),
        ),
        (
            {"CLOUDMAILIN_SMTP_URL": "smtp://user:pass@smtp.cloudmta.net:2525"},
            ("smtp.cloudmta.net", 2525, False, "CLOUDMAILIN_SMTP_URL"),
        ),
        (
            {"CLOUDMAILIN_SMTP_URL": "smtp://user:pass@smtp.cloudmta.net"},
            ("smtp.cloudmta.net", 587, False, "CLOUDMAILIN_SMTP_URL"),
        ),
        (
            {"CLOUDMAILIN_SMTP_URL": "smtps://user:pass@smtp.example.net"},
            ("smtp.example.net", 465, True, "CLOUDMAILIN_SMTP_URL"),
        ),
    ],
    ids=[
        "mailgun",
        "mailgun-default-port",
        "mailgun-465",
        "sendgrid-login",
        "sendgrid-api-key",
        "sparkpost",
        "mandrill",
        "cloudmailin",
        "cloudmailin-no-port",
        "cloudmailin-smtps",
    ],
)
def test_each_add_on_names_its_server(
    variables: dict[str, str], expected: tuple[str, int, bool, str]
) -> None:
    servers, notices = addon_servers(variables)
    assert notices == []
    [server] = servers
    assert server.origin is not None
    assert (server.host, server.port, server.implicit_tls, server.origin.found_in) == expected
    assert server.starttls == "auto" and server.verify_mode is None


def test_no_add_on_variable_is_no_server() -> None:
    assert addon_servers({"SMTP_SERVER": "smtp.example.com"}) == ([], [])
    assert addon_servers({"SENDGRID_API_KEY": "  "}) == ([], [])


def test_add_ons_are_found_in_order_each_under_its_own_name() -> None:
    servers, _ = addon_servers(
        {
            "CLOUDMAILIN_SMTP_URL": "smtp://u:p@cm.example.net:587",
            "MANDRILL_USERNAME": "me",
            "SENDGRID_API_KEY": "SG.x",
            "MAILGUN_SMTP_SERVER": "smtp.mailgun.org",
        }
    )
    assert [s.origin.found_in for s in servers if s.origin] == [
        "MAILGUN_SMTP_SERVER",
        "SENDGRID_API_KEY",
        "MANDRILL_USERNAME",
        "CLOUDMAILIN_SMTP_URL",
    ]


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        (
            {"MAILGUN_SMTP_SERVER": "smtp.mailgun.org", "MAILGUN_SMTP_PORT": "smtp"},
            "MAILGUN_SMTP_PORT is 'smtp'",
        ),
        (
            {"MAILGUN_SMTP_SERVER": "smtp.mailgun.org:587"},
            "MAILGUN_SMTP_SERVER is 'smtp.mailgun.org:587'",
        ),
        ({"SPARKPOST_SMTP_HOST": "smtp sparkpost"}, "SPARKPOST_SMTP_HOST must be a host name"),
        (
            {"CLOUDMAILIN_SMTP_URL": "https://u:p@cm.example.net/"},
            "CLOUDMAILIN_SMTP_URL is not an smtp:// URL",
        ),
        (
            {"CLOUDMAILIN_SMTP_URL": "smtp://u:p@cm.example.net:99999"},
            "CLOUDMAILIN_SMTP_URL is not an smtp:// URL",
        ),
        (
            {"CLOUDMAILIN_SMTP_URL": "not a url at all"},
            "CLOUDMAILIN_SMTP_URL is not an smtp:// URL",
        ),
    ],
    ids=["port", "host-with-port", "host", "url-scheme", "url-port", "url-garbage"],
)
def test_an_add_on_value_the_check_cannot_use_is_a_notice_not_a_failure(
    variables: dict[str, str], fragment: str
) -> None:
    servers, notices = addon_servers(variables)
    assert servers == []
    [notice] = notices
    assert fragment in notice
    assert "the check skips" in notice.lower()
    assert "u:p@" not in notice  # a URL's password is never quoted back


def test_the_same_server_found_twice_is_checked_once_under_its_first_name() -> None:
    settings = load_settings(
        {
            "SMTP_SERVER": "smtp.mailgun.org",
            "SMTP_PORT": "587",
            "MAILGUN_SMTP_SERVER": "SMTP.Mailgun.org",
            "MAILGUN_SMTP_PORT": "587",
            "SENDGRID_API_KEY": "SG.x",
        },
        STACK,
    )
    assert [(s.host, s.port, s.prefix) for s in settings.servers] == [
        ("smtp.mailgun.org", 587, "SMTP_"),
        ("smtp.sendgrid.net", 587, ""),
    ]


# --- literal hosts in the app's files: unit ----------------------------------------------------


def write(app: Path, relative: str, text: str) -> Path:
    path = app / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def found(app: Path) -> list[tuple[str, int, bool, str, str | None]]:
    return [
        (s.host, s.port, s.implicit_tls, s.starttls, s.origin.found_in if s.origin else None)
        for s in read_app_mail_settings(app).servers
    ]


INITIALIZER = "config/initializers/mail.rb"
PRODUCTION = "config/environments/production.rb"


@pytest.mark.parametrize(
    ("ruby", "expected"),
    [
        # Ruby 1.9 hash keys, in the environment file's configure block.
        (
            'config.action_mailer.smtp_settings = { address: "smtp.example.com", port: 587 }',
            ("smtp.example.com", 587, False, "auto"),
        ),
        # Hash rockets and symbols, the port as a string, over several lines, with comments.
        (
            "ActionMailer::Base.smtp_settings = {\n"
            "  :address => 'smtp.example.com', # the provider's\n"
            "  :port    => '465',\n"
            "  :tls     => true,\n"
            "  :user_name => ENV['MAIL_USER'],\n"
            "}\n",
            ("smtp.example.com", 465, True, "auto"),
        ),
        # String keys.
        (
            'ActionMailer::Base.smtp_settings = { "address" => "mx.example.org", "port" => 2525 }',
            ("mx.example.org", 2525, False, "auto"),
        ),
        # The mail gem without ActionMailer.
        (
            "Mail.defaults do\n  delivery_method :smtp, address: 'mx.example.org', port: 587,\n"
            "    enable_starttls_auto: true\nend\n",
            ("mx.example.org", 587, False, "auto"),
        ),
        (
            "Mail.defaults do\n  delivery_method(:smtp, {\n    address: 'mx.example.org',\n"
            "    port: 25, enable_starttls: true\n  })\nend\n",
            ("mx.example.org", 25, False, "always"),
        ),
        # A delivery method of its own, as CloudMailin's own documentation writes it.
        (
            "ActionMailer::Base.add_delivery_method :relay, Mail::SMTP,\n"
            "  address: 'relay.example.net',\n  port: 587,\n  domain: 'example.com'\n",
            ("relay.example.net", 587, False, "auto"),
        ),
        # merge! of the defaults; no port: the mail gem's 25.
        (
            "config.action_mailer.smtp_settings.merge!(address: 'smtp.example.com', ssl: true)",
            ("smtp.example.com", 25, True, "auto"),
        ),
        # STARTTLS turned off.
        (
            "config.action_mailer.smtp_settings = {\n  address: 'smtp.example.com', port: 25,\n"
            "  enable_starttls_auto: false\n}\n",
            ("smtp.example.com", 25, False, "never"),
        ),
        # Production only, whichever way it is written.
        (
            "if Rails.env.production?\n  ActionMailer::Base.smtp_settings = "
            "{ address: 'smtp.example.com', port: 587 }\nend\n",
            ("smtp.example.com", 587, False, "auto"),
        ),
        (
            "unless Rails.env.development? || Rails.env.test?\n"
            "  ActionMailer::Base.smtp_settings = { address: 'smtp.example.com', port: 587 }\n"
            "end\n",
            ("smtp.example.com", 587, False, "auto"),
        ),
        (
            "if Rails.env.development?\n  ActionMailer::Base.smtp_settings = { address: "
            "'localhost', port: 1025 }\nelse\n  ActionMailer::Base.smtp_settings = "
            "{ address: 'smtp.example.com', port: 587 }\nend\n",
            ("smtp.example.com", 587, False, "auto"),
        ),
        # An IPv6 address, written as the app's Ruby takes it: without brackets.
        (
            "ActionMailer::Base.smtp_settings = { address: '2001:db8::25', port: 587 }",
            ("2001:db8::25", 587, False, "auto"),
        ),
    ],
    ids=[
        "new-hash",
        "rockets-multiline",
        "string-keys",
        "mail-defaults",
        "mail-defaults-braces",
        "add-delivery-method",
        "merge",
        "starttls-off",
        "if-production",
        "unless-development",
        "else-of-development",
        "ipv6",
    ],
)
def test_a_literal_host_is_found_however_it_is_written(
    tmp_path: Path, ruby: str, expected: tuple[str, int, bool, str]
) -> None:
    write(tmp_path, INITIALIZER, f"# frozen_string_literal: true\n\n{ruby}\n")
    assert found(tmp_path) == [(*expected, INITIALIZER)]


@pytest.mark.parametrize(
    "ruby",
    [
        # From config vars or other code: not known at build time, and not the build's to read.
        "ActionMailer::Base.smtp_settings = { address: ENV['SMTP_HOST'], port: 587 }",
        "ActionMailer::Base.smtp_settings = { address: ENV.fetch('SMTP_HOST', 'smtp.x.com') }",
        "ActionMailer::Base.smtp_settings = { address: ENV['SMTP_HOST'] || 'smtp.example.com' }",
        "ActionMailer::Base.smtp_settings = { address: \"smtp.#{ENV['DOMAIN']}\" }",
        "ActionMailer::Base.smtp_settings = { address: Settings.smtp.host }",
        "ActionMailer::Base.smtp_settings = Rails.application.credentials.smtp",
        # Comments.
        "# ActionMailer::Base.smtp_settings = { address: 'smtp.example.com' }",
        "=begin\nActionMailer::Base.smtp_settings = { address: 'smtp.example.com' }\n=end",
        # Not production.
        "if Rails.env.development?\n  ActionMailer::Base.smtp_settings = "
        "{ address: 'localhost', port: 1025 }\nend",
        "ActionMailer::Base.smtp_settings = { address: 'localhost' } if Rails.env.test?",
        "unless Rails.env.production?\n  ActionMailer::Base.smtp_settings = "
        "{ address: 'localhost' }\nend",
        "case Rails.env\nwhen 'development'\n  ActionMailer::Base.smtp_settings = "
        "{ address: 'localhost' }\nend",
        # Words that only look like settings.
        "ActionMailer::Base.smtp_settings = { domain: 'address: smtp.example.com' }",
        "config.action_mailer.default_url_options = { host: 'www.example.com' }",
        "ActionMailer::Base.delivery_method = :smtp\nhost = { address: 'smtp.example.com' }",
    ],
    ids=[
        "env",
        "env-fetch-default",
        "env-or-literal",
        "interpolated",
        "method",
        "credentials",
        "line-comment",
        "block-comment",
        "if-development",
        "modifier-test",
        "unless-production",
        "case-development",
        "inside-a-string",
        "url-options",
        "other-hash",
    ],
)
def test_what_is_not_a_literal_production_setting_is_ignored(tmp_path: Path, ruby: str) -> None:
    write(tmp_path, INITIALIZER, ruby + "\n")
    settings = read_app_mail_settings(tmp_path)
    assert settings.servers == ()
    assert settings.notices == ()


def test_production_rb_comes_first_then_the_initializers_in_rails_order(tmp_path: Path) -> None:
    write(tmp_path, PRODUCTION, "config.action_mailer.smtp_settings = { address: 'a.example' }")
    write(
        tmp_path,
        "config/initializers/z_mail.rb",
        "ActionMailer::Base.smtp_settings = { address: 'z.example' }",
    )
    write(
        tmp_path,
        "config/initializers/mail/b.rb",
        "ActionMailer::Base.smtp_settings = { address: 'b.example' }",
    )
    write(
        tmp_path,
        "config/initializers/c.rb",
        "ActionMailer::Base.smtp_settings = { address: 'a.example' }",
    )
    write(
        tmp_path,
        "config/initializers/smtp_ca.rb",
        "ActionMailer::Base.smtp_settings = { address: 'own.example' }",
    )
    write(tmp_path, "config/initializers/readme.txt", "smtp_settings = { address: 'txt.example' }")
    assert [(host, where) for host, _, _, _, where in found(tmp_path)] == [
        ("a.example", PRODUCTION),  # found again in c.rb: once, under its first name
        ("b.example", "config/initializers/mail/b.rb"),  # Rails sorts the whole paths
        ("z.example", "config/initializers/z_mail.rb"),
    ]


def test_a_port_not_written_as_a_number_is_tried_on_587_and_said_so(tmp_path: Path) -> None:
    write(
        tmp_path,
        INITIALIZER,
        "ActionMailer::Base.smtp_settings = { address: 'mx.example', port: ENV['PORT'] }",
    )
    [server] = read_app_mail_settings(tmp_path).servers
    assert server.port == 587
    assert server.notes == (
        f"The port in {INITIALIZER} is not written there as a number: the check tries 587, "
        "the usual STARTTLS port.",
    )


@pytest.mark.parametrize(
    ("ruby", "fragment"),
    [
        (
            "address: 'smtp example.com'",
            "names the SMTP address 'smtp example.com', which is not a host name",
        ),
        (
            "address: 'smtp.example.com', port: 70000",
            "names port 70000 for smtp.example.com, which is not a port",
        ),
        # The app's Ruby looks '[::1]' up as a host name and fails, and checks the certificate
        # of '127.000.000.001' for that text: checking them here would pass what the app fails.
        (
            "address: '[::1]', port: 587",
            "names the SMTP address '[::1]', which is not a host name or an IP address as the "
            "app's Ruby takes them",
        ),
        (
            "address: '127.000.000.001', port: 587",
            "names the SMTP address '127.000.000.001', which is not a host name or an IP "
            "address as the app's Ruby takes them",
        ),
    ],
)
def test_a_literal_that_is_no_server_is_a_notice(tmp_path: Path, ruby: str, fragment: str) -> None:
    write(tmp_path, INITIALIZER, f"ActionMailer::Base.smtp_settings = {{ {ruby} }}\n")
    settings = read_app_mail_settings(tmp_path)
    assert settings.servers == ()
    [notice] = settings.notices
    assert notice.startswith(f"{INITIALIZER} ") and fragment in notice


def test_verify_modes_named_in_the_apps_settings(tmp_path: Path) -> None:
    write(
        tmp_path,
        PRODUCTION,
        "config.action_mailer.smtp_settings = {\n  address: 'mx.example',\n"
        "  openssl_verify_mode: OpenSSL::SSL::VERIFY_NONE,\n}\n",
    )
    write(
        tmp_path,
        "config/initializers/a.rb",
        "ActionMailer::Base.smtp_settings = { address: ENV['X'], openssl_verify_mode: 'none' }",
    )
    write(
        tmp_path,
        "config/initializers/b.rb",
        "ActionMailer::Base.smtp_settings = { openssl_verify_mode: ENV['MODE'] }",
    )
    settings = read_app_mail_settings(tmp_path)
    [server] = settings.servers
    assert server.verify_mode == "none"
    assert settings.names_verify_mode
    # The file whose server the check names says so at its step; the other needs a warning.
    assert settings.verify_none_files == ("config/initializers/a.rb",)
    write(tmp_path, "config/initializers/a.rb", "# nothing\n")
    write(tmp_path, "config/initializers/b.rb", "# nothing\n")
    write(tmp_path, PRODUCTION, "config.action_mailer.smtp_settings = { address: 'mx.example' }")
    assert not read_app_mail_settings(tmp_path).names_verify_mode


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({PRODUCTION: "openssl_verify_mode: ENV['SMTP_OPENSSL_VERIFY_MODE']"}, True),
        ({"config/email.yml": "openssl_verify_mode: <%= ENV['SMTP_OPENSSL_VERIFY_MODE'] %>"}, True),
        (
            {PRODUCTION: "smtp_settings = { address: ENV['MAILGUN_SMTP_SERVER'] }"},
            False,
        ),
        ({"config/application.rb": "# an app"}, None),
        ({}, None),
    ],
    ids=["production-rb", "email-yml", "other-rails-app", "no-production-rb", "empty"],
)
def test_whether_the_app_reads_mastodons_verify_mode_variable(
    tmp_path: Path, files: dict[str, str], expected: bool | None
) -> None:
    for relative, text in files.items():
        write(tmp_path, relative, text)
    assert read_app_mail_settings(tmp_path).reads_mastodon_verify_mode is expected


# Odd files: a warning that names the file, never a failure or a hang.


def _fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda p: p.write_bytes(b"# x\n" * (MAX_FILE_BYTES // 4 + 1)),
            f"larger than a config file written by hand ({MAX_FILE_BYTES // 1024} KiB at most)",
        ),
        (
            lambda p: p.write_bytes(b"smtp_settings = {}\0\1\2"),
            "holds NUL bytes, so it is not Ruby source",
        ),
        (lambda p: p.symlink_to(p.parent / "gone.rb"), "is a symbolic link to nothing"),
        (_fifo, "is not a regular file"),
    ],
    ids=["huge", "binary", "dangling-link", "fifo"],
)
def test_an_odd_config_file_is_a_warning_that_names_it(
    tmp_path: Path, make: object, fragment: str
) -> None:
    path = tmp_path / INITIALIZER
    path.parent.mkdir(parents=True)
    make(path)  # type: ignore[operator]
    write(
        tmp_path,
        "config/initializers/z.rb",
        "ActionMailer::Base.smtp_settings = { address: 'mx.example' }",
    )
    settings = read_app_mail_settings(tmp_path)
    [notice] = settings.notices
    assert notice.startswith(f"{INITIALIZER} in the app ") and fragment in notice
    assert notice.endswith("checks none named there.")
    # The files after it are still read.
    assert [s.host for s in settings.servers] == ["mx.example"]


def test_non_utf8_text_is_read_without_a_word(tmp_path: Path) -> None:
    (tmp_path / "config/initializers").mkdir(parents=True)
    (tmp_path / INITIALIZER).write_bytes(
        b"# caf\xe9 (Latin-1)\nActionMailer::Base.smtp_settings = { address: 'mx.example' }\n"
    )
    settings = read_app_mail_settings(tmp_path)
    assert settings.notices == () and [s.host for s in settings.servers] == ["mx.example"]


def test_an_unreadable_config_file_is_a_warning() -> None:
    # As nobody when the tests run as root: root reads any file whatever its mode.
    with sandbox("smtp-ca-unreadable-initializer-") as box:
        app = box.root / "app"
        path = write(
            app, INITIALIZER, "ActionMailer::Base.smtp_settings = { address: 'mx.example' }"
        )
        path.chmod(0)
        give_to_nobody([app, app / "config", path.parent, path])
        completed = box.python(
            "import sys; from pathlib import Path\n"
            "from smtp_ca.settings.app_config import read_app_mail_settings\n"
            "print(repr(read_app_mail_settings(Path(sys.argv[1])).notices))\n",
            str(app),
        )
    assert completed.returncode == 0, completed.stderr
    assert f"{INITIALIZER} in the app cannot be read (Permission denied)" in completed.stdout


def test_too_many_initializers_are_read_up_to_the_cap(tmp_path: Path) -> None:
    for number in range(MAX_FILES + 5):
        write(tmp_path, f"config/initializers/{number:04d}.rb", "# nothing\n")
    write(
        tmp_path,
        "config/initializers/9999.rb",
        "ActionMailer::Base.smtp_settings = { address: 'late.example' }",
    )
    settings = read_app_mail_settings(tmp_path)
    assert settings.servers == ()
    [notice] = settings.notices
    assert f"holds {MAX_FILES + 6} .rb files: the build read the first {MAX_FILES}" in notice


def test_a_huge_settings_block_is_bounded(tmp_path: Path) -> None:
    filler = "  # " + "x" * 70 + "\n"
    write(
        tmp_path,
        INITIALIZER,
        "ActionMailer::Base.smtp_settings = {\n" + filler * 3000 + "  address: 'far.example'\n}\n",
    )
    # Past MAX_BLOCK characters of one hash the scan stops looking: nothing, and quickly.
    assert read_app_mail_settings(tmp_path) == AppMailSettings(reads_mastodon_verify_mode=None)


# --- in a build: the check of each server found ------------------------------------------------


@pytest.fixture(scope="module")
def provider_ca() -> trustme.CA:
    """The provider's private CA: given to the build only in SMTP_CA_CERTS."""
    return trustme.CA()


@pytest.fixture(scope="module")
def server(provider_ca: trustme.CA) -> Iterator[SMTPTestServer]:
    with SMTPTestServer(mode="starttls", ca=provider_ca, credentials=("login", "pass")) as smtp:
        yield smtp


class Build:
    """pipeline.run in-process, as bin/compile runs it, on an app of our own making."""

    def __init__(self, tmp_path: Path, ca: trustme.CA) -> None:
        self.app = tmp_path / "build"
        (self.app / "config").mkdir(parents=True)
        self.env_dir = tmp_path / "env"
        self.cache = tmp_path / "cache"
        self.buildpack = tmp_path / "buildpack"
        self.buildpack.mkdir()
        self.ca = ca
        self.out = LogBuffer()
        self.err = LogBuffer()

    def __call__(self, **config_vars: str) -> None:
        variables = {
            "SMTP_CA_BUNDLE_URL": "none",
            "SMTP_CA_PUBLIC_ROOTS": "false",
            "SMTP_CA_CERTS": self.ca.cert_pem.bytes().decode(),
            "SMTP_CA_CHECK_TIMEOUT": "5",
            **config_vars,
        }
        self.env_dir.mkdir(exist_ok=True)
        for name, value in variables.items():
            (self.env_dir / name).write_text(value)
        platform = ClassicPlatform(
            app_dir=self.app,
            cache_dir=self.cache / "smtp-ca",
            config_dir=self.env_dir,
            buildpack_dir=self.buildpack,
        )
        pipeline.run(platform, Log(out=self.out, err=self.err))

    @property
    def output(self) -> str:
        return self.out.getvalue() + self.err.getvalue()

    @property
    def steps(self) -> list[str]:
        return [line for line in self.out.getvalue().splitlines() if line.startswith("-----> ")]

    def write(self, relative: str, text: str) -> None:
        write(self.app, relative, text)


@pytest.fixture
def build(tmp_path: Path, provider_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> Build:
    site_packages = Path(jinja2.__file__).resolve().parents[1]
    monkeypatch.setattr(pipeline, "ensure_dependencies", lambda *args, **kwargs: site_packages)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("STACK", STACK)
    return Build(tmp_path, provider_ca)


def checked(port: int, found_in: str, host: str = "localhost") -> str:
    return f"-----> Checking {host}:{port} (STARTTLS, from {found_in}) against the bundle"


def verified(port: int, host: str = "localhost") -> str:
    return f"       {host}:{port} (STARTTLS): verified, TLSv1.3."


@pytest.mark.parametrize(
    ("variables", "found_in"),
    [
        (
            lambda port: {
                "MAILGUN_SMTP_SERVER": "localhost",
                "MAILGUN_SMTP_PORT": str(port),
                "MAILGUN_SMTP_LOGIN": ADDON_SECRETS["MAILGUN_SMTP_LOGIN"],
                "MAILGUN_SMTP_PASSWORD": ADDON_SECRETS["MAILGUN_SMTP_PASSWORD"],
                "MAILGUN_API_KEY": ADDON_SECRETS["MAILGUN_API_KEY"],
            },
            "MAILGUN_SMTP_SERVER",
        ),
        (
            lambda port: {
                "SPARKPOST_SMTP_HOST": "localhost",
                "SPARKPOST_SMTP_PORT": str(port),
                "SPARKPOST_SMTP_PASSWORD": ADDON_SECRETS["SPARKPOST_SMTP_PASSWORD"],
                "SPARKPOST_API_KEY": ADDON_SECRETS["SPARKPOST_API_KEY"],
            },
            "SPARKPOST_SMTP_HOST",
        ),
        (
            lambda port: {
                "CLOUDMAILIN_SMTP_URL": smtp_url(port),
                "CLOUDMAILIN_PASSWORD": ADDON_SECRETS["CLOUDMAILIN_PASSWORD"],
            },
            "CLOUDMAILIN_SMTP_URL",
        ),
    ],
    ids=["mailgun", "sparkpost", "cloudmailin"],
)
def test_an_add_ons_variables_lead_the_check_to_its_server(
    build: Build, server: SMTPTestServer, variables: object, found_in: str
) -> None:
    config_vars = variables(server.port)  # type: ignore[operator]
    logins = len(server.auth_commands)
    build(SMTP_CA_CHECK="strict", **config_vars)
    assert build.steps[-2:] == [
        checked(server.port, found_in),
        "-----> Wiring the bundle into the app",
    ]
    assert verified(server.port) in build.out.getvalue()
    assert "SMTP_CA_CERTS" in build.out.getvalue()  # anchored by the private CA given there
    assert build.err.getvalue() == ""
    assert len(server.auth_commands) == logins  # the check never logs in
    for secret in [*ADDON_SECRETS.values(), CLOUDMAILIN_SECRET, CLOUDMAILIN_USER]:
        assert secret not in build.output


@pytest.fixture
def provider_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """A name lookup that answers for a provider's documented host alone, with a loopback
    port: {host: port}. Any other name fails as an unknown one, so the test resolves nothing
    real; the build's own lookup code (its deadline, its thread) still runs."""
    answers: dict[str, int] = {}
    real = smtp_session.resolve_within

    def resolve(host: str, port: int, seconds: float) -> list[object]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not one of this test's hosts")
        return real("127.0.0.1", answers[host], seconds)  # type: ignore[return-value]

    monkeypatch.setattr(smtp_session, "resolve_within", resolve)
    yield answers


@pytest.mark.parametrize(
    ("host", "variables", "found_in"),
    [
        (
            "smtp.sendgrid.net",
            {
                "SENDGRID_USERNAME": ADDON_SECRETS["SENDGRID_USERNAME"],
                "SENDGRID_PASSWORD": ADDON_SECRETS["SENDGRID_PASSWORD"],
            },
            "SENDGRID_USERNAME",
        ),
        (
            "smtp.sendgrid.net",
            {"SENDGRID_API_KEY": ADDON_SECRETS["SENDGRID_API_KEY"]},
            "SENDGRID_API_KEY",
        ),
        (
            "smtp.mandrillapp.com",
            {
                "MANDRILL_USERNAME": ADDON_SECRETS["MANDRILL_USERNAME"],
                "MANDRILL_APIKEY": ADDON_SECRETS["MANDRILL_APIKEY"],
            },
            "MANDRILL_USERNAME",
        ),
    ],
    ids=["sendgrid-login", "sendgrid-api-key", "mandrill"],
)
def test_a_provider_with_one_documented_host_is_checked_there(
    build: Build,
    provider_ca: trustme.CA,
    provider_host: dict[str, int],
    host: str,
    variables: dict[str, str],
    found_in: str,
) -> None:
    with SMTPTestServer(mode="starttls", ca=provider_ca, cert_names=(host,)) as provider:
        provider_host[host] = provider.port
        build(SMTP_CA_CHECK="strict", **variables)
    out = build.out.getvalue()
    assert checked(587, found_in, host) in build.steps
    assert verified(587, host) in out  # the certificate names the documented host
    assert build.err.getvalue() == ""
    for secret in ADDON_SECRETS.values():
        assert secret not in build.output


def test_a_literal_host_in_production_rb_and_in_an_initializer_is_checked(
    build: Build, provider_ca: trustme.CA, server: SMTPTestServer
) -> None:
    with SMTPTestServer(mode="implicit-tls", ca=provider_ca) as tls:
        build.write(
            PRODUCTION,
            "Rails.application.configure do\n"
            "  config.action_mailer.delivery_method = :smtp\n"
            "  config.action_mailer.smtp_settings = {\n"
            f"    address: 'localhost', port: {server.port},\n"
            "    user_name: ENV['SMTP_USER'], password: ENV['SMTP_PASS'],\n"
            "  }\nend\n",
        )
        build.write(
            "config/initializers/smtp_settings.rb",
            f'ActionMailer::Base.smtp_settings = {{ :address => "127.0.0.1", :port => {tls.port}, '
            ":ssl => true }\n",
        )
        build(SMTP_CA_CHECK="strict")
    assert build.steps[-3:-1] == [
        checked(server.port, PRODUCTION),
        f"-----> Checking 127.0.0.1:{tls.port} (TLS, from config/initializers/smtp_settings.rb) "
        "against the bundle",
    ]
    out = build.out.getvalue()
    assert verified(server.port) in out
    assert f"       127.0.0.1:{tls.port} (TLS): verified, TLSv1.3." in out


def test_every_server_found_is_checked_each_once_in_order(
    build: Build, provider_ca: trustme.CA, server: SMTPTestServer
) -> None:
    with (
        SMTPTestServer(mode="starttls", ca=provider_ca) as mastodon,
        SMTPTestServer(mode="starttls", ca=provider_ca) as relay,
    ):
        build.write(
            INITIALIZER,
            f"ActionMailer::Base.smtp_settings = {{ address: 'localhost', port: {relay.port} }}\n",
        )
        # The same server again, in the app's own config: checked once, as MAILGUN_SMTP_SERVER.
        build.write(
            PRODUCTION,
            f"smtp_settings = {{ address: 'LOCALHOST', port: {server.port} }}\n",
        )
        build(
            SMTP_SERVER="localhost",
            SMTP_PORT=str(mastodon.port),
            SMTP_OPENSSL_VERIFY_MODE="peer",
            MAILGUN_SMTP_SERVER="localhost",
            MAILGUN_SMTP_PORT=str(server.port),
        )
    assert build.steps[-4:-1] == [
        f"-----> Checking localhost:{mastodon.port} (STARTTLS) against the bundle",
        checked(server.port, "MAILGUN_SMTP_SERVER"),
        checked(relay.port, INITIALIZER),
    ]
    for port in (mastodon.port, server.port, relay.port):
        assert build.out.getvalue().count(verified(port)) == 1


def test_a_failing_add_on_server_fails_a_strict_build_by_its_own_names(
    build: Build, server: SMTPTestServer
) -> None:
    with (
        SMTPTestServer(mode="starttls", ca=trustme.CA()) as stranger,  # a CA the bundle lacks
        pytest.raises(BuildError) as raised,
    ):
        build(
            SMTP_CA_CHECK="strict",
            MAILGUN_SMTP_SERVER="localhost",
            MAILGUN_SMTP_PORT=str(server.port),
            CLOUDMAILIN_SMTP_URL=smtp_url(stranger.port),
        )
    assert raised.value.message == STRICT_VERDICT
    assert verified(server.port) in build.out.getvalue()
    assert (
        f" !     localhost:{stranger.port} (STARTTLS): certificate verify failed"
        in build.err.getvalue()
    )
    assert not (build.app / ".smtp-ca").exists()
    assert CLOUDMAILIN_SECRET not in build.output


def test_a_closed_port_is_named_where_it_was_found(build: Build) -> None:
    closed = free_port()
    build.write(
        INITIALIZER,
        f"ActionMailer::Base.smtp_settings = {{ address: 'localhost', port: {closed} }}\n",
    )
    build()
    assert (
        f" !     Check the port in {INITIALIZER}: SendGrid and most providers take 587"
        in build.err.getvalue()
    )
    build.err = LogBuffer()
    build(MAILGUN_SMTP_SERVER="localhost", MAILGUN_SMTP_PORT=str(closed))
    assert (
        " !     Check MAILGUN_SMTP_PORT: SendGrid and most providers take 587"
        in build.err.getvalue()
    )


def test_unencrypted_literal_settings_are_named_and_fail_a_strict_build(build: Build) -> None:
    build.write(
        INITIALIZER,
        "ActionMailer::Base.smtp_settings = {\n  address: 'localhost', port: 25,\n"
        "  enable_starttls_auto: false\n}\n",
    )
    build()
    assert (
        "-----> Skipping the SMTP handshake check: mail to localhost:25 "
        f"(STARTTLS, from {INITIALIZER}) is not encrypted" in build.steps
    )
    assert (
        f"STARTTLS is turned off in {INITIALIZER} (enable_starttls_auto: false) and tls is not true"
        in build.err.getvalue()
    )
    with pytest.raises(BuildError) as raised:
        build(SMTP_CA_CHECK="strict")
    assert (
        f"SMTP_CA_CHECK=strict, but STARTTLS is turned off in {INITIALIZER}" in raised.value.message
    )


def test_a_literal_verify_mode_none_is_warned_in_the_apps_words(
    build: Build, server: SMTPTestServer
) -> None:
    build.write(
        INITIALIZER,
        f"ActionMailer::Base.smtp_settings = {{ address: 'localhost', port: {server.port}, "
        "openssl_verify_mode: :none }\n",
    )
    build()
    err = build.err.getvalue()
    assert (
        f" !     Warning: {INITIALIZER} sets openssl_verify_mode to none: the app verifies no "
        "certificate, so any server that answers for localhost gets the mail and the SMTP "
        "password." in err
    )
    assert (
        " !     Warning: With this bundle, openssl_verify_mode: 'peer' works: set it in "
        f"{INITIALIZER}" in err
    )
    assert "SMTP_OPENSSL_VERIFY_MODE" not in build.output


def test_odd_config_files_warn_under_the_mail_step_and_the_build_goes_on(
    build: Build, server: SMTPTestServer
) -> None:
    (build.app / "config/initializers").mkdir(parents=True)
    (build.app / "config/initializers/broken.rb").symlink_to("/nonexistent/broken.rb")
    (build.app / "config/initializers/blob.rb").write_bytes(b"\0" * 10)
    build(MAILGUN_SMTP_SERVER="localhost", MAILGUN_SMTP_PORT=str(server.port))
    err = build.err.getvalue()
    assert " !     Warning: config/initializers/blob.rb in the app holds NUL bytes" in err
    assert (
        " !     Warning: config/initializers/broken.rb in the app is a symbolic link to nothing"
        in err
    )
    assert verified(server.port) in build.out.getvalue()
    assert "Traceback" not in build.output


def test_no_server_anywhere_skips_the_check_and_says_where_it_looked(build: Build) -> None:
    build.write(PRODUCTION, "config.action_mailer.smtp_settings = { address: ENV['MAIL_HOST'] }\n")
    build()
    assert f"-----> {NO_SERVER_FOUND}" in build.steps
    assert (build.app / ".smtp-ca/ca-bundle.pem").is_file()


def test_every_add_on_secret_is_redacted_wherever_it_turns_up(build: Build) -> None:
    """A secret pasted into a variable whose value a message quotes (a port) is redacted
    there too; the CloudMailin URL's password, as written and percent-encoded, likewise."""
    secrets = dict(ADDON_SECRETS)
    secrets["MAILGUN_SMTP_PASSWORD"] = "pasted-into-the-port"
    build(
        **secrets,
        MAILGUN_SMTP_SERVER="localhost",
        MAILGUN_SMTP_PORT="pasted-into-the-port",
        SPARKPOST_SMTP_HOST="localhost",
        SPARKPOST_SMTP_PORT=ADDON_SECRETS["SPARKPOST_API_KEY"],
        CLOUDMAILIN_SMTP_URL="smtp://user:p%40ss-w0rd-secret@cm.example:99999",
        SMTP_CA_CHECK="off",
    )
    output = build.output
    assert "MAILGUN_SMTP_PORT is '[REDACTED]'" in output
    assert "SPARKPOST_SMTP_PORT is '[REDACTED]'" in output
    for secret in [*secrets.values(), "p%40ss-w0rd-secret", "p@ss-w0rd-secret"]:
        assert secret not in output


class FifoCanary:
    """A FIFO in ENV_DIR that records whether anything opened it: a thread keeps trying to
    open its writing end without blocking, which succeeds only while a reader has it open (and
    then hands that reader a value, so a reader never hangs)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            try:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # ENXIO: no reader
            self.opened = True
            with suppress(OSError):
                os.write(descriptor, b"canary.invalid")
            os.close(descriptor)

    def __enter__(self) -> FifoCanary:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_the_build_reads_no_other_config_var(build: Build, server: SMTPTestServer) -> None:
    """Canaries a reader could not pass unnoticed, under names an SMTP server could plausibly
    hide behind: a FIFO that records being opened, a directory (any read of it fails), and
    hosts and ports of a listener that counts connections. The build reads the add-on's
    variables, checks that server, and touches none of the canaries."""
    build.env_dir.mkdir()
    (build.env_dir / "DATABASE_URL").mkdir()
    with (
        FifoCanary(build.env_dir / "SENDGRID_SMTP_SERVER") as fifo,
        SilentServer() as listener,
    ):
        canaries = {
            f"{name}_{suffix}": value
            for name in ("SMTP", "MAIL", "POSTMARK_SMTP", "MAILJET_SMTP", "SES_SMTP")
            for suffix, value in (("HOST", "127.0.0.1"), ("ADDRESS", "127.0.0.1"))
        } | {
            name: str(listener.port)
            for name in ("MAIL_PORT", "SMTP_HOST_PORT", "POSTMARK_SMTP_PORT", "MAILGUN_PORT")
        }
        build(
            **canaries,
            MAILGUN_DOMAIN="canary.invalid",
            MAILGUN_SMTP_SERVER="localhost",
            MAILGUN_SMTP_PORT=str(server.port),
            SMTP_CA_CHECK="strict",
        )
        assert listener.accepted == []
        assert not fifo.opened
    assert checked(server.port, "MAILGUN_SMTP_SERVER") in build.steps
    assert "canary" not in build.output
    assert "DATABASE_URL" not in build.output
    assert set(read_config_dir(build.env_dir)) <= set(VARIABLES)


def test_a_cnb_build_reads_the_add_ons_variables_from_the_platform_dir(
    tmp_path: Path,
    provider_ca: trustme.CA,
    server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site_packages = Path(jinja2.__file__).resolve().parents[1]
    monkeypatch.setattr(pipeline, "ensure_dependencies", lambda *args, **kwargs: site_packages)
    monkeypatch.setattr(sys, "path", list(sys.path))
    app, layers, platform_dir = tmp_path / "workspace", tmp_path / "layers", tmp_path / "platform"
    for directory in (app / "config", layers, platform_dir / "env"):
        directory.mkdir(parents=True)
    write(
        app,
        INITIALIZER,
        "ActionMailer::Base.smtp_settings = { address: ENV['MAILGUN_SMTP_SERVER'] }\n",
    )
    for name, value in {
        "SMTP_CA_BUNDLE_URL": "none",
        "SMTP_CA_PUBLIC_ROOTS": "false",
        "SMTP_CA_CERTS": provider_ca.cert_pem.bytes().decode(),
        "SMTP_CA_CHECK": "strict",
        "MAILGUN_SMTP_SERVER": "localhost",
        "MAILGUN_SMTP_PORT": str(server.port),
        "MAILGUN_SMTP_PASSWORD": ADDON_SECRETS["MAILGUN_SMTP_PASSWORD"],
    }.items():
        (platform_dir / "env" / name).write_text(value)
    environ = {
        "CNB_LAYERS_DIR": str(layers),
        "CNB_PLATFORM_DIR": str(platform_dir),
        "CNB_TARGET_DISTRO_NAME": "ubuntu",
        "CNB_TARGET_DISTRO_VERSION": "24.04",
    }
    out, err = LogBuffer(), LogBuffer()
    pipeline.run(CnbPlatform.from_environment(environ, app), Log(out=out, err=err))
    assert checked(server.port, "MAILGUN_SMTP_SERVER") in out.getvalue()
    assert verified(server.port) in out.getvalue()
    assert ADDON_SECRETS["MAILGUN_SMTP_PASSWORD"] not in out.getvalue() + err.getvalue()
