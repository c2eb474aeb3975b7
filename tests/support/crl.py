"""Certificate revocation lists from a test CA, as real CAs publish them (RFC 5280, 5.1).

``make_crl`` signs a CRL with the issuer's key (or another key, to forge one), lists the
certificates it is told to, and can be out of date, dated in the future, partitioned (an
Issuing Distribution Point naming its URL), or padded with made-up entries to the size of a
real partitioned CRL (DigiCert's are about 10 MB)::

    crl = make_crl(intermediate, revoked=[Revoked(leaf, reason=x509.ReasonFlags.key_compromise)])
    big = make_crl(intermediate, filler=250_000)      # some 10 MB, signed like the others

cryptography's ``CertificateRevocationListBuilder`` copies its list on every entry it adds,
so a CRL of a quarter of a million entries is built here from the small one it signs: the
made-up entries are spliced into its revokedCertificates, the lengths fixed, and the
TBSCertList signed again with the same key.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from support.certs import Issued, PrivateKey, utcnow


@dataclass(frozen=True)
class Revoked:
    cert: Issued
    reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise
    when: dt.datetime | None = None  # default: a day ago


def make_crl(
    issuer: Issued,
    *,
    revoked: Iterable[Revoked] = (),
    this_update: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
    partition: Sequence[str] = (),
    only_ca_certs: bool = False,
    signing_key: PrivateKey | None = None,
    filler: int = 0,
    pem: bool = False,
) -> bytes:
    """A CRL in ``issuer``'s name, DER (or PEM): signed by ``issuer``'s key unless
    ``signing_key`` says otherwise; valid from an hour ago for a week unless the dates say
    otherwise; with an Issuing Distribution Point naming ``partition``'s URLs when given (or
    saying it covers CA certificates only); and ``filler`` made-up entries after the real ones.
    """
    now = utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update or now - dt.timedelta(hours=1))
        .next_update(next_update or now + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if partition or only_ca_certs:
        full_name = [x509.UniformResourceIdentifier(url) for url in partition] or None
        builder = builder.add_extension(
            x509.IssuingDistributionPoint(
                full_name=full_name,
                relative_name=None,
                only_contains_user_certs=False,
                only_contains_ca_certs=only_ca_certs,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            critical=True,
        )
    entries = list(revoked)
    if filler and not entries:
        # The spliced entries go into an existing revokedCertificates: make sure there is one.
        entries = [Revoked(issuer, reason=None)]
    for entry in entries:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.cert.cert.serial_number)
            .revocation_date(entry.when or now - dt.timedelta(days=1))
        )
        if entry.reason is not None:
            item = item.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    key = signing_key or issuer.key
    crl = builder.sign(key, hashes.SHA256())
    der = crl.public_bytes(serialization.Encoding.DER)
    if filler:
        der = _padded(der, key, filler)
    if pem:
        return b"-----BEGIN X509 CRL-----\n" + _base64_lines(der) + b"-----END X509 CRL-----\n"
    return der


def _padded(der: bytes, key: PrivateKey, count: int) -> bytes:
    """``der`` with ``count`` made-up entries added to its revokedCertificates, signed again."""
    _, outer = _element(der, 0)
    tbs_start = outer
    tbs_end, tbs_body = _element(der, tbs_start)
    algorithm_end, _ = _element(der, tbs_end)
    algorithm = der[tbs_end:algorithm_end]
    # TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, revokedCertificates, ...
    parts: list[bytes] = []
    position = tbs_body
    while position < tbs_end:
        end, _ = _element(der, position)
        parts.append(der[position:end])
        position = end
    revoked = parts[5]
    _, body = _element(revoked, 0)
    when = utcnow() - dt.timedelta(days=3)
    stamp = _der(0x17, when.strftime("%y%m%d%H%M%SZ").encode())
    filler = b"".join(
        _der(0x30, _der(0x02, b"\x01" + os.urandom(15)) + stamp) for _ in range(count)
    )
    parts[5] = _der(0x30, revoked[body:] + filler)
    tbs = _der(0x30, b"".join(parts))
    signature = _sign(key, tbs)
    return _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))


def _sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _element(der: bytes, offset: int) -> tuple[int, int]:
    """(end, start of the contents) of the DER element at ``offset``."""
    first = der[offset + 1]
    if first < 0x80:
        return offset + 2 + first, offset + 2
    count = first & 0x7F
    length = int.from_bytes(der[offset + 2 : offset + 2 + count], "big")
    start = offset + 2 + count
    return start + length, start


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + body


def _base64_lines(der: bytes) -> bytes:
    import base64

    text = base64.b64encode(der)
    return b"".join(text[start : start + 64] + b"\n" for start in range(0, len(text), 64))
