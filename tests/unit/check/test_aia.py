"""A server that forgets its intermediate: the check fetches it from the leaf's AIA caIssuers URL.

Real local servers throughout: aiosmtpd presents the leaf alone, and ``LocalServer`` (plain
http://, as caIssuers URLs usually are) serves the issuer as DER, PEM or PKCS#7, or misbehaves.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from requests.utils import requote_uri

from smtp_ca.check.context import TrustStores
from support.certs import Issued, make_root, utcnow
from support.checking import check, check_pki, text
from support.http_server import LocalServer, Reply
from support.pki import as_pkcs7, issue, server_context
from support.smtp_server import SMTPTestServer

root, intermediate, root_file = check_pki("AIA")


@pytest.fixture
def http() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def leaf_alone(
    issuer: Issued,
    http: LocalServer,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> SMTPTestServer:
    """A STARTTLS server presenting only a leaf whose caIssuers URL is /issuer on ``http``."""
    leaf = issue(
        "localhost",
        issuer,
        hostnames=("localhost",),
        ca_issuers=http.url("/issuer"),
        not_before=not_before,
        not_after=not_after,
    )
    return SMTPTestServer(mode="starttls", ssl_context=server_context(leaf))


@pytest.mark.parametrize(
    "encoding", ["der", "pem", "pkcs7-der", "pkcs7-pem"], ids=lambda name: name
)
def test_missing_intermediate_is_fetched_and_the_chain_verifies(
    intermediate: Issued, root_file: Path, http: LocalServer, encoding: str
) -> None:
    body = {
        "der": intermediate.der,
        "pem": intermediate.pem,
        "pkcs7-der": as_pkcs7(intermediate),
        "pkcs7-pem": as_pkcs7(intermediate, pem=True),
    }[encoding]
    http.serve("/issuer", body, headers={"Content-Type": "application/pkix-cert"})
    with leaf_alone(intermediate, http) as server:
        outcome = check(server.port, root_file)
    assert outcome.verified, text(outcome)
    assert outcome.cause == "missing-intermediate"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): verified, {outcome.tls_version}, once the bundle "
        "holds the intermediate certificate the server does not send."
    )
    assert outcome.anchor == "smtp-ca AIA Root CA"
    (notice,) = outcome.notices
    assert "does not send the intermediate certificate smtp-ca AIA Issuing CA" in notice
    assert http.url("/issuer") in notice
    # What the build appends to the bundle: exactly the fetched certificate, with comments.
    (extra,) = outcome.extra_certificates
    assert x509.load_pem_x509_certificates(extra) == [intermediate.cert]
    assert b"# From: " + http.url("/issuer").encode() in extra
    assert http.count("/issuer") == 1


def test_two_missing_certificates_are_fetched_one_after_the_other(
    root: Issued, root_file: Path, http: LocalServer
) -> None:
    upper = issue("smtp-ca AIA Upper CA", root, ca=True)
    lower = issue("smtp-ca AIA Lower CA", upper, ca=True, ca_issuers=http.url("/upper"))
    http.serve("/upper", upper.der)
    http.serve("/issuer", lower.der)
    with leaf_alone(lower, http) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "missing-intermediate", text(outcome)
    (extra,) = outcome.extra_certificates
    assert x509.load_pem_x509_certificates(extra) == [lower.cert, upper.cert]


def test_a_certificate_that_did_not_sign_the_leaf_is_refused(
    intermediate: Issued, root: Issued, root_file: Path, http: LocalServer
) -> None:
    impostor = issue("smtp-ca AIA Issuing CA", root, ca=True)  # same name, another key
    http.serve("/issuer", impostor.der)
    with leaf_alone(intermediate, http) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "unknown-issuer"
    assert not outcome.extra_certificates
    assert "which did not sign localhost" in text(outcome)


def test_an_issuer_that_is_not_a_ca_is_refused(
    root: Issued, root_file: Path, http: LocalServer
) -> None:
    not_a_ca = issue("smtp-ca AIA Not A CA", root, ca=False)
    http.serve("/issuer", not_a_ca.der)
    with leaf_alone(not_a_ca, http) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "unknown-issuer"
    assert "is not a CA certificate" in text(outcome)


def test_an_issuer_that_does_not_reach_the_bundle_is_not_added(
    intermediate: Issued, root: Issued, http: LocalServer, tmp_path: Path
) -> None:
    other = make_root("smtp-ca Unrelated Root").write(tmp_path / "other.pem")
    public = root.write(tmp_path / "cacert.pem")
    http.serve("/issuer", intermediate.der)
    with leaf_alone(intermediate, http) as server:
        outcome = check(server.port, other, stores=TrustStores(public_roots=public, system=None))
    assert outcome.cause == "unknown-issuer"
    assert not outcome.extra_certificates
    # With the fetched intermediate, certifi's roots would anchor the chain: say so.
    assert "certifi's public roots would verify it: they hold smtp-ca AIA Root CA." in text(outcome)
    assert "SMTP_CA_PUBLIC_ROOTS=true" in (outcome.hint or "")


def test_an_unreachable_issuer_url_is_named(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    http.serve("/issuer", b"gone\n", status=404)
    with leaf_alone(intermediate, http) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "unknown-issuer"
    assert f"Could not fetch the issuer from {http.url('/issuer')}" in text(outcome)
    assert "HTTP 404" in text(outcome)


def test_something_that_is_not_a_certificate_is_named(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    http.serve("/issuer", b"<html>moved</html>")
    with leaf_alone(intermediate, http) as server:
        outcome = check(server.port, root_file)
    assert "does not hold a certificate (DER, PEM or PKCS#7)" in text(outcome)


def test_an_oversized_answer_is_refused(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    http.serve("/issuer", b"0" * (300 * 1024), content_length=False)
    with leaf_alone(intermediate, http) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "unknown-issuer"
    assert "larger than" in text(outcome)


def test_a_hanging_issuer_url_is_bounded_by_the_check_timeout(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    http.script("/issuer", Reply(action="hang", delay=20))
    with leaf_alone(intermediate, http) as server:
        started = time.monotonic()
        outcome = check(server.port, root_file, timeout=1.5)
        elapsed = time.monotonic() - started
    assert outcome.cause == "unknown-issuer"
    assert "Could not fetch the issuer" in text(outcome)
    assert elapsed < 3.5


def test_a_completed_chain_that_then_fails_names_that_cause(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    ended = utcnow() - dt.timedelta(days=2)
    http.serve("/issuer", intermediate.der)
    with leaf_alone(
        intermediate, http, not_before=ended - dt.timedelta(days=60), not_after=ended
    ) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "expired", text(outcome)
    assert not outcome.extra_certificates
    assert "With it, fetched through AIA, the chain reaches the bundle" in text(outcome)


def test_a_url_cannot_write_lines_into_the_bundle(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    # The caIssuers URL is the certificate's words, and it is quoted in the bundle's comments:
    # a newline in it must not start a line, let alone a certificate, of its own.
    evil = make_root("smtp-ca Evil Root")
    url = http.url("/issuer") + "\n" + evil.pem.decode()
    http.serve(
        urlsplit(requote_uri(url)).path, intermediate.der
    )  # wherever the client asks, it gets it
    http.serve("/issuer", intermediate.der)
    leaf = issue("localhost", intermediate, hostnames=("localhost",), ca_issuers=url)
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
        outcome = check(server.port, root_file)
    written = b"".join(outcome.extra_certificates)
    assert b"\n-----BEGIN CERTIFICATE-----\n" + evil.pem.split(b"\n", 1)[1] not in written
    assert outcome.cause == "missing-intermediate"  # the fetch itself worked
    assert x509.load_pem_x509_certificates(written) == [intermediate.cert]


# --- A warm build fetches nothing: what a caIssuers URL served is kept in the cache ---------


def test_fetched_issuer_is_kept_for_the_next_build(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path
) -> None:
    http.serve("/issuer", intermediate.der)
    with leaf_alone(intermediate, http) as server:
        first = check(server.port, root_file, cache_dir=tmp_path)
        http.serve("/issuer", b"gone")  # a second fetch would now fail
        second = check(server.port, root_file, cache_dir=tmp_path)
    assert (first.cause, second.cause) == ("missing-intermediate", "missing-intermediate")
    assert second.extra_certificates == first.extra_certificates
    assert http.count("/issuer") == 1


def test_kept_issuer_that_no_longer_fits_is_fetched_again(
    root: Issued, intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path
) -> None:
    http.serve("/issuer", intermediate.der)
    with leaf_alone(intermediate, http) as server:
        check(server.port, root_file, cache_dir=tmp_path)
    # The provider moves to a new intermediate at the same URL.
    successor = issue("smtp-ca AIA Issuing CA 2", root, ca=True)
    http.serve("/issuer", successor.der)
    with leaf_alone(successor, http) as server:
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert outcome.verified, text(outcome)
    (extra,) = outcome.extra_certificates
    assert x509.load_pem_x509_certificates(extra) == [successor.cert]
    assert http.count("/issuer") == 2
