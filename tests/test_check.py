"""The build-time handshake against real local servers, one test per named cause."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from smtp_ca.check import CheckTarget, run_check
from support.smtp_server import LOOPBACK, SMTPTestServer, free_port


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


def test_starttls_verified(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        outcome = run_check(CheckTarget("localhost", server.port, timeout=5), ca_file)
    assert outcome.verified, outcome.summary
    assert outcome.cause == "verified"
    assert outcome.tls_version in ("TLSv1.2", "TLSv1.3")


def test_implicit_tls_verified_by_ip_address(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="implicit-tls", ca=ca) as server:
        target = CheckTarget("127.0.0.1", server.port, implicit_tls=True, timeout=5)
        outcome = run_check(target, ca_file)
    assert outcome.verified, outcome.summary


def test_unknown_issuer(ca: trustme.CA, other_ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        outcome = run_check(CheckTarget("localhost", server.port, timeout=5), other_ca_file)
    assert not outcome.verified
    assert outcome.cause == "unknown-issuer"
    assert "SMTP_CA_BUNDLE_URL" in (outcome.hint or "")


def test_hostname_mismatch(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca, cert_names=("mail.example.org",)) as server:
        outcome = run_check(CheckTarget("localhost", server.port, timeout=5), ca_file)
    assert outcome.cause == "hostname-mismatch"
    assert "SMTP_SERVER=localhost" in outcome.summary


def test_no_starttls_offered(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="plain", ca=ca) as server:
        outcome = run_check(CheckTarget("localhost", server.port, timeout=5), ca_file)
    assert outcome.cause == "no-starttls"


def test_connection_refused(ca_file: Path) -> None:
    outcome = run_check(CheckTarget(LOOPBACK, free_port(), timeout=5), ca_file)
    assert outcome.cause == "refused"


def test_tls_to_a_starttls_port_is_named(ca: trustme.CA, ca_file: Path) -> None:
    with SMTPTestServer(mode="starttls", ca=ca) as server:
        target = CheckTarget("localhost", server.port, implicit_tls=True, timeout=5)
        outcome = run_check(target, ca_file)
    assert not outcome.verified
    assert "SMTP_TLS" in (outcome.hint or "")


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP server that accepts and never says a word, like a firewall black hole."""
    listener = socket.create_server((LOOPBACK, 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_silent_server_is_a_timeout_bounded_by_the_setting(
    silent_listener: int, ca_file: Path
) -> None:
    started = time.monotonic()
    outcome = run_check(CheckTarget(LOOPBACK, silent_listener, timeout=0.5), ca_file)
    assert outcome.cause == "timeout"
    # Bounded by the deadline, not by the default socket timeout: a generous margin.
    assert time.monotonic() - started < 5
