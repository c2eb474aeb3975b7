"""Revocation through CRLs: after the chain verifies, the check reads the CRL that the server's
certificate, and each intermediate above it, names in its CRL Distribution Points.

A private PKI on the loopback: a real STARTTLS server presents the chain, a real HTTP server
(``support.http_server``) serves CRLs that the issuing CA signed (``support.crl``), or that
someone else signed, or that are out of date or partitioned, and an OCSP responder answers
where a certificate names one. Revoked from either source fails the check; a CRL that does not
count leaves the question open, with the reason, and is never a failure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtp_ca.check.crl import MAX_CRL_BYTES
from smtp_ca.check.outcome import CheckOutcome
from support.certs import Issued, new_key, utcnow
from support.checking import check, check_pki, text
from support.crl import Revoked, make_crl
from support.http_server import LocalServer
from support.ocsp_responder import OcspResponder
from support.pki import issue, server_context
from support.smtp_server import SMTPTestServer

root, intermediate, root_file = check_pki("CRL")

CRL_PATH = "/issuing.crl"


@pytest.fixture
def http() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def leaf_naming(crl_url: str, issuer: Issued, **options: str) -> Issued:
    return issue("localhost", issuer, hostnames=("localhost",), crl=crl_url, **options)


def serving(leaf: Issued, *chain: Issued) -> SMTPTestServer:
    return SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, *chain))


def revocation_line(outcome: CheckOutcome) -> str:
    (line,) = [line for line in outcome.details if line.startswith("Revocation:")]
    return line


def day(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# --- revoked, not revoked ---------------------------------------------------------------------


def test_a_leaf_revoked_only_in_its_crl_fails_the_check_naming_the_source(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)  # and no OCSP responder at all
    when = utcnow() - dt.timedelta(days=3)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf, when=when)]))
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "revoked", text(outcome)
    assert not outcome.verified
    assert outcome.revocation == "revoked"
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the server's certificate has been revoked "
        "(localhost)."
    )
    assert outcome.details[0] == (
        f"Revocation: revoked on {when:%Y-%m-%d} (keyCompromise), says the CRL at "
        f"{http.url(CRL_PATH)}."
    )
    assert "Only the mail provider can fix this" in (outcome.hint or "")
    (request,) = http.requests_for(CRL_PATH)
    assert request.method == "GET"


def test_the_same_leaf_not_listed_is_not_revoked_and_the_crl_is_named(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    someone_else = issue("smtp-ca CRL Someone Else", intermediate, hostnames=("example.test",))
    this_update = utcnow() - dt.timedelta(hours=2)
    http.serve(
        CRL_PATH,
        make_crl(intermediate, revoked=[Revoked(someone_else)], this_update=this_update),
    )
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert outcome.revocation == "good"
    assert revocation_line(outcome) == (
        f"Revocation: not revoked, says the CRL at {http.url(CRL_PATH)} "
        f"(issued {day(this_update)})."
    )


def test_a_pem_crl_counts_like_a_der_one(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf)], pem=True))
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "revoked", text(outcome)


def test_a_revoked_intermediate_fails_the_check(
    root: Issued, root_file: Path, http: LocalServer
) -> None:
    issuing = issue("smtp-ca CRL Revoked Issuing CA", root, ca=True, crl=http.url("/root.crl"))
    leaf = leaf_naming(http.url(CRL_PATH), issuing)
    when = utcnow() - dt.timedelta(days=1)
    http.serve("/root.crl", make_crl(root, revoked=[Revoked(issuing, when=when)]))
    http.serve(CRL_PATH, make_crl(issuing))
    with serving(leaf, issuing) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "revoked", text(outcome)
    assert outcome.summary == (
        f"localhost:{server.port} (STARTTLS): the intermediate certificate smtp-ca CRL Revoked "
        "Issuing CA has been revoked."
    )
    assert outcome.details[0] == (
        "Revocation of the intermediate smtp-ca CRL Revoked Issuing CA: revoked on "
        f"{when:%Y-%m-%d} (keyCompromise), says the CRL at {http.url('/root.crl')}."
    )
    # The server's own certificate was asked about too, and is not revoked.
    assert outcome.revocation == "good"
    assert revocation_line(outcome).startswith(
        f"Revocation: not revoked, says the CRL at {http.url(CRL_PATH)}"
    )


def test_ocsp_good_but_crl_revoked_is_revoked(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    with OcspResponder(intermediate) as responder:
        leaf = leaf_naming(http.url(CRL_PATH), intermediate, ocsp=responder.url)
        http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf)]))
        with serving(leaf, intermediate) as server:
            outcome = check(server.port, root_file)
    assert len(responder.requests) == 1  # asked, and it said good
    assert outcome.cause == "revoked", text(outcome)
    assert outcome.details[0].startswith("Revocation: revoked on ")
    assert (
        f"says the CRL at {http.url(CRL_PATH)}; not revoked, says the OCSP responder at "
        in (outcome.details[0])
    )


def test_crl_good_but_ocsp_revoked_is_revoked(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    with OcspResponder(intermediate) as responder:
        leaf = leaf_naming(http.url(CRL_PATH), intermediate, ocsp=responder.url)
        responder.revoke(leaf)
        http.serve(CRL_PATH, make_crl(intermediate))
        with serving(leaf, intermediate) as server:
            outcome = check(server.port, root_file)
    assert outcome.cause == "revoked", text(outcome)
    assert outcome.details[0].startswith("Revocation: revoked on ")
    assert (
        f"says the OCSP responder at {responder.url} (in an answer signed by "
        in (outcome.details[0])
    )
    assert f"; not revoked, says the CRL at {http.url(CRL_PATH)}" in outcome.details[0]


# --- CRLs that do not count: not checked, with the reason -------------------------------------


def test_a_crl_signed_by_another_key_is_not_checked(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    # In the issuer's name, listing the leaf: only the signature gives it away.
    forged = make_crl(intermediate, revoked=[Revoked(leaf)], signing_key=new_key())
    http.serve(CRL_PATH, forged)
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert outcome.revocation == "unchecked"
    assert revocation_line(outcome) == (
        f"Revocation: not checked, the CRL at {http.url(CRL_PATH)} is signed by another key "
        "than that of the issuer smtp-ca CRL Issuing CA."
    )


def test_an_expired_crl_is_not_checked(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    next_update = utcnow() - dt.timedelta(days=2)
    stale = make_crl(
        intermediate,
        revoked=[Revoked(leaf)],
        this_update=next_update - dt.timedelta(days=7),
        next_update=next_update,
    )
    http.serve(CRL_PATH, stale)
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert revocation_line(outcome) == (
        f"Revocation: not checked, the CRL at {http.url(CRL_PATH)} is out of date (its next "
        f"update was {day(next_update)})."
    )


def test_a_crl_dated_in_the_future_is_not_checked(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    this_update = utcnow() + dt.timedelta(hours=2)
    http.serve(CRL_PATH, make_crl(intermediate, this_update=this_update))
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert "is dated in the future" in revocation_line(outcome)


def test_a_partitioned_crl_for_another_distribution_point_is_not_checked(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url("/partition-1.crl"), intermediate)
    other = make_crl(
        intermediate, revoked=[Revoked(leaf)], partition=[http.url("/partition-2.crl")]
    )
    http.serve("/partition-1.crl", other)  # the server publishes the wrong partition here
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert revocation_line(outcome) == (
        f"Revocation: not checked, the CRL at {http.url('/partition-1.crl')} is a partition "
        f"for another distribution point ({http.url('/partition-2.crl')})."
    )


def test_a_partitioned_crl_for_this_distribution_point_counts(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url("/partition-1.crl"), intermediate)
    mine = make_crl(intermediate, revoked=[Revoked(leaf)], partition=[http.url("/partition-1.crl")])
    http.serve("/partition-1.crl", mine)
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "revoked", text(outcome)


def test_a_partition_for_ca_certificates_only_does_not_cover_a_server(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf)], only_ca_certs=True))
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert "covers CA certificates only" in revocation_line(outcome)


def test_a_crl_in_another_issuers_name_is_not_checked(
    root: Issued, intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(root, revoked=[Revoked(leaf)]))  # the root's CRL, not its
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert (
        "is in the name of smtp-ca CRL Root CA, not of the issuer smtp-ca CRL Issuing CA"
        in revocation_line(outcome)
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>maintenance</html>", "is not a CRL (DER or PEM)"),
        (b"\x30\x03\x02\x01\x01", "is not a CRL (DER or PEM)"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is not a CRL"),
    ],
)
def test_something_that_is_not_a_crl_is_not_checked(
    intermediate: Issued, root_file: Path, http: LocalServer, body: bytes, words: str
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, body)
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert words in revocation_line(outcome)


def test_an_unreachable_crl_server_is_a_note(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    leaf = leaf_naming(http.url("/gone.crl"), intermediate)  # answers 404
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    assert revocation_line(outcome) == (
        f"Revocation: not checked, the CRL at {http.url('/gone.crl')} could not be fetched: "
        "the server answered HTTP 404 Not Found."
    )


def test_a_crl_the_size_of_a_real_partition_is_read(
    intermediate: Issued, root_file: Path, http: LocalServer
) -> None:
    """DigiCert's partitioned CRLs are about 10 MB: a quarter of a million entries."""
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    big = make_crl(intermediate, revoked=[Revoked(leaf)], filler=260_000)
    assert 9_000_000 < len(big) < MAX_CRL_BYTES
    http.serve(CRL_PATH, big)
    with serving(leaf, intermediate) as server:
        outcome = check(server.port, root_file, timeout=10)
    assert outcome.cause == "revoked", text(outcome)


# --- kept until nextUpdate: a warm check fetches no CRL ----------------------------------------


def test_a_crl_is_kept_until_its_next_update(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    next_update = utcnow() + dt.timedelta(days=7)
    http.serve(CRL_PATH, make_crl(intermediate, next_update=next_update))
    with serving(leaf, intermediate) as server:
        first = check(server.port, root_file, cache_dir=tmp_path)
        second = check(server.port, root_file, cache_dir=tmp_path)
        after_next_update = check(
            server.port, root_file, cache_dir=tmp_path, now=next_update + dt.timedelta(hours=1)
        )
    assert (first.revocation, second.revocation) == ("good", "good")
    assert "kept from an earlier build" not in revocation_line(first)
    assert revocation_line(second).endswith(
        f", kept from an earlier build until {day(next_update)})."
    )
    # Past its nextUpdate the kept CRL is out of date: fetched again (and this one is too).
    assert "is out of date" in revocation_line(after_next_update)
    assert http.count(CRL_PATH) == 2
    assert list((tmp_path / "crl").iterdir()) == []  # an out-of-date CRL is not kept


def test_a_revoked_answer_from_the_kept_crl_still_fails(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf)]))
    with serving(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        http.stop()  # the CRL now comes from the cache only
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert outcome.cause == "revoked", text(outcome)
    assert "(kept from an earlier build until " in outcome.details[0]


@pytest.mark.parametrize("damage", ["flip", "truncate", "other-crl"])
def test_a_damaged_kept_crl_is_fetched_again_never_trusted(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path, damage: str
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf)]))
    with serving(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        (kept,) = (tmp_path / "crl").glob("*.crl")
        data = kept.read_bytes()
        if damage == "flip":  # a broken signature
            kept.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
        elif damage == "truncate":
            kept.write_bytes(data[: len(data) // 2])
        else:  # a CRL that says "not revoked", signed by someone else
            kept.write_bytes(make_crl(intermediate, signing_key=new_key()))
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert outcome.cause == "revoked", text(outcome)
    assert "kept from an earlier build" not in outcome.details[0]
    assert http.count(CRL_PATH) == 2
    assert kept.read_bytes() == data


def test_a_kept_crl_answers_from_its_record_and_reads_itself_for_a_new_certificate(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path
) -> None:
    """The record answers for the certificate it was made for; the server's next certificate,
    under the same CRL, is looked up in the kept CRL itself, and fetches nothing."""
    first = leaf_naming(http.url(CRL_PATH), intermediate)
    renewed = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(renewed)]))
    with serving(first, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        again = check(server.port, root_file, cache_dir=tmp_path)
    (record,) = (tmp_path / "crl").glob("*.json")
    assert len(json.loads(record.read_text())["verdicts"]) == 1
    with serving(renewed, intermediate) as server:
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert again.revocation == "good"
    assert "kept from an earlier build" in revocation_line(again)
    assert outcome.cause == "revoked", text(outcome)
    assert "(kept from an earlier build until " in outcome.details[0]
    assert http.count(CRL_PATH) == 1
    assert len(json.loads(record.read_text())["verdicts"]) == 2


@pytest.mark.parametrize("damage", ["not-json", "edited"])
def test_a_damaged_record_is_not_used(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path, damage: str
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, revoked=[Revoked(leaf)]))
    with serving(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        (record,) = (tmp_path / "crl").glob("*.json")
        if damage == "not-json":
            record.write_text('{"format": 1, "verdi')
        else:  # "revoked" turned into "good", without its check made again
            record.write_text(record.read_text().replace('"revoked"', '"good"'))
        outcome = check(server.port, root_file, cache_dir=tmp_path)
    assert outcome.cause == "revoked", text(outcome)  # read from the kept CRL itself
    assert http.count(CRL_PATH) == 1
    assert '"revoked"' in record.read_text()  # and recorded again


def test_a_crl_that_does_not_count_is_not_kept(
    intermediate: Issued, root_file: Path, http: LocalServer, tmp_path: Path
) -> None:
    leaf = leaf_naming(http.url(CRL_PATH), intermediate)
    http.serve(CRL_PATH, make_crl(intermediate, signing_key=new_key()))
    with serving(leaf, intermediate) as server:
        check(server.port, root_file, cache_dir=tmp_path)
        check(server.port, root_file, cache_dir=tmp_path)
    assert http.count(CRL_PATH) == 2
    assert list((tmp_path / "crl").iterdir()) == []


# --- no credentials for a URL taken from a certificate -----------------------------------------


def test_a_crl_fetch_carries_no_credentials(
    intermediate: Issued,
    root_file: Path,
    http: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Neither a .netrc entry for the CRL's host nor user info in the certificate's URL
    becomes an Authorization header."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login build-user password netrc-s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    with_userinfo = http.url("/userinfo.crl").replace("://", "://crl-user:url-s3cret@")
    issuing = issue("smtp-ca CRL Userinfo CA", intermediate, ca=True, crl=with_userinfo)
    http.serve("/userinfo.crl", make_crl(intermediate))
    leaf = leaf_naming(http.url(CRL_PATH), issuing)
    http.serve(CRL_PATH, make_crl(issuing))
    with serving(leaf, issuing, intermediate) as server:
        outcome = check(server.port, root_file)
    assert outcome.cause == "verified", text(outcome)
    requests = http.requests_for(CRL_PATH) + http.requests_for("/userinfo.crl")
    assert len(requests) == 2
    assert [request.headers.get("authorization") for request in requests] == [None, None]
