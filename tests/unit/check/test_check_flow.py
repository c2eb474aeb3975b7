"""The build-time handshake against real local servers, one test per named cause.

Missing intermediates (AIA) are in test_aia.py, revocation (OCSP) in test_ocsp.py.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from smtp_ca.check.context import TrustStores
from smtp_ca.check.flow import check_bundle, run_check
from smtp_ca.check.naming import Naming, command_line, config_vars
from smtp_ca.check.smtp_session import CheckTarget
from support.certs import Issued, make_cert, make_root, utcnow
from support.checking import check, check_pki, text
from support.pki import issue, server_context
from support.silent_server import SilentServer
from support.smtp_server import LOOPBACK, SMTPTestServer, free_port

root, intermediate, root_file = check_pki("Check")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "bundle.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def other_ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def serve(leaf: Issued, *chain: Issued) -> SMTPTestServer:
    return SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, *chain))


# --- verified ---------------------------------------------------------------------------------


def test_starttls_verified(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        outcome = check(server.port, ca_file)
    assert outcome.verified, outcome.summary
    assert outcome.cause == "verified"
    assert outcome.tls_version in ("TLSv1.2", "TLSv1.3")


def test_implicit_tls_verified_by_ip_address(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="implicit-tls", ca=ca) as server:
        outcome = check(server.port, ca_file, host="127.0.0.1", implicit_tls=True)
    assert outcome.verified, outcome.summary


def test_success_reports_the_chain_the_version_and_the_anchor(
    root: Issued, intermediate: Issued, root_file: Path
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert (
        outcome.summary == f"localhost:{server.port} (STARTTLS): verified, {outcome.tls_version}."
    )
    # Subject, issuer and not-after of each certificate the server presented, in order.
    assert outcome.chain == (
        "  1. localhost, issued by smtp-ca Check Issuing CA, valid until "
        f"{leaf.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        "  2. smtp-ca Check Issuing CA, issued by smtp-ca Check Root CA, valid until "
        f"{intermediate.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
    )
    assert outcome.anchor == "smtp-ca Check Root CA"
    anchored = [line for line in outcome.details if line.startswith("Anchored by")]
    assert anchored == [
        f"Anchored by smtp-ca Check Root CA (SHA-256 {root.sha256[:8]}…{root.sha256[-8:]}), "
        "from SMTP_CA_BUNDLE_URL."
    ]
    assert outcome.details[-2:] == (
        "Revocation: not checked, the certificate names no CRL distribution point and no OCSP "
        "responder.",
        "Revocation of the intermediate smtp-ca Check Issuing CA: not checked, it names no CRL "
        "distribution point and no OCSP responder.",
    )


# --- trust never silently wider than Mozilla's list -------------------------------------------

MOZILLA_LINE = "The chain is anchored by a root that Mozilla's list does not hold: "


def test_an_anchor_that_mozillas_list_does_not_hold_is_said(
    intermediate: Issued, root_file: Path, tmp_path: Path
) -> None:
    mozilla = make_root("smtp-ca Check Public Root").write(tmp_path / "certifi.pem")
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, root_file, stores=TrustStores(public_roots=mozilla))
    assert outcome.cause == "verified", text(outcome)
    anchored = outcome.details.index(
        next(line for line in outcome.details if line.startswith("Anchored by"))
    )
    assert outcome.details[anchored + 1] == f"{MOZILLA_LINE}smtp-ca Check Root CA."


def test_an_anchor_that_mozillas_list_holds_is_not_remarked_on(
    root: Issued, intermediate: Issued, root_file: Path, tmp_path: Path
) -> None:
    # The same root issued again (same name and key, new dates) is the same root to OpenSSL.
    again = make_cert("smtp-ca Check Root CA", key=root.key, lifetime=dt.timedelta(days=99))
    assert again.sha256 != root.sha256
    for holder in (root, again):
        mozilla = holder.write(tmp_path / "certifi.pem")
        leaf = issue("localhost", intermediate, hostnames=("localhost",))
        with serve(leaf, intermediate) as server:
            outcome = check(server.port, root_file, stores=TrustStores(public_roots=mozilla))
        assert outcome.cause == "verified", text(outcome)
        assert not [line for line in outcome.details if line.startswith(MOZILLA_LINE)]


def test_a_build_says_which_roots_are_outside_mozillas_list_and_certifi_is_not_read_again(
    root: Issued, intermediate: Issued, tmp_path: Path
) -> None:
    """The bundle stage found which of its certificates Mozilla's list lacks; the build's check
    takes its word (``check_bundle(outside_mozilla=...)``) and reads no certifi of its own."""
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    lines = {}
    for outside in (frozenset({root.sha256}), frozenset()):
        with serve(leaf, intermediate) as server:
            target = CheckTarget("localhost", server.port, timeout=5)
            outcome = check_bundle(
                target, root.pem, scratch_dir=tmp_path, outside_mozilla=sorted(outside)
            )
        assert outcome.cause == "verified", text(outcome)
        lines[bool(outside)] = [line for line in outcome.details if line.startswith(MOZILLA_LINE)]
    # The real certifi does not hold this root either: only the build's word decides.
    assert lines == {True: [f"{MOZILLA_LINE}smtp-ca Check Root CA."], False: []}


# --- unknown issuer ---------------------------------------------------------------------------


def test_unknown_issuer(ca: trustme.CA, other_ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        outcome = check(server.port, other_ca_file)
    assert not outcome.verified
    assert outcome.cause == "unknown-issuer"
    assert "SMTP_CA_BUNDLE_URL" in (outcome.hint or "")
    assert "Neither certifi's public roots nor the system store" in text(outcome)


def test_unknown_issuer_names_the_issuer_and_says_public_roots_would_verify(
    root: Issued, intermediate: Issued, other_ca_file: Path, tmp_path: Path
) -> None:
    public = tmp_path / "cacert.pem"
    public.write_bytes(root.pem)
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    stores = TrustStores(public_roots=public, system=None)
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, other_ca_file, stores=stores)
    assert outcome.cause == "unknown-issuer"
    report = text(outcome)
    assert "ends at smtp-ca Check Issuing CA, issued by smtp-ca Check Root CA" in report
    assert "certifi's public roots would verify it: they hold smtp-ca Check Root CA." in report
    assert "SMTP_CA_PUBLIC_ROOTS=true" in (outcome.hint or "")


def test_unknown_issuer_only_the_system_store_knows(
    root: Issued, intermediate: Issued, other_ca_file: Path, tmp_path: Path
) -> None:
    system = tmp_path / "ca-certificates.crt"
    system.write_bytes(root.pem)
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    stores = TrustStores(public_roots=Path("/nonexistent"), system=system)
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, other_ca_file, stores=stores)
    assert outcome.cause == "unknown-issuer"
    assert f"The system store ({system}) would verify it" in text(outcome)
    assert "certifi's" not in "\n".join(outcome.details)
    assert outcome.hint == (
        "The app does not use the system store once SMTP_CA_FILE names the bundle: put "
        'smtp-ca Check Root CA in SMTP_CA_CERTS (heroku config:set SMTP_CA_CERTS="$(cat '
        'ca.pem)").'
    )


def test_a_root_sent_by_the_server_is_still_an_unknown_issuer(
    root: Issued, intermediate: Issued, other_ca_file: Path
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with serve(leaf, intermediate, root) as server:  # OpenSSL: "self-signed certificate in chain"
        outcome = check(server.port, other_ca_file)
    assert outcome.cause == "unknown-issuer"
    assert "ends at the root smtp-ca Check Root CA, which the bundle does not hold" in text(outcome)


def test_leaf_alone_without_aia_says_the_intermediate_may_be_missing(
    intermediate: Issued, root_file: Path
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with serve(leaf) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "unknown-issuer"
    report = text(outcome)
    assert "sent only its own certificate" in report
    assert "names no http:// caIssuers URL" in report
    assert "send its intermediate" in (outcome.hint or "")


# --- dates, names, self-signed ----------------------------------------------------------------


def test_expired_leaf_names_the_date(intermediate: Issued, root_file: Path) -> None:
    ended = utcnow() - dt.timedelta(days=3)
    leaf = issue(
        "localhost",
        intermediate,
        hostnames=("localhost",),
        not_before=ended - dt.timedelta(days=90),
        not_after=ended,
    )
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "expired"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server's certificate, localhost, expired on "
        f"{ended:%Y-%m-%d %H:%M} UTC (certificate has expired)."
    )
    assert "Only the mail provider" in (outcome.hint or "")
    assert "The server presented:" in outcome.details


def test_expired_intermediate_is_named_as_such(root: Issued, root_file: Path) -> None:
    ended = utcnow() - dt.timedelta(days=1)
    old = issue(
        "smtp-ca Old Issuing CA",
        root,
        ca=True,
        not_before=ended - dt.timedelta(days=900),
        not_after=ended,
    )
    leaf = issue("localhost", old, hostnames=("localhost",), not_before=ended - dt.timedelta(10))
    with serve(leaf, old) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "expired"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the intermediate, smtp-ca Old Issuing CA, expired "
        f"on {ended:%Y-%m-%d %H:%M} UTC (certificate has expired)."
    )


def test_not_yet_valid(intermediate: Issued, root_file: Path) -> None:
    starts = utcnow() + dt.timedelta(days=2)
    leaf = issue(
        "localhost",
        intermediate,
        hostnames=("localhost",),
        not_before=starts,
        not_after=starts + dt.timedelta(days=90),
    )
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "not-yet-valid"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server's certificate, localhost, is not valid "
        f"until {starts:%Y-%m-%d %H:%M} UTC (certificate is not yet valid)."
    )
    assert "clock" in (outcome.hint or "")


def test_hostname_mismatch(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca, cert_names=("mail.example.org",)) as server:
        outcome = check(server.port, ca_file)
    assert outcome.cause == "hostname-mismatch"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the certificate's names do not cover "
        "SMTP_SERVER=localhost (Hostname mismatch, certificate is not valid for 'localhost')."
    )
    assert "The certificate holds: mail.example.org." in outcome.details
    assert "heroku config:set SMTP_SERVER=mail.example.org" in (outcome.hint or "")


def test_hostname_mismatch_by_ip_address_explains_ip_entries(
    intermediate: Issued, root_file: Path
) -> None:
    leaf = issue(
        "smtp.example.test", intermediate, hostnames=("smtp.example.test", "*.example.test")
    )
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, root_file, host="127.0.0.1")
    assert outcome.cause == "hostname-mismatch"
    assert "The certificate holds: smtp.example.test, *.example.test." in outcome.details
    assert any("IP address" in line for line in outcome.details)
    assert "SMTP_SERVER=smtp.example.test" in (outcome.hint or "")


def test_self_signed(root_file: Path) -> None:
    leaf = issue("localhost", None, hostnames=("localhost",))
    with serve(leaf) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "self-signed"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server presents a self-signed certificate, "
        "localhost (self-signed certificate)."
    )
    assert any(line.startswith("It signed itself: localhost") for line in outcome.details)
    # A private server's certificate needs no hosted file: a config var takes it.
    assert outcome.hint == (
        "Put that server's own certificate (or its CA's) in SMTP_CA_CERTS "
        '(heroku config:set SMTP_CA_CERTS="$(cat ca.pem)"). Better: ask the provider for a '
        "certificate from a public CA."
    )


def test_other_problems_are_named_too(intermediate: Issued, other_ca_file: Path) -> None:
    ended = utcnow() - dt.timedelta(days=1)
    leaf = issue(
        "mail.example.org",
        intermediate,
        hostnames=("mail.example.org",),
        not_before=ended - dt.timedelta(days=30),
        not_after=ended,
    )
    with serve(leaf, intermediate) as server:
        outcome = check(server.port, other_ca_file)
    assert outcome.cause == "unknown-issuer"
    report = text(outcome)
    assert "Also: the server's certificate expired on" in report
    assert "Also: the certificate's names (mail.example.org) do not cover" in report


# --- TLS and SMTP ---------------------------------------------------------------------------


def test_no_starttls_offered(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="plain", ca=ca) as server:
        outcome = check(server.port, ca_file)
    assert outcome.cause == "no-starttls"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server does not offer STARTTLS, so mail would "
        "go unencrypted and nothing can be verified."
    )


def test_tls_older_than_1_2(intermediate: Issued, root_file: Path) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    try:
        context = server_context(leaf, intermediate, maximum_version=ssl.TLSVersion.TLSv1_1)
    except ssl.SSLError as error:  # pragma: no cover - an OpenSSL built without TLS 1.1
        pytest.skip(f"this OpenSSL cannot serve TLS 1.1: {error}")
    with SMTPTestServer(mode="starttls", ssl_context=context) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "old-tls", text(outcome)
    # The probe that accepts old versions learns which one the server speaks.
    assert outcome.tls_version == "TLSv1.1"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server speaks only TLSv1.1; the check and the "
        "app's OpenSSL require TLS 1.2 or later."
    )


@pytest.fixture
def smtps_tls_1_1(intermediate: Issued) -> Iterator[int]:
    """An SMTPS server speaking at most TLS 1.1 on blocking sockets: unlike asyncio (which
    hangs up), OpenSSL then answers a TLS 1.2+ hello with a protocol_version alert."""
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    try:
        context = server_context(leaf, intermediate, maximum_version=ssl.TLSVersion.TLSv1_1)
    except ssl.SSLError as error:  # pragma: no cover - an OpenSSL built without TLS 1.1
        pytest.skip(f"this OpenSSL cannot serve TLS 1.1: {error}")
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection = listener.accept()[0]
            except TimeoutError:
                continue
            with connection:
                try:
                    tls = context.wrap_socket(connection, server_side=True)
                    tls.sendall(b"220 localhost ESMTP\r\n")
                    tls.settimeout(2)
                    tls.recv(64)
                    tls.close()
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_tls_older_than_1_2_refused_with_an_alert(smtps_tls_1_1: int, root_file: Path) -> None:
    outcome = check(smtps_tls_1_1, root_file, implicit_tls=True)
    assert outcome.cause == "old-tls", text(outcome)
    assert outcome.tls_version == "TLSv1.1"
    assert outcome.summary == (
        f"localhost:{smtps_tls_1_1} (TLS): the server speaks only TLSv1.1; the check and the "
        "app's OpenSSL require TLS 1.2 or later (TLSV1_ALERT_PROTOCOL_VERSION)."
    )


def test_tls_to_a_starttls_port_is_named(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        outcome = check(server.port, ca_file, implicit_tls=True)
    assert not outcome.verified
    assert outcome.cause == "tls"
    # OpenSSL's reason for bytes that are not TLS differs between versions; the rest is ours.
    assert outcome.summary.startswith(
        f"localhost:{server.port} (TLS): the server did not answer in TLS ("
    )
    assert outcome.summary.endswith("): this port speaks plain SMTP first, and wants STARTTLS.")
    assert "SMTP_TLS" in (outcome.hint or "")


def test_connection_refused(ca_file: Path) -> None:
    port = free_port()
    outcome = check(port, ca_file, host=LOOPBACK)
    assert outcome.cause == "refused"
    assert outcome.summary == f"{LOOPBACK}:{port} (STARTTLS): connection refused."
    assert outcome.hint == (
        "Check SMTP_PORT: SendGrid and most providers take 587 (STARTTLS) or 465 (TLS)."
    )


def test_dns_failure(ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No lookup leaves the machine: the resolver's answer is made up here.
    def no_such_host(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    outcome = check(25, ca_file, host="smtp.example.invalid")
    assert outcome.cause == "dns"
    assert outcome.summary == (
        "smtp.example.invalid:25 (STARTTLS): the host name does not resolve "
        "(Name or service not known)."
    )
    # Offline every name fails to resolve: the hint says so, not only "a typo".
    assert outcome.hint == (
        "Check SMTP_SERVER for a typo. If it has none, this machine may have no DNS or no network."
    )


def test_a_slow_resolver_is_bounded_by_the_check_timeout(
    ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A socket timeout does not cover name resolution: the check must bound it itself.
    def slow_resolver(*args: object, **kwargs: object) -> list[object]:
        time.sleep(3)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    started = time.monotonic()
    outcome = run_check(CheckTarget("smtp.example.invalid", 25, timeout=0.5), ca_file)
    assert outcome.cause == "timeout"
    assert outcome.summary == (
        "smtp.example.invalid:25 (STARTTLS): no answer within 0.5 s (resolving the host name)."
    )
    assert time.monotonic() - started < 2


def test_a_host_name_no_resolver_would_take_is_a_dns_failure(ca_file: Path) -> None:
    # A label of 64 characters is refused by the IDNA codec before any lookup.
    outcome = check(25, ca_file, host=f"{'a' * 64}.invalid")
    assert outcome.cause == "dns"


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP server that accepts and never says a word, like a firewall black hole."""
    with SilentServer() as silent:
        yield silent.port


def test_silent_server_is_a_timeout_bounded_by_the_setting(
    silent_listener: int, ca_file: Path
) -> None:
    started = time.monotonic()
    outcome = run_check(CheckTarget(LOOPBACK, silent_listener, timeout=0.5), ca_file)
    assert outcome.cause == "timeout"
    assert outcome.summary == (
        f"{LOOPBACK}:{silent_listener} (STARTTLS): no answer within 0.5 s "
        "(waiting for the SMTP greeting)."
    )
    # A server silent after the connection is often an implicit-TLS port reached with STARTTLS.
    assert "SMTP_TLS=true" in (outcome.hint or "")
    # Bounded by the deadline, not by the default socket timeout: a generous margin.
    assert time.monotonic() - started < 5


def test_silent_server_under_implicit_tls_times_out_in_the_handshake(
    silent_listener: int, ca_file: Path
) -> None:
    target = CheckTarget(LOOPBACK, silent_listener, implicit_tls=True, timeout=0.5)
    outcome = run_check(target, ca_file)
    assert outcome.cause == "timeout"
    assert outcome.summary == (
        f"{LOOPBACK}:{silent_listener} (TLS): no answer within 0.5 s (during the TLS handshake)."
    )


# --- how the hints name the server: config vars in a build, what was typed for bin/check --------


def test_the_bulk_mailers_hints_name_its_own_config_vars(ca_file: Path) -> None:
    outcome = check(free_port(), ca_file, host=LOOPBACK, naming=config_vars("BULK_SMTP_"))
    assert outcome.hint == (
        "Check BULK_SMTP_PORT: SendGrid and most providers take 587 (STARTTLS) or 465 (TLS)."
    )


def _typed(host: str, port: int, *, port_given: bool = True) -> Naming:
    return command_line(host, port, port_given=port_given)


def test_bin_check_hints_name_the_port_as_typed(ca_file: Path) -> None:
    port = free_port()
    given = check(port, ca_file, host=LOOPBACK, naming=_typed(LOOPBACK, port))
    assert given.hint == (
        f"Check the port {port}: SendGrid and most providers take 587 (STARTTLS) or 465 (TLS)."
    )
    default = check(port, ca_file, host=LOOPBACK, naming=_typed(LOOPBACK, port, port_given=False))
    assert default.hint == (
        f"Check the port ({port} when none is given): SendGrid and most providers take 587 "
        "(STARTTLS) or 465 (TLS)."
    )


def test_bin_check_hints_name_the_host_as_typed(
    ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_such_host(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    host = "smtp.sendgrid.net"
    outcome = check(587, ca_file, host=host, naming=_typed(host, 587))
    assert outcome.cause == "dns"
    assert outcome.hint == (
        "Check smtp.sendgrid.net for a typo. If it has none, this machine may have no DNS or "
        "no network."
    )


def test_bin_check_hints_name_its_options(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        naming = _typed("localhost", server.port)
        outcome = check(server.port, ca_file, implicit_tls=True, naming=naming)
    assert outcome.cause == "tls"
    assert outcome.hint == (
        "Leave out --tls to use STARTTLS on this port, or try localhost:465 for TLS from the "
        "first byte."
    )


def test_bin_check_hints_for_a_name_mismatch_use_bin_check(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca, cert_names=("mail.example.org",)) as server:
        outcome = check(server.port, ca_file, naming=_typed("localhost", server.port))
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the certificate's names do not cover "
        "localhost (Hostname mismatch, certificate is not valid for 'localhost')."
    )
    assert outcome.hint == (
        "Use a name the certificate holds (the host name the provider documents), not an alias "
        f"or an IP address: bin/check mail.example.org:{server.port}"
    )
    assert "SMTP_" not in text(outcome)


def test_bin_check_hints_for_a_silent_server_name_its_options(
    silent_listener: int, ca_file: Path
) -> None:
    naming = _typed(LOOPBACK, silent_listener)
    outcome = check(silent_listener, ca_file, host=LOOPBACK, timeout=0.5, naming=naming)
    assert outcome.cause == "timeout"
    assert outcome.hint == (
        "A server that says nothing after the connection may expect TLS from the first byte "
        f"(port 465 usually does): add --tls. Otherwise check {LOOPBACK} and the port "
        f"{silent_listener} (a firewall may drop the connection), or raise --timeout."
    )
