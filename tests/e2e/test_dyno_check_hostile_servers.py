"""The dyno check (``ruby .smtp-ca/check.rb``) is bounded like the build's check (issue 24):
an endless SMTP reply is cut at the build's caps, a silent name server holds it no longer than
``--timeout``, what a server chose (certificate names, reply text) is escaped and cut by the
build's rule, a certificate message over OpenSSL's limit is named for what it is, and
``--timeout`` takes plain seconds only.

Every case runs on Debian's Ruby (this machine's) and on Ruby 2.7 (bullseye) and Ruby 3.3
(trixie) in the era chroots, with an app built by bin/compile on the host and started as a dyno.
The hostile servers listen on 127.0.0.1, which the chroots share. Each run asserts the exact
message and exit status, its time from the check's first line to its exit (the app's boot is
not the check's to bound) and its peak memory (``support.measured``).
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smtp_ca.check.smtp_session import MAX_REPLY_LINES, QUOTED_REPLY
from smtp_ca.untrusted import shown
from support.certs import Issued, make_leaf, make_root
from support.chroots import SYSTEM_PATH, ChrootSession, require_chroot
from support.heroku import move_to_dyno_path
from support.hostile_smtp import Behaviour, HostileSmtpServer, endless_ehlo, endless_greeting
from support.measured import Measured, run_measured
from support.pki import issue, server_context
from support.rails_app import (
    DYNO_CHECK_COMMAND,
    Shape,
    assert_no_secret_or_backtrace,
    dyno_environment,
    make_rails_app,
    require_ruby_rails,
    smtp_config_vars,
)
from support.scratch import fixture_dir
from support.silent_dns import SilentNameServer
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e

# Where the check runs: this machine's Ruby, and each era chroot's (its suite), and how the
# check's first lines name that Ruby.
RUNTIMES: dict[str, tuple[str | None, str]] = {
    "debian": (None, "Ruby "),
    "ruby-2.7": ("bullseye", "Ruby 2.7."),
    "ruby-3.3": ("trixie", "Ruby 3.3."),
}
# One app for all three: its settings (Mastodon 1.4's) load on Rails 6.0 to 7.2 alike.
SHAPE: Shape = "mastodon-1.4"
# What a run may take past its bound: Ruby's own start and exit, on a busy machine.
SLACK = 2.0
MAX_PEAK_KIB = 200 * 1024
CHECKING = "-----> Checking "
# Characters no line of the check's output may hold: C0 controls but the tab, DEL, C1 controls, and
# the bidi controls that reorder what a terminal shows.
RAW_CONTROLS = [
    chr(code)
    for code in [*range(0, 9), *range(11, 32), 127, *range(128, 160), *range(0x202A, 0x202F)]
]
CAP_HINT = (
    " !     Fix: A mail server's replies are a few short lines; this one did not stop. Check "
    "that SMTP_SERVER and SMTP_PORT name your provider's mail server, and ask the provider "
    "if they do.\n"
)


def mail_vars(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    return smtp_config_vars(host, port)


@pytest.fixture(scope="module")
def provider_root() -> Issued:
    return make_root("smtp-ca Dyno Bounds Root CA")


@pytest.fixture(scope="module")
def built(
    world: World,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider_root: Issued,
) -> Path:
    """The app, built once with the provider's root as its bundle, at its dyno path."""
    require_ruby_rails()
    bundle_vars = world.bundle_vars("/dyno-bounds-root.crt", provider_root.pem)
    where = fixture_dir(request, tmp_path_factory, "dyno-bounds")
    build_dir = make_rails_app(where / "build_0123abcd", SHAPE)
    build = world.build(
        where, {**mail_vars(1), **bundle_vars, "SMTP_CA_CHECK": "off"}, build_dir=build_dir
    )
    assert build.returncode == 0, build.output
    return move_to_dyno_path(build_dir, where / "app")


@dataclass(frozen=True)
class Dyno:
    """One runtime's dyno: ``check`` runs ``ruby .smtp-ca/check.rb ARGS`` as ``heroku run``
    starts it (config vars in the environment, .profile.d sourced), measured."""

    runtime: str
    app: Path
    session: ChrootSession | None
    scratch: Path

    def check(
        self,
        config_vars: dict[str, str],
        *arguments: str,
        name_server: SilentNameServer | None = None,
    ) -> Measured:
        script = ["bash", "-c", DYNO_CHECK_COMMAND, "dyno", *arguments]
        if self.session is None:
            command = script
            if name_server is not None:
                resolv_conf = self.scratch / "resolv.conf"
                resolv_conf.write_text(name_server.resolv_conf)
                command = name_server.host_command(resolv_conf, script)
            env = dyno_environment(self.app, config_vars)
            run = run_measured(command, env=env, cwd=self.app)
        else:
            if name_server is not None:
                self.session.write("/etc/resolv.conf", name_server.resolv_conf.encode())
            env = {**config_vars, "HOME": "/app", "RAILS_ENV": "production"}
            command = self.session.command_line(script, env=env, cwd="/app")
            run = run_measured(command, env={"PATH": SYSTEM_PATH})
        assert_no_secret_or_backtrace(run.output)
        return run

    def assert_ran(self, run: Measured) -> None:
        """The runtime's own Ruby ran the check (its first lines name it)."""
        ruby = RUNTIMES[self.runtime][1]
        assert any(line.startswith(f"       {ruby}") for _, line in run.lines), run.output


@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.needs_chroots) if suite else name
        for name, (suite, _) in RUNTIMES.items()
    ]
)
def dyno(request: pytest.FixtureRequest, built: Path, tmp_path: Path) -> Dyno:
    suite, _ = RUNTIMES[request.param]
    if suite is None:
        return Dyno(request.param, built, None, tmp_path)
    session = ChrootSession(require_chroot(suite), tmp_path / suite)
    session.copy_in(built, "/app")
    return Dyno(request.param, built, session, tmp_path)


def assert_bounded(run: Measured, bound: float) -> None:
    """Ended within ``bound`` (plus slack) of its first line, under the memory cap, and
    nothing raw from outside reached the output."""
    assert run.since(CHECKING) < bound + SLACK, (run.since(CHECKING), run.output)
    assert 0 < run.peak_kib < MAX_PEAK_KIB, (run.peak_kib, run.output)
    raw = [repr(character) for character in RAW_CONTROLS if character in run.output]
    assert not raw, (raw, run.output)


# --- replies that do not end ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "what"),
    [(endless_greeting, "greeting"), (endless_ehlo, "reply to EHLO")],
    ids=["endless-greeting", "endless-ehlo"],
)
def test_an_endless_reply_is_cut_at_the_builds_line_cap(
    dyno: Dyno, behaviour: Behaviour, what: str
) -> None:
    with HostileSmtpServer(behaviour) as server:
        run = dyno.check(mail_vars(server.port), "--timeout", "3")
    assert run.returncode == 1, run.output
    assert run.stderr == (
        f" !     127.0.0.1:{server.port} (STARTTLS): the server's {what} ran past "
        f"{MAX_REPLY_LINES} lines.\n{CAP_HINT}"
    ), run.output
    dyno.assert_ran(run)
    assert_bounded(run, 3)


# --- a name server that does not answer ------------------------------------------------------


@pytest.mark.needs_root
def test_a_silent_name_server_holds_the_check_no_longer_than_its_timeout(dyno: Dyno) -> None:
    host = "smtp.silent-name-server.test"
    with SilentNameServer() as name_server:
        run = dyno.check(mail_vars(587, host), "--timeout", "2", name_server=name_server)
    assert run.returncode == 1, run.output
    assert run.stderr == (
        f" !     {host}:587 (STARTTLS): no answer within 2 s (resolving the host name).\n"
        f" !     Fix: The dyno's name server did not answer for {host} in time: check "
        "SMTP_SERVER for a typo, or raise --timeout.\n"
    ), run.output
    dyno.assert_ran(run)
    assert_bounded(run, 2)


# --- what the server chose, shown by the build's rule -----------------------------------------


def _root_named(name: str) -> Issued:
    """A self-signed CA whose common name is ``name``, past the 64 characters cryptography
    allows by default: a server can send any name it likes."""
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the length, on purpose
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name, _validate=False)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


LEAF_NAME = "mail\u202etxt.exe\x1b[2J\n !     Fix: forged"
ROOT_NAME = "\u202e" * 400


@pytest.fixture(scope="module")
def long_hostile_chain() -> list[Issued]:
    """151 certificates as a server sends them, leaf first: a leaf named with a bidi control,
    an escape and a line break, 149 intermediates, and a root named by 400 bidi controls."""
    issuers = [_root_named(ROOT_NAME)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cryptography reads the root's long name
        for number in range(1, 150):
            issuers.append(issue(f"Chain Int {number}", issuers[-1], ca=True))
    leaf = issue(LEAF_NAME, issuers[-1], hostnames=("127.0.0.1",))
    return [leaf, *reversed(issuers)]


def test_certificate_names_are_escaped_and_cut_and_a_long_chain_is_listed_short(
    dyno: Dyno, long_hostile_chain: list[Issued]
) -> None:
    leaf, *chain = long_hostile_chain
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, *chain)) as server:
        run = dyno.check(mail_vars(server.port), "--timeout", "5")
    assert run.returncode == 1, run.output
    errors = run.stderr.splitlines()
    assert errors[0].startswith(
        f" !     127.0.0.1:{server.port} (STARTTLS): certificate verify "
    ), run.output
    # What the server sent: 151 certificates; Ruby 2.7's OpenSSL keeps none after a failed
    # handshake, and the check lists what OpenSSL had built when it stopped (at its depth limit).
    listing = errors[errors.index(" !     The server presented:") + 1 :]
    assert listing[11].startswith(" !     Fix: "), run.output  # ten certificates and a count
    numbered = [re.match(r" !       (\d+)\. ", line) for line in listing[:11]]
    numbers = [int(match.group(1)) for match in numbered if match]
    last = numbers[-1]
    assert numbers == [1, 2, 3, 4, 5, *range(last - 4, last + 1)], run.output
    assert listing[5] == f" !       … {last - 10} more", run.output
    leaf_name = shown(LEAF_NAME)
    assert leaf_name == "mail\\u202etxt.exe\\x1b[2J\\n !     Fix: forged"
    assert (
        listing[0] == f" !       1. {leaf_name}, issued by Chain Int 149, valid until {until(leaf)}"
    )
    assert listing[4].startswith(" !       5. Chain Int 146, issued by Chain Int 145, ")
    if last == len(long_hostile_chain):  # the whole chain: it ends at the root
        root_name = shown(ROOT_NAME)  # cut after 300 characters of escapes, with a note
        assert root_name == "\\u202e" * 50 + "… (350 more characters)"
        root = long_hostile_chain[-1]
        assert listing[10] == (
            f" !       151. {root_name}, issued by {root_name}, valid until {until(root)}"
        )
    assert not [line for line in errors if line.startswith(" !     Fix: forged")]
    dyno.assert_ran(run)
    assert_bounded(run, 5)


def until(cert: Issued) -> str:
    return f"{cert.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"


def _greeting_refused_with(text: bytes) -> Behaviour:
    def behave(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"554 " + text + b"\r\n")
        conn.recv(4096)  # until the client hangs up

    return behave


def test_the_servers_reply_is_quoted_escaped_and_cut(dyno: Dyno) -> None:
    text = "\x1b[2J\x1b]0;owned\x07\u202eevil " + "!" * 400
    with HostileSmtpServer(_greeting_refused_with(text.encode())) as server:
        run = dyno.check(mail_vars(server.port), "--timeout", "5")
    assert run.returncode == 1, run.output
    assert run.stderr == (
        f' !     127.0.0.1:{server.port} (STARTTLS): the server answered "554 '
        f'{shown(text, QUOTED_REPLY)}" (waiting for the SMTP greeting).\n'
        " !     Fix: Check SMTP_SERVER and SMTP_PORT.\n"
    ), run.output
    dyno.assert_ran(run)
    assert_bounded(run, 5)


# --- a certificate message over OpenSSL's limit -----------------------------------------------


@pytest.fixture(scope="module")
def leaf_of_ten_thousand_names(provider_root: Issued) -> Issued:
    names = [f"name-{number:05}.mail.example.test" for number in range(10_000)]
    return make_leaf(provider_root, "localhost", "127.0.0.1", *names)


def test_a_leaf_with_ten_thousand_names_is_named_not_blamed_on_the_port(
    dyno: Dyno, leaf_of_ten_thousand_names: Issued
) -> None:
    context = server_context(leaf_of_ten_thousand_names)
    with SMTPTestServer(mode="starttls", ssl_context=context) as server:
        run = dyno.check(mail_vars(server.port), "--timeout", "5")
    assert run.returncode == 1, run.output
    assert run.stderr == (
        f" !     127.0.0.1:{server.port} (STARTTLS): the server's certificates are more than "
        "OpenSSL accepts in a handshake (excessive message size): a certificate with thousands "
        "of names, or a chain of hundreds of certificates.\n"
        " !     Fix: Only the mail provider can fix this: ask them for a certificate with fewer "
        "names, or for the host name they document for mail. Another port or SMTP_TLS setting "
        "does not help.\n"
    ), run.output
    dyno.assert_ran(run)
    assert_bounded(run, 5)


# --- --timeout ---------------------------------------------------------------------------------

TIMEOUT_REFUSALS = {
    "1e-300": '"1e-300"',
    "\u0663": '"\u0663"',  # ARABIC-INDIC DIGIT THREE
    "0.0000001": '"0.0000001"',
    "0." + "0" * 299 + "1": "a value of 302 characters",  # 1e-300, in plain digits
    "\u202e5": '"\\u202e5"',
}


def test_timeout_takes_plain_seconds_within_its_range_only(dyno: Dyno) -> None:
    """Refused before the app boots: a usage mistake (exit 2), the value escaped or described."""
    for value, quoted in TIMEOUT_REFUSALS.items():
        run = dyno.check(mail_vars(587), "--timeout", value)
        assert run.returncode == 2, (value, run.output)
        assert run.stderr.startswith(
            f" !     --timeout {quoted}: give seconds from 0.001 to 120, in plain digits "
            "(10, 2.5).\n !     Usage: ruby .smtp-ca/check.rb "
        ), (value, run.output)
        assert run.stdout == "", (value, run.output)
        assert run.seconds < 30, (value, run.seconds)
        assert 0 < run.peak_kib < MAX_PEAK_KIB, (value, run.peak_kib)
        raw = [repr(character) for character in RAW_CONTROLS if character in run.output]
        assert not raw, (value, raw)
