"""Asking the OCSP responder a certificate names whether it was revoked.

OpenSSL's verification (and Ruby's) never asks, so a revoked certificate verifies: this and
``crl`` are the only places the build can find out. The answer counts only when its signature
checks, made by the issuer itself or by a responder certificate the issuer signed for OCSP
signing (RFC 6960, 4.2.2.2). A responder that cannot be reached, or an answer that cannot be
trusted, leaves the question open: that is a note in the report, never a failed build.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import readable_name, verify_signature
from smtp_ca.cache import layout
from smtp_ca.check.answers import Answer
from smtp_ca.check.chain import access_urls, day, signed_by
from smtp_ca.files import write_atomically
from smtp_ca.net.deadline import Deadline
from smtp_ca.net.http import FetchError, display_url, fetch, is_fetchable
from smtp_ca.untrusted import escaped

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

# An OCSP answer is a few hundred bytes, a few KiB with a delegated responder's certificate.
MAX_RESPONSE_BYTES = 64 * 1024
# Clocks differ: an answer dated a little in the future, or just out of date, is still fine.
CLOCK_SKEW = timedelta(minutes=5)


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    from cryptography.x509.oid import AuthorityInformationAccessOID

    return access_urls(cert, AuthorityInformationAccessOID.OCSP)


def ask(
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    deadline: Deadline,
    now: datetime,
    cache_dir: Path | None = None,
) -> Answer:
    """Asks the first http(s) OCSP responder of ``leaf`` (the server's certificate or an
    intermediate) about it, within ``deadline``; ``issuer`` signed ``leaf``.

    A trusted answer is kept in ``cache_dir`` until its nextUpdate: until then the responder
    has promised nothing newer, so a warm build reuses it (checked again, signature and dates)
    instead of asking on every deploy.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    urls = [url for url in ocsp_urls(leaf) if is_fetchable(url)]
    if not urls:
        return Answer("unchecked", None)
    shown = escaped(display_url(urls[0]))  # the certificate's words
    cached = _cache_path(cache_dir, leaf, issuer)
    if cached is not None and cached.is_file():
        answer = _interpret(cached.read_bytes(), leaf, issuer, now, shown, cached=True)
        if answer.answer.status in ("good", "revoked"):
            return answer.answer
        cached.unlink(missing_ok=True)  # stale or damaged: ask again

    # SHA-1 in the CertID is what every responder understands (RFC 6960 and the CA/Browser
    # Forum's profile); it names the certificate, it is not a signature.
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()  # noqa: S303
    try:
        data = fetch(
            urls[0],
            deadline,
            max_bytes=MAX_RESPONSE_BYTES,
            accept="application/ocsp-response",
            body=request.public_bytes(serialization.Encoding.DER),
            content_type="application/ocsp-request",
        )
    except FetchError as error:
        return _unchecked(f"at {shown} could not be asked: {error.reason}")
    answer = _interpret(data, leaf, issuer, now, shown, cached=False)
    if cached is not None and answer.cacheable:
        with contextlib.suppress(OSError):  # a cache that can't be written costs a request
            write_atomically(cached, data)
    return answer.answer


@dataclass(frozen=True)
class _Interpreted:
    answer: Answer
    cacheable: bool = False


def _unchecked(why: str) -> Answer:
    return Answer("unchecked", f"the OCSP responder {why}")


def _cache_path(
    cache_dir: Path | None, leaf: x509.Certificate, issuer: x509.Certificate
) -> Path | None:
    if cache_dir is None:
        return None
    from cryptography.hazmat.primitives import serialization

    der = serialization.Encoding.DER
    key = hashlib.sha256(leaf.public_bytes(der) + issuer.public_bytes(der)).hexdigest()
    return cache_dir / layout.OCSP / f"{key}.der"


def _interpret(
    data: bytes,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    shown: str,
    *,
    cached: bool,
) -> _Interpreted:
    """Turns a DER OCSP response into an Answer, trusting it only if it verifies."""
    from cryptography.x509 import ocsp

    trusted = _trusted_answer(data, leaf, issuer, now)
    if isinstance(trusted, str):
        return _Interpreted(_unchecked(f"at {shown} {trusted}"))
    single, signer = trusted
    next_update = single.next_update_utc
    # Without a nextUpdate the responder may know something newer at any time: never cached.
    cacheable = next_update is not None and next_update > now
    kept = (
        f", kept from an earlier build until {day(next_update)}" if cached and next_update else ""
    )

    signed_by_whom = readable_name(issuer.subject)
    if signer is not issuer:
        signed_by_whom = f"{readable_name(signer.subject)}, which {signed_by_whom} delegated to"
    status_value = single.certificate_status
    if status_value == ocsp.OCSPCertStatus.GOOD:
        return _Interpreted(
            Answer(
                "good",
                f"not revoked, says the OCSP responder at {shown} (signed answer "
                f"of {day(single.this_update_utc)}{kept})",
            ),
            cacheable,
        )
    if status_value == ocsp.OCSPCertStatus.REVOKED:
        # As a CRL's revocation reads: "revoked on 2026-11-30 (keyCompromise), says ...".
        revoked_at = single.revocation_time_utc
        reason = single.revocation_reason.value if single.revocation_reason else None
        return _Interpreted(
            Answer(
                "revoked",
                f"revoked on {revoked_at:%Y-%m-%d} ({reason or 'no reason given'}), says the "
                f"OCSP responder at {shown} (in an answer signed by {signed_by_whom}{kept})",
            ),
            cacheable,
        )
    return _Interpreted(
        Answer("unknown", f"the OCSP responder at {shown} does not know this certificate")
    )


def _trusted_answer(
    data: bytes, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
) -> tuple[ocsp.OCSPSingleResponse, x509.Certificate] | str:
    """The answer about ``leaf`` in the DER response ``data``, and who signed it, when the
    response is one to trust: successful, signed by the issuer or its delegate, about this
    certificate, and current. Otherwise what the responder did, as "the OCSP responder at URL
    ..." goes on."""
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return "answered something that is not an OCSP response"
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        status = response.response_status.name.lower().replace("_", " ")
        return f"answered '{status}'"
    signer, problem = _trusted_signer(response, issuer, now)
    if signer is None:
        return f"gave an answer that cannot be trusted: {problem}"
    single = _answer_for(response, leaf, issuer)
    if single is None:
        return "answered about another certificate"
    if single.this_update_utc > now + CLOCK_SKEW:
        return "gave an answer dated in the future"
    next_update = single.next_update_utc
    if next_update is not None and next_update < now - CLOCK_SKEW:
        return f"gave an out-of-date answer (until {day(next_update)})"
    return single, signer


def _answer_for(
    response: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse | None:
    for single in response.responses:
        if single.serial_number != leaf.serial_number:
            continue
        algorithm = single.hash_algorithm
        if single.issuer_key_hash == _key_hash(issuer, algorithm) and (
            single.issuer_name_hash == _digest(algorithm, leaf.issuer.public_bytes())
        ):
            return single
    return None


def _trusted_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> tuple[x509.Certificate | None, str]:
    """The certificate whose signature on the answer counts, or None and why there is none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    def is_signer(cert: x509.Certificate) -> bool:
        if response.responder_key_hash is not None:
            return response.responder_key_hash == _key_hash(cert, hashes.SHA1())  # noqa: S303
        return response.responder_name == cert.subject

    if is_signer(issuer):
        signer = issuer
    else:
        delegated = next((cert for cert in response.certificates if is_signer(cert)), None)
        if delegated is None:
            return None, "its signer is neither the issuer nor a responder certificate sent with it"
        name = readable_name(delegated.subject)
        if not signed_by(delegated, issuer):
            return None, f"its responder {name} was not issued by {readable_name(issuer.subject)}"
        try:
            usage = delegated.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            return None, f"its responder {name} is not a certificate for OCSP signing"
        if not delegated.not_valid_before_utc <= now <= delegated.not_valid_after_utc:
            return None, f"its responder {name} is not valid now"
        signer = delegated
    if not _signature_verifies(response, signer):
        return None, "its signature does not verify"
    return signer, ""


def _signature_verifies(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    """Only a signature that verifies counts: one that cannot be judged does not."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.x509.oid import SignatureAlgorithmOID

    try:
        key = signer.public_key()
        digest = response.signature_hash_algorithm
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    # An OCSP answer names its RSA padding by its algorithm OID alone.
    rsa_padding: padding.AsymmetricPadding = padding.PKCS1v15()
    if digest is not None and response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
        rsa_padding = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
    verified = verify_signature(
        key, response.signature, response.tbs_response_bytes, digest=digest, rsa_padding=rsa_padding
    )
    return verified is True


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """The hash of the subjectPublicKey BIT STRING's value (RFC 6960's issuerKeyHash)."""
    from cryptography.hazmat.primitives import serialization

    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _digest(algorithm, _subject_public_key(spki))


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    return hashlib.new(algorithm.name, data).digest()


def _subject_public_key(spki: bytes) -> bytes:
    """SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE, subjectPublicKey BIT STRING }:
    the BIT STRING's bytes after its unused-bits count. Just enough DER for this one shape."""
    _, offset = _header(spki, 0)  # into the outer SEQUENCE
    length, start = _header(spki, offset)  # the algorithm SEQUENCE
    length, start = _header(spki, start + length)  # the BIT STRING
    return spki[start + 1 : start + length]


def _header(der: bytes, offset: int) -> tuple[int, int]:
    """(length, offset of the contents) of the DER element at ``offset``."""
    first = der[offset + 1]
    if first < 0x80:
        return first, offset + 2
    count = first & 0x7F
    return int.from_bytes(der[offset + 2 : offset + 2 + count], "big"), offset + 2 + count
