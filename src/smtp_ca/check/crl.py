"""Asking the CRLs a certificate names (its CRL Distribution Points) whether it was revoked.

CRLs are how public CAs publish revocation now: the CA/Browser Forum's ballot SC-063 made
them mandatory and OCSP optional (2024), and Let's Encrypt's certificates name no OCSP
responder at all since 2025. OpenSSL's verification (and Ruby's) reads no CRL unless it is
handed one, so this is, with ``ocsp``, the only place the build can find out.

A CRL counts only when (RFC 5280, 6.3.3):

* it is in the name of the certificate's issuer and its signature checks against that
  issuer's key (the next certificate up the chain that verified), and that key may sign CRLs;
* it is current: thisUpdate not in the future, nextUpdate not past (a few minutes of clock
  skew either way);
* it is a complete CRL that covers the certificate: not a delta CRL, not an indirect one, and,
  when it is partitioned (an Issuing Distribution Point), a partition that names the
  distribution point the certificate names, for the kind of certificate it is.

Anything else leaves the question open, with the reason: a note, never a failed build.

A CRL can be large (DigiCert's partitioned CRLs are about 10 MB from September 2026), so it is
fetched through ``fetch`` within what is left of the check's one deadline, with a cap
(``MAX_CRL_BYTES``), and written to the cache as it arrives: it is held in memory once, to be
parsed, never twice. A CRL that counts is kept in ``<cache>/crl`` until its nextUpdate, when
the CA promises a new one, with a record of what it said (``crl_cache``), so a warm build
fetches none and parses none. A kept CRL without a record that fits is judged exactly like a
fresh one (issuer, signature, dates, partition): one that is damaged, out of date or no longer
fits is fetched again, never trusted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import (
    CertificateError,
    basic_constraints_ca,
    fingerprint_sha256,
    readable_name,
    split_pem,
    verify_signature,
)
from smtp_ca.check.answers import Answer
from smtp_ca.check.chain import day
from smtp_ca.check.crl_cache import KeptCrl, Verdict
from smtp_ca.net.deadline import Deadline
from smtp_ca.net.http import FetchError, display_url, fetch, is_fetchable
from smtp_ca.untrusted import escaped

if TYPE_CHECKING:
    from cryptography import x509

# Three times DigiCert's partitioned CRLs (about 10 MB each from September 2026), the largest a
# public CA announces for server certificates: room for growth and for a CA that partitions
# less, while a hostile server still cannot make the build hold more than this in memory.
MAX_CRL_BYTES = 32 * 1024 * 1024
# Distribution point URLs tried per certificate: one is the norm, a second is a fallback.
MAX_URLS = 2
# Clocks differ: a CRL dated a little in the future, or just past its nextUpdate, is fine.
CLOCK_SKEW = timedelta(minutes=5)
# The labels a PEM CRL is served under (RFC 7468 says "X509 CRL").
_PEM_LABELS = frozenset({"X509 CRL", "CRL"})


@dataclass(frozen=True)
class _Point:
    """One URL of a distribution point the certificate names, and all that point's URLs (a
    partitioned CRL must name one of them)."""

    url: str
    names: frozenset[str]


def ask(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    deadline: Deadline,
    now: datetime,
    cache_dir: Path | None = None,
) -> Answer:
    """What the CRL at ``cert``'s distribution point says about it; ``issuer`` signed ``cert``.

    The first usable URL is asked; a second one only if the first gives no answer that counts.
    """
    points, unusable = _distribution_points(cert)
    if not points:
        return Answer("unchecked", unusable)
    first: Answer | None = None
    for point in points[:MAX_URLS]:
        answer = _ask_one(point, cert, issuer, deadline, now, cache_dir)
        if answer.status in ("good", "revoked"):
            return answer
        first = first or answer
    assert first is not None
    return first


def _distribution_points(cert: x509.Certificate) -> tuple[list[_Point], str | None]:
    """The http(s) URLs of the complete CRLs ``cert`` names, and, when it names CRLs but none
    of them can be read, why (None when it names no CRL at all)."""
    from cryptography import x509

    try:
        extension = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return [], None
    except (ValueError, x509.DuplicateExtension):
        return [], "the certificate's CRL Distribution Points cannot be read"
    points: list[_Point] = []
    for point in extension.value:
        # A point for some reasons only, or a CRL signed by someone else (an indirect CRL),
        # cannot say "not revoked" on its own.
        if point.full_name is None or point.reasons or point.crl_issuer:
            continue
        urls = [
            name.value
            for name in point.full_name
            if isinstance(name, x509.UniformResourceIdentifier)
        ]
        points.extend(_Point(url, frozenset(urls)) for url in urls if is_fetchable(url))
    if points:
        return points, None
    return [], (
        "the certificate names CRLs only where the build does not read them (not http:// or "
        "https://, for some reasons only, or signed by another CA)"
    )


def _ask_one(
    point: _Point,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    deadline: Deadline,
    now: datetime,
    cache_dir: Path | None,
) -> Answer:
    shown = escaped(display_url(point.url))  # the certificate's words
    kept = KeptCrl(cache_dir, point.url) if cache_dir is not None else None
    cert_sha256, issuer_sha256 = fingerprint_sha256(cert), fingerprint_sha256(issuer)
    if kept is not None:
        recorded = kept.recorded(cert_sha256, issuer_sha256)
        if recorded is not None and _current(recorded, now):
            return _answer(recorded, shown, cached=True)
        data = kept.read(MAX_CRL_BYTES)
        if data is not None:
            judged = _judge(data, point, cert, issuer, now, shown)
            if isinstance(judged, Verdict):
                kept.remember(data, cert_sha256, issuer_sha256, judged)
                return _answer(judged, shown, cached=True)
        kept.forget()  # damaged, out of date or someone else's: fetch it again

    temporary = kept.temporary() if kept is not None else None
    try:
        try:
            data = _fetch_into(point.url, deadline, temporary)
        except FetchError as error:
            return Answer("unchecked", f"the CRL at {shown} could not be fetched: {error.reason}")
        except OSError as error:  # the disk, not the network
            why = error.strerror or str(error)
            return Answer("unchecked", f"the CRL at {shown} could not be written down: {why}")
        judged = _judge(data, point, cert, issuer, now, shown)
        if not isinstance(judged, Verdict):
            return judged
        if kept is not None and temporary is not None and kept.keep(temporary):
            temporary = None
            kept.remember(data, cert_sha256, issuer_sha256, judged)
        return _answer(judged, shown, cached=False)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()


def _fetch_into(url: str, deadline: Deadline, temporary: Path | None) -> bytes:
    """Fetches ``url`` into ``temporary`` (an anonymous file when None) as it arrives, then
    reads it back once, to be judged: the CRL is in memory once, never twice. Raises
    ``FetchError``, or ``OSError`` for the disk."""
    with temporary.open("w+b") if temporary is not None else tempfile.TemporaryFile() as stream:
        fetch(
            url,
            deadline,
            max_bytes=MAX_CRL_BYTES,
            accept="application/pkix-crl, */*",
            sink=stream.write,
        )
        stream.flush()
        os.fsync(stream.fileno())  # a kept CRL is whole, or not there
        stream.seek(0)
        return stream.read(MAX_CRL_BYTES + 1)


# --- judging a CRL --------------------------------------------------------------------------


def _current(verdict: Verdict, now: datetime) -> bool:
    return verdict.this_update_at <= now + CLOCK_SKEW and verdict.next_update_at >= now - CLOCK_SKEW


def _answer(verdict: Verdict, shown: str, *, cached: bool) -> Answer:
    """What a CRL that counts said, as the report says it."""
    until = day(verdict.next_update_at)
    if verdict.status == "revoked":
        kept = f" (kept from an earlier build until {until})" if cached else ""
        return Answer(
            "revoked",
            f"revoked on {verdict.revoked_on} ({verdict.reason or 'no reason given'}), says "
            f"the CRL at {shown}{kept}",
        )
    if verdict.status == "good":
        kept = f", kept from an earlier build until {until}" if cached else ""
        issued = day(verdict.this_update_at)
        return Answer("good", f"not revoked, says the CRL at {shown} (issued {issued}{kept})")
    return Answer("unchecked", f"the CRL at {shown} {verdict.why}")


def _judge(
    data: bytes,
    point: _Point,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    shown: str,
) -> Verdict | Answer:
    """What the CRL in ``data`` says about ``cert`` when it is one that counts; otherwise the
    open question, and why."""
    from cryptography import x509

    def open_question(why: str) -> Answer:
        return Answer("unchecked", f"the CRL at {shown} {why}")

    der = _der(data)
    try:
        crl = x509.load_der_x509_crl(der) if der is not None else None
    except ValueError:
        crl = None
    if der is None or crl is None:
        return open_question("is not a CRL (DER or PEM)")
    try:
        problem = _untrusted(crl, der, issuer, now)
        if problem is not None:
            return open_question(problem)
        scope = _scope(crl, point, cert)
        if not scope.covers:
            return open_question(scope.why or "does not cover the certificate")
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        reason = _reason(entry) if entry is not None else None
        next_update = crl.next_update_utc
        dates = {"this_update": crl.last_update_utc.isoformat()}
    except ValueError:
        return open_question("is malformed")
    assert next_update is not None  # _untrusted refuses a CRL without one
    dates["next_update"] = next_update.isoformat()
    if entry is not None:
        if reason == "removeFromCRL":  # only a delta CRL may say this (RFC 5280, 5.3.1)
            return open_question("lists the certificate as removeFromCRL in a complete CRL")
        revoked_on = f"{entry.revocation_date_utc:%Y-%m-%d}"
        return Verdict("revoked", **dates, revoked_on=revoked_on, reason=reason)
    if scope.why is not None:  # a partition for some reasons only: not listed proves nothing
        return Verdict("unchecked", **dates, why=scope.why)
    return Verdict("good", **dates)


def _der(data: bytes) -> bytes | None:
    """The DER of a CRL served as DER or PEM (RFC 5280 says DER; some CAs serve PEM)."""
    if b"-----BEGIN" not in data[:1024]:
        return data
    try:
        blocks = split_pem(data)
    except CertificateError:
        return None
    return next((block.der for block in blocks if block.label in _PEM_LABELS), None)


def _untrusted(
    crl: x509.CertificateRevocationList, der: bytes, issuer: x509.Certificate, now: datetime
) -> str | None:
    """Why the CRL is not one to trust for ``issuer``'s certificates now, or None."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    issuer_name = readable_name(issuer.subject)
    if crl.issuer != issuer.subject:
        return f"is in the name of {readable_name(crl.issuer)}, not of the issuer {issuer_name}"
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.crl_sign:
        return f"is signed by {issuer_name}, whose key usage does not allow signing CRLs"
    if basic_constraints_ca(issuer) is False:
        return f"is signed by {issuer_name}, which is not a CA"
    if not _signature_verifies(crl, der, issuer):
        return f"is signed by another key than that of the issuer {issuer_name}"
    if crl.last_update_utc > now + CLOCK_SKEW:
        return f"is dated in the future (issued {day(crl.last_update_utc)})"
    next_update = crl.next_update_utc
    if next_update is None:
        return "has no next update, so whether it is current cannot be told"
    if next_update < now - CLOCK_SKEW:
        return f"is out of date (its next update was {day(next_update)})"
    for extension in crl.extensions:
        if extension.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            return "is a delta CRL, not a complete one"
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            return (
                f"has a critical extension the build does not know ({extension.oid.dotted_string})"
            )
    return None


def _signature_verifies(
    crl: x509.CertificateRevocationList, der: bytes, issuer: x509.Certificate
) -> bool:
    """Only a signature that verifies counts: one that cannot be judged does not.

    It is checked over the TBSCertList as it came (the first element of the CRL's outer
    SEQUENCE): cryptography's ``tbs_certlist_bytes`` encodes it again, which for a CRL of a
    quarter of a million entries costs ten times the check itself."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key = issuer.public_key()
        digest = crl.signature_hash_algorithm
        parameters = crl.signature_algorithm_parameters
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    rsa_padding = parameters if isinstance(parameters, padding.PKCS1v15 | padding.PSS) else None
    tbs = _first_element(der)
    if tbs is None:
        return False
    verified = verify_signature(key, crl.signature, tbs, digest=digest, rsa_padding=rsa_padding)
    return verified is True


def _first_element(der: bytes) -> bytes | None:
    """The first element inside the outer SEQUENCE of ``der``: just enough DER for a CRL that
    cryptography has parsed already (so its lengths are known to be sound)."""
    try:
        _, start = _header(der, 0)
        length, body = _header(der, start)
    except IndexError:
        return None
    end = body + length
    return der[start:end] if der[start] == 0x30 and end <= len(der) else None


def _header(der: bytes, offset: int) -> tuple[int, int]:
    """(length, offset of the contents) of the DER element at ``offset``."""
    first = der[offset + 1]
    if first < 0x80:
        return first, offset + 2
    count = first & 0x7F
    return int.from_bytes(der[offset + 2 : offset + 2 + count], "big"), offset + 2 + count


@dataclass(frozen=True)
class _Scope:
    """Whether a CRL covers a certificate, and, when it does not say all it could, why."""

    covers: bool
    why: str | None = None  # with covers: it lists only some reasons, so only a listing counts


def _scope(crl: x509.CertificateRevocationList, point: _Point, cert: x509.Certificate) -> _Scope:
    """Whether a partitioned CRL (one with an Issuing Distribution Point, RFC 5280 5.2.5)
    covers ``cert``, which names ``point``. A CRL without one covers every certificate of its
    issuer."""
    from cryptography import x509

    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return _Scope(covers=True)
    is_ca = basic_constraints_ca(cert) is True
    if idp.indirect_crl:
        why = "is an indirect CRL (signed for other CAs too), which the build does not read"
    elif idp.only_contains_attribute_certs:
        why = "covers attribute certificates only"
    elif idp.only_contains_user_certs and is_ca:
        why = "covers end-entity certificates only, not CA certificates"
    elif idp.only_contains_ca_certs and not is_ca:
        why = "covers CA certificates only"
    elif idp.relative_name is not None:
        why = "names its distribution point relative to its issuer, which the build does not read"
    elif idp.full_name is not None and not _names(idp.full_name) & point.names:
        names = sorted(_names(idp.full_name))
        other = escaped(display_url(names[0])) if names else "a name that is not a URL"
        why = f"is a partition for another distribution point ({other})"
    elif idp.only_some_reasons:
        return _Scope(
            True, "covers only some reasons for revocation, so it cannot say 'not revoked'"
        )
    else:
        return _Scope(covers=True)
    return _Scope(False, why)


def _names(general_names: Iterable[x509.GeneralName]) -> set[str]:
    from cryptography import x509

    return {
        name.value for name in general_names if isinstance(name, x509.UniformResourceIdentifier)
    }


def _reason(entry: x509.RevokedCertificate) -> str | None:
    """The entry's reason code as RFC 5280 spells it (keyCompromise), if it gives one."""
    from cryptography import x509

    try:
        return str(entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value)
    except x509.ExtensionNotFound:
        return None
