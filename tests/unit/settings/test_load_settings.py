"""Config vars: defaults, validation messages that name the variable, Mastodon's parsing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from smtp_ca.errors import BuildError
from smtp_ca.settings.ca import DEFAULT_BUNDLE_SHA256, DEFAULT_BUNDLE_URL
from smtp_ca.settings.load import ca_file_warnings, load_settings
from smtp_ca.settings.values import parse_debug, read_config_dir

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


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, "peer"), ("peer", "peer"), (" OFF ", "off"), ("Off", "off")]
)
def test_the_verify_default_is_peer_unless_turned_off(raw: str | None, expected: str) -> None:
    variables = {} if raw is None else {"SMTP_CA_VERIFY_DEFAULT": raw}
    settings = load_settings(variables, STACK)
    assert settings.verify_default == expected
    assert not [notice for notice in settings.config_notices if "VERIFY_DEFAULT" in notice]


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
        ({"SMTP_CA_CHECK_TIMEOUT": "9999"}, "from 0.001 to 120"),
        ({"SMTP_CA_CHECK_TIMEOUT": "ten"}, "SMTP_CA_CHECK_TIMEOUT is 'ten'"),
        ({"SMTP_CA_BUNDLE_URL": "http://example.com/b.crt"}, "SMTP_CA_BUNDLE_URL uses http://"),
        (
            {"SMTP_CA_BUNDLE_URL": "ftp://example.com/b.crt"},
            "https:// URL, a file:// path, or none",
        ),
        ({"SMTP_CA_BUNDLE_SHA256": "abc"}, "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal"),
        ({"SMTP_CA_PUBLIC_ROOTS": "yes"}, "SMTP_CA_PUBLIC_ROOTS is 'yes'"),
        ({"SMTP_OPENSSL_VERIFY_MODE": "strict"}, "SMTP_OPENSSL_VERIFY_MODE is 'strict'"),
        ({"SMTP_SERVER": "smtp example.com"}, "SMTP_SERVER must be a host name"),
        (
            {"SMTP_CA_VERIFY_DEFAULT": "none"},
            "SMTP_CA_VERIFY_DEFAULT is 'none', which is not one of: peer, off.",
        ),
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


def test_env_dir_is_one_file_per_variable(tmp_path: Path) -> None:
    (tmp_path / "SMTP_SERVER").write_text("smtp.sendgrid.net\n")
    (tmp_path / "SMTP_PASSWORD").write_text(" spaces kept ")
    assert read_config_dir(tmp_path) == {
        "SMTP_SERVER": "smtp.sendgrid.net",
        "SMTP_PASSWORD": " spaces kept ",
    }
    assert read_config_dir(tmp_path / "missing") == {}
    assert read_config_dir(None) == {}


# --- validation added for issue 4: every value, named, never a crash -------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"SMTP_PORT": "\u00b2"}, "SMTP_PORT is '\u00b2'"),  # isdigit(), yet int() refuses it
        ({"SMTP_PORT": "\u0665\u0668\u0667"}, "SMTP_PORT is"),  # int() takes other scripts
        ({"SMTP_CA_CHECK_TIMEOUT": "1_0"}, "SMTP_CA_CHECK_TIMEOUT is '1_0'"),
        ({"SMTP_CA_CHECK_TIMEOUT": "inf"}, "SMTP_CA_CHECK_TIMEOUT is 'inf'"),
        ({"SMTP_CA_CHECK_TIMEOUT": "1e1"}, "SMTP_CA_CHECK_TIMEOUT is '1e1'"),
        ({"SMTP_CA_BUNDLE_URL": "https://[::1/b.pem"}, "SMTP_CA_BUNDLE_URL is not a valid URL"),
        ({"SMTP_CA_BUNDLE_URL": "https://x/b\n.pem"}, "SMTP_CA_BUNDLE_URL holds a control"),
        ({"SMTP_CA_DEBUG": "maybe"}, "SMTP_CA_DEBUG is 'maybe', which is not one of"),
        ({"SMTP_SERVER": "smtp.bücher.example"}, "SMTP_SERVER must be a host name"),
        ({"SMTP_PORT": "9" * 300}, "SMTP_PORT is a value of 300 characters"),
        # Described as a quoted-back path is (untrusted.echoed): one wording for long values.
        ({"SMTP_CA_CHECK": "x" * 5000}, "SMTP_CA_CHECK is a value of 5,000 characters,"),
    ],
)
def test_more_bad_values_name_the_variable(variables: dict[str, str], expected: str) -> None:
    with pytest.raises(BuildError) as error:
        load_settings(variables, STACK)
    assert expected in error.value.message
    assert error.value.hint


def test_accepted_timeouts_are_plain_decimals() -> None:
    assert load_settings({"SMTP_CA_CHECK_TIMEOUT": "2.5"}, STACK).check_timeout == 2.5
    assert load_settings({"SMTP_CA_CHECK_TIMEOUT": ".5"}, STACK).check_timeout == 0.5
    assert load_settings({"SMTP_CA_CHECK_TIMEOUT": "120"}, STACK).check_timeout == 120


@pytest.mark.parametrize(
    ("value", "debug"),
    [("", False), ("0", False), ("no", False), ("FALSE", False), ("1", True), ("Yes", True)],
)
def test_debug_is_validated_like_the_other_flags(value: str, debug: bool) -> None:
    load_settings({"SMTP_CA_DEBUG": value}, STACK)  # a valid value never fails the build
    assert parse_debug(value) is debug


def test_unset_verify_mode_gets_a_one_line_notice() -> None:
    (notice,) = load_settings({}, STACK).notices
    assert notice.startswith("SMTP_OPENSSL_VERIFY_MODE is not set")
    assert "\n" not in notice
    assert load_settings({"SMTP_OPENSSL_VERIFY_MODE": "peer"}, STACK).notices == ()


def test_tls_set_to_false_warns_about_older_mastodon() -> None:
    settings = load_settings({"SMTP_TLS": "false", "SMTP_OPENSSL_VERIFY_MODE": "peer"}, STACK)
    assert settings.implicit_tls is False  # Mastodon 3.5+: only 'true'
    (notice,) = settings.notices
    assert "Mastodon 1.4 to 3.4 turn TLS on for any value that is set" in notice


def test_a_typo_in_the_buildpacks_own_namespace_is_pointed_out() -> None:
    variables = {"SMTP_CA_CHEK": "strict", "SMTP_OPENSSL_VERIFY_MODE": "peer"}
    settings = load_settings(variables, STACK)
    (notice,) = settings.config_notices  # the buildpack's own config: under the bundle step
    assert notice == (
        "SMTP_CA_CHEK is not a config var this buildpack reads; did you mean SMTP_CA_CHECK?"
    )
    assert settings.notices == ()


@pytest.mark.parametrize(
    ("name", "value", "stack", "expected"),
    [
        ("SMTP_CA_FILE", "/tmp/build_ab12/.smtp-ca/ca-bundle.pem", STACK, "exists only during"),
        ("SMTP_CA_FILE", "/work/app/.smtp-ca/ca-bundle.pem", STACK, "exists only during"),
        ("BULK_SMTP_CA_FILE", "/usr/lib/ssl/cert.pem", "heroku-26", "heroku-26 no longer has"),
        ("SMTP_CA_FILE", "$HOME/.smtp-ca/ca-bundle.pem", STACK, "not expanded by a shell"),
        ("SMTP_CA_FILE", "/usr/lib/ssl/cert.pem", "heroku-22", None),
        ("SMTP_CA_FILE", "/app/.smtp-ca/ca-bundle.pem", STACK, None),
    ],
)
def test_ca_file_that_the_dyno_cannot_open_is_named(
    name: str, value: str, stack: str, expected: str | None
) -> None:
    settings = load_settings({name: value}, stack)
    warnings = ca_file_warnings(settings, Path("/work/app"))
    if expected is None:
        assert warnings == []
    else:
        (warning,) = warnings
        assert warning.startswith(f"{name} is set to {value}") and expected in warning


# --- ENV_DIR ------------------------------------------------------------------------------------


def test_env_dir_reads_only_the_buildpacks_variables(tmp_path: Path) -> None:
    (tmp_path / "SMTP_PORT").write_text("587")
    (tmp_path / "DATABASE_URL").write_text("postgres://u:p@h/db")
    (tmp_path / "RAILS_MASTER_KEY").write_bytes(b"\xff\x00" * 100_000)  # never opened
    (tmp_path / "SMTP_CA_CHEK").write_text("strict")
    assert read_config_dir(tmp_path) == {"SMTP_PORT": "587", "SMTP_CA_CHEK": "strict"}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: path.mkdir(), "The config var SMTP_SERVER in ENV_DIR is a directory"),
        (lambda path: path.write_bytes(b"\xc3("), "is not text: byte 1 of its value is not UTF-8"),
        (lambda path: path.write_bytes(b"a\0b"), "holds a NUL byte"),
        (lambda path: path.write_bytes(b"x" * 70_000), "is 70000 bytes; Heroku allows 32 KB"),
        (lambda path: path.symlink_to(path.parent / "gone"), "symbolic link to a file that"),
        (lambda path: os.mkfifo(path), "is not a regular file"),
    ],
    ids=["directory", "binary", "nul", "huge", "dangling-link", "fifo"],
)
def test_env_dir_entries_that_are_not_values_are_named(
    tmp_path: Path, make: Callable[[Path], None], expected: str
) -> None:
    make(tmp_path / "SMTP_SERVER")
    with pytest.raises(BuildError) as error:
        read_config_dir(tmp_path)
    assert expected in error.value.message
    assert "SMTP_SERVER" in error.value.message


def test_env_dir_errors_never_show_the_value(tmp_path: Path) -> None:
    (tmp_path / "SMTP_PASSWORD").write_bytes(b"s3cret-value\xff")
    with pytest.raises(BuildError) as error:
        read_config_dir(tmp_path)
    assert "s3cret" not in f"{error.value.message} {error.value.hint}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("smtp.sendgrid.net", "smtp.sendgrid.net"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("2001:db8::25", "2001:db8::25"),
        ("10.0.0.5", "10.0.0.5"),
        ("0.example.com", "0.example.com"),
    ],
)
def test_smtp_server_takes_a_host_name_or_an_address(value: str, expected: str) -> None:
    assert load_settings({"SMTP_SERVER": value}, STACK).smtp_server == expected


@pytest.mark.parametrize(("value", "fix"), [("[::1]", "::1"), ("[2001:db8::25]", "2001:db8::25")])
def test_smtp_server_in_brackets_fails_as_the_apps_ruby_would(value: str, fix: str) -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"SMTP_SERVER": value}, STACK)
    assert error.value.message.startswith(
        f"SMTP_SERVER is {value!r}: the app's mail gem hands it to net-smtp as it is, and Ruby "
        "looks it up as a host name, brackets included"
    )
    assert error.value.hint == f"Set it with: heroku config:set SMTP_SERVER={fix}"


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("127.000.000.001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.0.0.05", "10.0.0.5"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
    ],
)
def test_an_ipv4_address_spelt_oddly_fails_with_the_usual_spelling(
    value: str, address: str
) -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"BULK_SMTP_SERVER": value}, STACK)
    assert error.value.message.startswith(
        f"BULK_SMTP_SERVER is {value!r}, which this machine connects to as the IPv4 address "
        f"{address}; the app's Ruby does not read it as an address"
    )
    assert error.value.hint == f"Set it with: heroku config:set BULK_SMTP_SERVER={address}"


@pytest.mark.parametrize(
    ("value", "holds", "fix"),
    [
        ("smtp.sendgrid.net:587", "a port", "SMTP_SERVER=smtp.sendgrid.net SMTP_PORT=587"),
        ("smtp://smtp.sendgrid.net", "a scheme (smtp://)", "SMTP_SERVER=smtp.sendgrid.net"),
        (
            "smtp://smtp.sendgrid.net:587",
            "a scheme (smtp://) and a port",
            "SMTP_SERVER=smtp.sendgrid.net SMTP_PORT=587",
        ),
        ("smtp.example.com/relay", "a path", "SMTP_SERVER=smtp.example.com"),
        ("[::1]:2525", "a port", "SMTP_SERVER=::1 SMTP_PORT=2525"),
        ("10.0.0.5:25", "a port", "SMTP_SERVER=10.0.0.5 SMTP_PORT=25"),
    ],
)
def test_smtp_server_with_a_port_scheme_or_path_fails_at_once(
    value: str, holds: str, fix: str
) -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"SMTP_SERVER": value}, STACK)
    assert error.value.message.startswith(f"SMTP_SERVER is {value!r}: it holds {holds}, but")
    assert "The port goes in SMTP_PORT." in error.value.message
    assert error.value.hint == f"Set them with: heroku config:set {fix}"


@pytest.mark.parametrize("value", ["smtp.example.com:port", "[::1", "smtp.example.com:587:1"])
def test_smtp_server_that_is_no_address_at_all(value: str) -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"SMTP_SERVER": value}, STACK)
    assert "SMTP_SERVER must be a host name or an IP address" in error.value.message
    assert "the port goes in SMTP_PORT" in error.value.message


def test_fetch_timeout_bounds_the_whole_download() -> None:
    assert load_settings({}, STACK).fetch_timeout == 30
    assert load_settings({"SMTP_CA_FETCH_TIMEOUT": "7.5"}, STACK).fetch_timeout == 7.5
    # A millisecond is the shortest, as the dyno check's --timeout takes it.
    assert load_settings({"SMTP_CA_FETCH_TIMEOUT": "0.001"}, STACK).fetch_timeout == 0.001
    for bad in ("0", "0.0009", "121", "1e1", "inf", "soon"):
        with pytest.raises(BuildError) as error:
            load_settings({"SMTP_CA_FETCH_TIMEOUT": bad}, STACK)
        assert error.value.message == (
            f"SMTP_CA_FETCH_TIMEOUT is {bad!r}; it must be a number of seconds from 0.001 to 120."
        )
        assert error.value.hint == "Set it with: heroku config:set SMTP_CA_FETCH_TIMEOUT=30"


def test_bundle_url_none_downloads_nothing() -> None:
    settings = load_settings({"SMTP_CA_BUNDLE_URL": "None"}, STACK)
    assert settings.bundle_url is None and settings.bundle_sha256 is None
    assert settings.public_roots and not settings.default_bundle
    pinned = load_settings(
        {"SMTP_CA_BUNDLE_URL": "none", "SMTP_CA_BUNDLE_SHA256": DEFAULT_BUNDLE_SHA256}, STACK
    )
    assert any("SMTP_CA_BUNDLE_URL=none" in notice for notice in pinned.config_notices)


def test_certs_are_read_as_text() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert load_settings({"SMTP_CA_CERTS": f"\n{pem}\n\n"}, STACK).ca_certs == pem
    assert load_settings({"SMTP_CA_CERTS": "  "}, STACK).ca_certs is None


def test_an_empty_bundle_fails_by_name_before_anything_is_read() -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"SMTP_CA_BUNDLE_URL": "none", "SMTP_CA_PUBLIC_ROOTS": "false"}, STACK)
    assert error.value.message == (
        "The CA bundle would be empty: SMTP_CA_BUNDLE_URL=none downloads nothing, "
        "SMTP_CA_PUBLIC_ROOTS=false adds no public roots, and SMTP_CA_CERTS is not set."
    )
    assert error.value.hint and "SMTP_CA_CERTS" in error.value.hint


def test_no_bulk_mail_server_unless_bulk_smtp_server_is_set() -> None:
    settings = load_settings({"SMTP_SERVER": "smtp.example.com", "BULK_SMTP_PORT": "465"}, STACK)
    assert settings.bulk_server is None
    assert [server.host for server in settings.servers] == ["smtp.example.com"]


def test_bulk_mail_server_is_read_as_mastodons_email_yml_reads_it() -> None:
    settings = load_settings(
        {
            "BULK_SMTP_SERVER": "bulk.example.com",
            "BULK_SMTP_PORT": "465",
            "BULK_SMTP_TLS": "true",
            "BULK_SMTP_OPENSSL_VERIFY_MODE": "Peer",
            "BULK_SMTP_CA_FILE": "/etc/ssl/certs/ca-certificates.crt",
        },
        STACK,
    )
    bulk = settings.bulk_server
    assert bulk is not None and bulk.is_bulk
    assert (bulk.host, bulk.port, bulk.implicit_tls, bulk.verify_mode) == (
        "bulk.example.com",
        465,
        True,
        "peer",
    )
    assert bulk.variable("SERVER") == "BULK_SMTP_SERVER"
    assert settings.servers == (bulk,)  # SMTP_SERVER is not set
    assert settings.user_bulk_ca_file == "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.parametrize(
    ("variables", "starttls"),
    [
        ({}, "auto"),
        ({"BULK_SMTP_ENABLE_STARTTLS": "always"}, "always"),
        ({"BULK_SMTP_ENABLE_STARTTLS": "never"}, "never"),
        ({"BULK_SMTP_ENABLE_STARTTLS": "false"}, "never"),  # 4.4's helper: 'false' is never
        ({"BULK_SMTP_ENABLE_STARTTLS_AUTO": "false"}, "never"),
        ({"BULK_SMTP_ENABLE_STARTTLS_AUTO": "FALSE"}, "auto"),  # only the exact 'false'
    ],
)
def test_bulk_starttls_switches(variables: dict[str, str], starttls: str) -> None:
    settings = load_settings({"BULK_SMTP_SERVER": "bulk.example.com", **variables}, STACK)
    assert settings.bulk_server is not None
    assert settings.bulk_server.starttls == starttls


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"BULK_SMTP_SERVER": "bulk.example.com:587"}, "BULK_SMTP_SERVER is 'bulk.example.com:"),
        ({"BULK_SMTP_PORT": "0"}, "BULK_SMTP_PORT is '0'; it must be a whole number"),
        ({"BULK_SMTP_OPENSSL_VERIFY_MODE": "yes"}, "BULK_SMTP_OPENSSL_VERIFY_MODE is 'yes'"),
    ],
)
def test_bad_bulk_values_name_their_variable(variables: dict[str, str], expected: str) -> None:
    with pytest.raises(BuildError) as error:
        load_settings({"BULK_SMTP_SERVER": "bulk.example.com", **variables}, STACK)
    assert error.value.message.startswith(expected)
    assert error.value.hint and "BULK_SMTP_" in error.value.hint


def test_bulk_values_mastodon_reads_oddly_give_notices_by_their_names() -> None:
    settings = load_settings(
        {"BULK_SMTP_SERVER": "bulk.example.com", "BULK_SMTP_TLS": "yes"}, STACK
    )
    tls = "BULK_SMTP_TLS is 'yes'; Mastodon 4.4 and later only take the exact value 'true'"
    assert any(n.startswith(tls) for n in settings.notices)
    assert any(n.startswith("BULK_SMTP_OPENSSL_VERIFY_MODE is not set") for n in settings.notices)
