"""X.509 helpers over ``cryptography``: split PEM, load, classify, summarize, re-encode.

Nothing here knows about config vars or the build log: problems are raised as
``CertificateError`` naming the PEM block (its number and line), and the caller says which file
or variable that block came from.

``cryptography`` is imported inside the functions that need it, not at the top: a warm build
reads the summaries it needs from the cache and never loads it, which saves about 40 ms of a
build step that should cost little more than starting Python.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

_BEGIN = re.compile(rb"^-----BEGIN ([A-Z0-9 ]+)-----$")
_END = re.compile(rb"^-----END ([A-Z0-9 ]+)-----$")
# "X509 CERTIFICATE" is the label older OpenSSL wrote; both hold a plain DER certificate.
CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE"})


class CertificateError(ValueError):
    """Bytes that are not the PEM certificates they should be; the message names the block."""


@dataclass(frozen=True)
class PemBlock:
    """One ``-----BEGIN x-----`` ... ``-----END x-----`` block, its body decoded."""

    index: int  # 1-based position among the blocks of the file
    line: int  # 1-based line of the BEGIN line
    label: str  # "CERTIFICATE", "PRIVATE KEY", ...
    der: bytes

    @property
    def where(self) -> str:
        return f"block {self.index} (line {self.line})"

    @property
    def is_certificate(self) -> bool:
        return self.label in CERTIFICATE_LABELS


@dataclass(frozen=True)
class CertificateSummary:
    """What a person (and the build report) needs to know about one certificate.

    Plain data, JSON round-trippable, so a warm build can report from the cache alone.
    Text fields are made printable: a certificate's names are attacker-chosen bytes that end up
    in the build log and in comment lines of the written bundle.
    """

    subject: str  # RFC 4514, most specific attribute first
    issuer: str
    not_before: datetime  # timezone-aware, UTC
    not_after: datetime
    sha256: str  # lower-case hex of the DER encoding
    is_ca: bool
    self_signed: bool
    name: str = ""  # readable: the CN, else OU, else O, else the subject

    @property
    def display_name(self) -> str:
        return self.name or self.subject

    def describe(self) -> str:
        """Subject and expiry, the way warnings name a certificate."""
        return f"{self.subject} (not after {self.not_after:%Y-%m-%d})"

    def is_expired(self, now: datetime) -> bool:
        return self.not_after < now

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now).days

    def to_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "is_ca": self.is_ca,
            "self_signed": self.self_signed,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> CertificateSummary:
        """The inverse of ``to_json``; ``ValueError`` on anything malformed."""

        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str):
                raise ValueError(f"{key}: expected a string")
            return value

        def flag(key: str) -> bool:
            value = data.get(key)
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected a boolean")
            return value

        def moment(key: str) -> datetime:
            value = datetime.fromisoformat(text(key))
            if value.tzinfo is None:
                raise ValueError(f"{key}: expected a time zone")
            return value

        fingerprint = text("sha256")
        if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
            raise ValueError("sha256: expected 64 hex digits")
        return cls(
            subject=text("subject"),
            issuer=text("issuer"),
            not_before=moment("not_before"),
            not_after=moment("not_after"),
            sha256=fingerprint,
            is_ca=flag("is_ca"),
            self_signed=flag("self_signed"),
            name=text("name"),
        )


def guess_format(data: bytes) -> str:
    """What a file that should be PEM looks like: "empty", "pem", "html", "der" or "other"."""
    stripped = data.lstrip(b"\xef\xbb\xbf").strip()
    if not stripped:
        return "empty"
    if b"-----BEGIN " in data:
        return "pem"
    head = stripped[:1024].lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")) or (
        b"<html" in head
    ):
        return "html"
    # DER certificates start with a SEQUENCE whose length takes two bytes (0x30 0x82).
    if data[:2] == b"\x30\x82":
        return "der"
    return "other"


def split_pem(data: bytes) -> list[PemBlock]:
    """Every PEM block of ``data``, in order, bodies base64-decoded.

    Accepts CRLF or CR line ends, a byte-order mark, text before, between and after blocks
    (certifi's and most CAs' files have comment headers), and blank lines. Raises
    ``CertificateError`` for a BEGIN without its END, an END without a BEGIN, or a body that is
    not base64. Returns an empty list when there is no BEGIN line at all.
    """
    blocks: list[PemBlock] = []
    label: str | None = None
    start = 0
    body: list[bytes] = []
    for number, raw in enumerate(data.lstrip(b"\xef\xbb\xbf").splitlines(), start=1):
        line = raw.strip()
        begin = _BEGIN.match(line)
        end = _END.match(line)
        if label is None:
            if begin:
                label, start, body = begin.group(1).decode(), number, []
            elif end:
                raise CertificateError(
                    f"line {number} has -----END {end.group(1).decode()}----- without a BEGIN "
                    "line before it: the file is damaged"
                )
            continue
        where = f"block {len(blocks) + 1} (line {start})"
        if begin:
            raise CertificateError(
                f"{where} has -----BEGIN {label}----- but no END line before the next BEGIN "
                f"(line {number}): the file is truncated or damaged"
            )
        if end:
            if end.group(1).decode() != label:
                raise CertificateError(
                    f"{where} begins as {label} but ends as {end.group(1).decode()} "
                    f"(line {number}): the file is damaged"
                )
            blocks.append(PemBlock(len(blocks) + 1, start, label, _decode_body(body, where)))
            label = None
            continue
        body.append(line)
    if label is not None:
        raise CertificateError(
            f"block {len(blocks) + 1} (line {start}) has -----BEGIN {label}----- but no END "
            "line: the file is truncated"
        )
    return blocks


def _decode_body(lines: list[bytes], where: str) -> bytes:
    if any(b":" in line for line in lines):
        # RFC 1421 headers (Proc-Type: 4,ENCRYPTED) mark an encrypted key, never a certificate.
        raise CertificateError(f"{where} has PEM headers: it is encrypted, not a certificate")
    text = b"".join(lines)
    if not text:
        raise CertificateError(f"{where} is empty")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise CertificateError(
            f"{where} is not valid base64 ({error}): the file is damaged"
        ) from None


def load_certificate(block: PemBlock) -> x509.Certificate:
    """The certificate in ``block``; ``CertificateError`` naming the block if it is not one."""
    from cryptography import x509
    from cryptography.utils import CryptographyDeprecationWarning

    if not block.is_certificate:
        raise CertificateError(f"{block.where} is a {block.label}, not a certificate")
    try:
        with warnings.catch_warnings():
            # Go Daddy's Class 2 root has serial number 0, which RFC 5280 forbids; cryptography
            # warns on stderr, where it would look like a build problem. It is a valid root.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(block.der)
            # Names, dates and extensions are parsed lazily: a malformed one must fail here,
            # naming the block, not later in summarize() as an internal error.
            _ = (
                cert.subject.rfc4514_string(),
                cert.issuer.rfc4514_string(),
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
                cert.extensions,
            )
    except (ValueError, KeyError, x509.DuplicateExtension, x509.InvalidVersion) as error:
        # DuplicateExtension and InvalidVersion are not ValueErrors; a name attribute whose
        # ASN.1 string type cryptography does not know fails in rfc4514_string with KeyError.
        raise CertificateError(
            f"{block.where} is not a valid X.509 certificate ({error}): the file is damaged"
        ) from None
    return cert


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM ``data``; other block types (keys, CRLs) are skipped."""
    return [load_certificate(block) for block in split_pem(data) if block.is_certificate]


def fingerprint_sha256(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def presumed_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature, or, for an
    algorithm nothing here can check, the names alone match (OpenSSL's "self-issued" test).

    Presumed, because a store's certificate is trusted by being in the store: an old root
    signed with an algorithm cryptography no longer checks (MD2, MD5) is still a root. The
    check's chain walk wants proof instead (``check.chain.proven_self_signed``), because there a
    namesake of a root would end the walk too early.
    """
    return cert.subject == cert.issuer and signature_verifies(cert, cert) is not False


def signature_verifies(child: x509.Certificate, parent: x509.Certificate) -> bool | None:
    """Whether ``parent``'s key made ``child``'s signature; None when that cannot be judged
    (a key or signature algorithm cryptography does not know).

    The key's own verify, not ``verify_directly_issued_by``: that refuses SHA-1, which old
    roots (Go Daddy Class 2) and their cross-signs still use. Such a signature protects nothing
    in a root (trust comes from being in the store), but it still tells the real issuer from a
    certificate with a look-alike name.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key = parent.public_key()
        digest = child.signature_hash_algorithm
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    try:
        parameters = child.signature_algorithm_parameters
    except (ValueError, TypeError, UnsupportedAlgorithm):
        parameters = None
    # RSA signs with PKCS#1 v1.5 or PSS; any other parameters belong to other key types.
    rsa_padding = parameters if isinstance(parameters, padding.PKCS1v15 | padding.PSS) else None
    return verify_signature(
        key, child.signature, child.tbs_certificate_bytes, digest=digest, rsa_padding=rsa_padding
    )


def verify_signature(
    key: CertificatePublicKeyTypes,
    signature: bytes,
    signed: bytes,
    *,
    digest: HashAlgorithm | None,
    rsa_padding: AsymmetricPadding | None,
) -> bool | None:
    """Whether ``key`` made ``signature`` over ``signed``, by the key's type: True, False
    (it did not), or None when that cannot be judged (a key type, digest or padding
    cryptography does not know). Certificates (``signature_verifies``) and OCSP answers
    (``check.ocsp``) are both signed this way."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    try:
        if isinstance(key, rsa.RSAPublicKey) and digest is not None:
            if rsa_padding is None:
                return None
            key.verify(signature, signed, rsa_padding, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(signature, signed, ec.ECDSA(digest))
        elif isinstance(key, dsa.DSAPublicKey) and digest is not None:
            key.verify(signature, signed, digest)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, signed)
        else:
            return None
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return True


def basic_constraints_ca(cert: x509.Certificate) -> bool | None:
    """The CA flag of basicConstraints, or None when the extension is absent."""
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return None


def is_ca_or_v1_root(cert: x509.Certificate, *, self_signed: bool | None = None) -> bool:
    """basicConstraints says CA:TRUE, or is absent on a self-signed (X.509 v1 style) root:
    what a bundle may hold as a trust anchor.

    An intermediate fetched from the network must show more (``check.chain``'s
    ``may_sign_certificates``: CA:TRUE itself, and keyCertSign). ``self_signed`` saves a second
    signature check when the caller already knows.
    """
    flag = basic_constraints_ca(cert)
    if flag is not None:
        return flag
    return presumed_self_signed(cert) if self_signed is None else self_signed


def readable_name(name: x509.Name) -> str:
    """The most telling attribute of ``name``: CN, else OU, else O, else the whole name."""
    from cryptography.x509.oid import NameOID

    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.ORGANIZATION_NAME):
        attributes = name.get_attributes_for_oid(oid)
        if attributes:
            value = attributes[0].value
            return shown(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return shown(name.rfc4514_string())


def summarize(cert: x509.Certificate) -> CertificateSummary:
    self_signed = presumed_self_signed(cert)
    return CertificateSummary(
        subject=shown(cert.subject.rfc4514_string()),
        issuer=shown(cert.issuer.rfc4514_string()),
        not_before=cert.not_valid_before_utc.astimezone(timezone.utc),
        not_after=cert.not_valid_after_utc.astimezone(timezone.utc),
        sha256=fingerprint_sha256(cert),
        is_ca=is_ca_or_v1_root(cert, self_signed=self_signed),
        self_signed=self_signed,
        name=readable_name(cert.subject),
    )


def to_pem(cert: x509.Certificate) -> bytes:
    """Canonical PEM (LF line ends, 64-column base64), whatever the input looked like."""
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)
