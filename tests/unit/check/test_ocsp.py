"""Revocation: after the chain verifies, the check asks the OCSP responder the leaf names.

A real responder on the loopback (``support.ocsp_responder``) signs good, revoked and unknown
answers with the issuer's key or a delegated responder's, or misbehaves. Revoked fails the
check; anything that leaves the question open is a note, never a failure.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from smtp_ca.check.outcome import CheckOutcome
from support.certs import Issued
from support.checking import check, check_pki
from support.http_server import LocalServer
from support.ocsp_responder import OcspResponder
from support.pki import issue, server_context
from support.smtp_server import SMTPTestServer, free_port

root, intermediate, root_file = check_pki("OCSP")


@pytest.fixture
def responder(intermediate: Issued) -> Iterator[OcspResponder]:
    with OcspResponder(intermediate) as running:
        yield running


def server_for(leaf: Issued, intermediate: Issued) -> SMTPTestServer:
    return SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate))


def leaf_asking(responder_url: str, intermediate: Issued) -> Issued:
    return issue("localhost", intermediate, hostnames=("localhost",), ocsp=responder_url)


def revocation_line(outcome: CheckOutcome) -> str:
    (line,) = [line for line in outcome.details if line.startswith("Revocation:")]
    return line


def test_good_answer(intermediate: Issued, root_file: Path, responder: OcspResponder) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified"
    assert outcome.revocation == "good"
    assert revocation_line(outcome).startswith(
        f"Revocation: not revoked, says the OCSP responder at {responder.url} (signed answer of"
    )
    (request,) = responder.requests
    assert (request.method, request.content_type) == ("POST", "application/ocsp-request")
    assert request.serial_number == leaf.cert.serial_number


def test_revoked_certificate_fails_the_check(
    intermediate: Issued, root_file: Path, responder: OcspResponder
) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    responder.revoke(leaf)
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert not outcome.verified
    assert outcome.cause == "revoked"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server's certificate has been revoked "
        "(localhost)."
    )
    revoked_on = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)  # as the responder says
    assert outcome.details[0] == (
        f"Revocation: revoked on {revoked_on:%Y-%m-%d} (keyCompromise), says the OCSP responder "
        f"at {responder.url} (in an answer signed by smtp-ca OCSP Issuing CA)."
    )
    assert "Only the mail provider" in (outcome.hint or "")


def test_unknown_to_the_responder_is_a_note(
    intermediate: Issued, root_file: Path, responder: OcspResponder
) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    responder.set_status(leaf, "unknown")
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.verified
    assert outcome.revocation == "unknown"
    assert "does not know this certificate" in revocation_line(outcome)


def test_delegated_responder_with_ocsp_signing_is_trusted(
    intermediate: Issued, root_file: Path
) -> None:
    delegate = issue(
        "smtp-ca OCSP Responder",
        intermediate,
        extended_usages=[ExtendedKeyUsageOID.OCSP_SIGNING],
    )
    with OcspResponder(intermediate, delegate=delegate) as responder:
        leaf = leaf_asking(responder.url, intermediate)
        responder.revoke(leaf)
        with server_for(leaf, intermediate) as server:
            outcome = check(server.port, root_file)
    assert outcome.cause == "revoked"
    assert (
        "signed by smtp-ca OCSP Responder, which smtp-ca OCSP Issuing CA delegated to"
        in outcome.details[0]
    )


def test_delegated_responder_without_ocsp_signing_is_not_trusted(
    intermediate: Issued, root_file: Path
) -> None:
    # Any certificate the CA issued (a server's, say) must not be able to revoke another.
    delegate = issue("smtp-ca Some Server", intermediate, extended_usages=[])
    with OcspResponder(intermediate, delegate=delegate) as responder:
        leaf = leaf_asking(responder.url, intermediate)
        responder.revoke(leaf)
        with server_for(leaf, intermediate) as server:
            outcome = check(server.port, root_file)
    assert outcome.verified
    assert "is not a certificate for OCSP signing" in revocation_line(outcome)


def test_responder_issued_by_someone_else_is_not_trusted(
    intermediate: Issued, root: Issued, root_file: Path
) -> None:
    stranger = issue(
        "smtp-ca OCSP Responder",
        root,  # not the leaf's issuer
        extended_usages=[ExtendedKeyUsageOID.OCSP_SIGNING],
    )
    with OcspResponder(intermediate, delegate=stranger) as responder:
        leaf = leaf_asking(responder.url, intermediate)
        responder.revoke(leaf)
        with server_for(leaf, intermediate) as server:
            outcome = check(server.port, root_file)
    assert outcome.verified
    assert "was not issued by smtp-ca OCSP Issuing CA" in revocation_line(outcome)


def test_forged_signature_is_not_trusted(
    intermediate: Issued, root_file: Path, responder: OcspResponder
) -> None:
    responder.behaviour = "wrong-key"
    leaf = leaf_asking(responder.url, intermediate)
    responder.revoke(leaf)
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.verified
    assert "its signature does not verify" in revocation_line(outcome)


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("try-later", "answered 'try later'"),
        ("garbage", "answered something that is not an OCSP response"),
        ("stale", "gave an out-of-date answer"),
    ],
)
def test_answers_that_leave_the_question_open_are_notes(
    intermediate: Issued,
    root_file: Path,
    responder: OcspResponder,
    behaviour: str,
    words: str,
) -> None:
    responder.behaviour = behaviour  # type: ignore[assignment]
    leaf = leaf_asking(responder.url, intermediate)
    responder.revoke(leaf)  # even a revoked one: an answer that cannot be trusted counts nothing
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.verified
    assert words in revocation_line(outcome)


def test_unreachable_responder_is_a_note(intermediate: Issued, root_file: Path) -> None:
    leaf = leaf_asking(f"http://127.0.0.1:{free_port()}/ocsp", intermediate)
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified"
    assert "could not be asked" in revocation_line(outcome)


def test_hanging_responder_is_bounded_by_the_check_timeout(
    intermediate: Issued, root_file: Path, responder: OcspResponder
) -> None:
    responder.behaviour = "hang"
    leaf = leaf_asking(responder.url, intermediate)
    with server_for(leaf, intermediate) as server:
        started = time.monotonic()
        outcome = check(server.port, root_file, timeout=1.5)
        elapsed = time.monotonic() - started
    assert outcome.cause == "verified"
    assert "could not be asked" in revocation_line(outcome)
    assert elapsed < 3.5


def test_responder_behind_a_redirect_is_followed(
    intermediate: Issued, root_file: Path, responder: OcspResponder
) -> None:
    leaf = leaf_asking(responder.redirect("/moved"), intermediate)
    responder.revoke(leaf)
    with server_for(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "revoked"
    assert [request.path for request in responder.requests] == ["/moved", "/ocsp"]


def test_revoked_after_an_aia_completion(
    intermediate: Issued, root_file: Path, responder: OcspResponder
) -> None:
    with LocalServer() as http:
        http.serve("/issuer", intermediate.der)
        leaf = issue(
            "localhost",
            intermediate,
            hostnames=("localhost",),
            ca_issuers=http.url("/issuer"),
            ocsp=responder.url,
        )
        responder.revoke(leaf)
        with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
            outcome = check(server.port, root_file)
    assert outcome.cause == "revoked"
    assert outcome.notices  # the missing intermediate is still worth saying


# --- A warm build asks no responder: trusted answers are kept until their nextUpdate ---------


def test_answer_is_reused_until_next_update(
    intermediate: Issued, root_file: Path, responder: OcspResponder, tmp_path: Path
) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    with server_for(leaf, intermediate) as server:
        first = check(server.port, root_file, cache_dir=tmp_path)
        second = check(server.port, root_file, cache_dir=tmp_path)
        # The responder's answers are valid for 12 hours; a day later the build asks again.
        later = check(
            server.port,
            root_file,
            cache_dir=tmp_path,
            now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1),
        )
    assert (first.revocation, second.revocation) == ("good", "good")
    assert "kept from an earlier build until" in revocation_line(second)
    assert all("kept from" not in line for line in later.details)
    assert len(responder.requests) == 2  # the first check and the one a day later


def test_revoked_answer_from_the_cache_still_fails(
    intermediate: Issued, root_file: Path, responder: OcspResponder, tmp_path: Path
) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    responder.revoke(leaf)
    with server_for(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        responder.stop()  # the answer now comes only from the cache
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert outcome.cause == "revoked"


def test_damaged_cached_answer_is_thrown_away(
    intermediate: Issued, root_file: Path, responder: OcspResponder, tmp_path: Path
) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    with server_for(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        (cached,) = (tmp_path / "ocsp").glob("*.der")
        data = cached.read_bytes()
        cached.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))  # a broken signature
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert outcome.revocation == "good"
    assert "kept from" not in revocation_line(outcome)
    assert len(responder.requests) == 2
    assert cached.read_bytes() != data[:-1] + bytes([data[-1] ^ 0x01])


def test_unknown_answer_is_not_cached(
    intermediate: Issued, root_file: Path, responder: OcspResponder, tmp_path: Path
) -> None:
    leaf = leaf_asking(responder.url, intermediate)
    responder.set_status(leaf, "unknown")
    with server_for(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
    assert not list((tmp_path / "ocsp").glob("*.der"))
