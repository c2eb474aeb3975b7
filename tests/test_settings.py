"""Config vars: defaults, validation messages that name the variable, Mastodon's parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtp_ca.errors import BuildError
from smtp_ca.settings import (
    DEFAULT_BUNDLE_SHA256,
    DEFAULT_BUNDLE_URL,
    load_settings,
    read_env_dir,
)

STACK = "heroku-24"


def test_defaults_use_godaddy_bundle_with_its_pin() -> None:
    settings = load_settings({}, STACK)
    assert settings.bundle_url == DEFAULT_BUNDLE_URL
    assert settings.bundle_sha256 == DEFAULT_BUNDLE_SHA256
    assert settings.public_roots is True
    assert settings.check_mode == "warn"
    assert settings.check_timeout == 10
    assert settings.smtp_server is None
    assert settings.smtp_port == 25
    assert settings.starttls == "auto"
    assert settings.implicit_tls is False


def test_custom_url_has_no_default_pin() -> None:
    settings = load_settings({"SMTP_CA_BUNDLE_URL": "https://ca.example/bundle.pem"}, STACK)
    assert settings.bundle_sha256 is None


def test_pin_is_normalised() -> None:
    pin = "SHA256:" + DEFAULT_BUNDLE_SHA256.upper()
    assert load_settings({"SMTP_CA_BUNDLE_SHA256": pin}, STACK).bundle_sha256 == (
        DEFAULT_BUNDLE_SHA256
    )


@pytest.mark.parametrize("stack", ["heroku-22", "heroku-24", "heroku-26"])
def test_current_stacks_are_accepted(stack: str) -> None:
    assert load_settings({}, stack).stack == stack


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        ("heroku-20", "heroku-20 is end of life"),
        ("heroku-18", "heroku-18 is end of life"),
        ("container", "Unknown stack 'container'"),
        (None, "STACK is not set"),
    ],
)
def test_other_stacks_are_refused_by_name(stack: str | None, expected: str) -> None:
    with pytest.raises(BuildError) as error:
        load_settings({}, stack)
    assert expected in error.value.message


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"SMTP_PORT": "0"}, "SMTP_PORT is '0'"),
        ({"SMTP_PORT": "65536"}, "from 1 to 65535"),
        ({"SMTP_PORT": "587a"}, "SMTP_PORT is '587a'"),
        ({"SMTP_CA_CHECK": "always"}, "SMTP_CA_CHECK is 'always', which is not one of"),
        ({"SMTP_CA_CHECK_TIMEOUT": "-1"}, "SMTP_CA_CHECK_TIMEOUT is '-1'"),
        ({"SMTP_CA_CHECK_TIMEOUT": "9999"}, "at most 120"),
        ({"SMTP_CA_CHECK_TIMEOUT": "ten"}, "SMTP_CA_CHECK_TIMEOUT is 'ten'"),
        ({"SMTP_CA_BUNDLE_URL": "http://example.com/b.crt"}, "SMTP_CA_BUNDLE_URL uses http://"),
        ({"SMTP_CA_BUNDLE_URL": "ftp://example.com/b.crt"}, "https:// URL or a file:// path"),
        ({"SMTP_CA_BUNDLE_SHA256": "abc"}, "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal"),
        ({"SMTP_CA_PUBLIC_ROOTS": "yes"}, "SMTP_CA_PUBLIC_ROOTS is 'yes'"),
        ({"SMTP_OPENSSL_VERIFY_MODE": "strict"}, "SMTP_OPENSSL_VERIFY_MODE is 'strict'"),
        ({"SMTP_SERVER": "smtp example.com"}, "SMTP_SERVER must be a host name"),
    ],
)
def test_bad_values_name_the_variable(variables: dict[str, str], expected: str) -> None:
    with pytest.raises(BuildError) as error:
        load_settings(variables, STACK)
    assert expected in error.value.message
    assert error.value.hint


def test_http_refusal_gives_the_reason() -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"SMTP_CA_BUNDLE_URL": "http://example.com/b.crt"}, STACK)
    assert "rewrite" in error.value.message


@pytest.mark.parametrize(
    ("variables", "implicit_tls", "starttls"),
    [
        ({"SMTP_TLS": "true"}, True, "auto"),
        ({"SMTP_SSL": "true"}, True, "auto"),
        ({"SMTP_TLS": "TRUE"}, False, "auto"),  # Mastodon compares with == 'true'
        ({"SMTP_ENABLE_STARTTLS": "never"}, False, "never"),
        ({"SMTP_ENABLE_STARTTLS": "always"}, False, "always"),
        ({"SMTP_ENABLE_STARTTLS_AUTO": "false"}, False, "never"),
        ({"SMTP_ENABLE_STARTTLS_AUTO": "False"}, False, "auto"),  # only 'false' turns it off
        ({"SMTP_ENABLE_STARTTLS": "auto", "SMTP_ENABLE_STARTTLS_AUTO": "false"}, False, "auto"),
    ],
)
def test_transport_is_read_as_mastodon_reads_it(
    variables: dict[str, str], implicit_tls: bool, starttls: str
) -> None:
    settings = load_settings(variables, STACK)
    assert (settings.implicit_tls, settings.starttls) == (implicit_tls, starttls)


def test_values_mastodon_reads_oddly_give_a_notice() -> None:
    settings = load_settings({"SMTP_TLS": "TRUE", "SMTP_ENABLE_STARTTLS_AUTO": "no"}, STACK)
    assert any("SMTP_TLS is 'TRUE'" in notice for notice in settings.notices)
    assert any("SMTP_ENABLE_STARTTLS_AUTO is 'no'" in notice for notice in settings.notices)


def test_secrets_are_collected_for_redaction() -> None:
    settings = load_settings({"SMTP_PASSWORD": "s3cret-pass", "SMTP_LOGIN": "apikey"}, STACK)
    assert set(settings.secrets) == {"s3cret-pass", "apikey"}


def test_env_dir_is_one_file_per_variable(tmp_path: Path) -> None:
    (tmp_path / "SMTP_SERVER").write_text("smtp.sendgrid.net\n")
    (tmp_path / "SMTP_PASSWORD").write_text(" spaces kept ")
    assert read_env_dir(tmp_path) == {
        "SMTP_SERVER": "smtp.sendgrid.net",
        "SMTP_PASSWORD": " spaces kept ",
    }
    assert read_env_dir(tmp_path / "missing") == {}
    assert read_env_dir(None) == {}
