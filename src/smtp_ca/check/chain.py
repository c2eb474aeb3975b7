"""The certificates of a handshake, read from the socket and reasoned about offline.

OpenSSL's verdict (``ssl.SSLCertVerificationError``) names one error and nothing else. To say
*which* certificate expired, *which* issuer is missing, or whether another store would have
anchored the chain, the check reads what the server presented and looks at it here, with
``cryptography``, without any network.

The search for an issuer here is deliberately simple (names match and the signature checks):
it answers "does this store hold a certificate that anchors this chain?". Whether the chain is
then good enough is still OpenSSL's call, in the real handshake the check makes.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import ssl
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtp_ca.bundle.certificates import (
    CertificateError,
    basic_constraints_ca,
    fingerprint_sha256,
    readable_name,
    signature_verifies,
    split_pem,
)
from smtp_ca.untrusted import at_most, escaped

if TYPE_CHECKING:
    from cryptography import x509

# The bundle marks where each certificate came from with a "# From: <origin>" comment line.
_ORIGIN_PREFIX = b"# From: "
ORIGIN_DESCRIPTIONS = {
    "SMTP_CA_BUNDLE_URL": "from SMTP_CA_BUNDLE_URL",
    "certifi": "one of certifi's public roots (SMTP_CA_PUBLIC_ROOTS)",
}
# A listing of the chain a server presented shows this many certificates at most: the first
# few (the leaf and its issuers) and the last few (where a long chain ends).
LISTED_FIRST = 5
LISTED_LAST = 5


# --- reading the socket -------------------------------------------------------------------------


def presented_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the server sent, leaf first, whether or not they verified."""
    return _load_der(_chain_der(tls, "get_unverified_chain"))


def verified_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """The chain OpenSSL verified, leaf first, ending with the store's anchor."""
    return _load_der(_chain_der(tls, "get_verified_chain"))


def _chain_der(tls: ssl.SSLSocket, method: str) -> list[bytes]:
    # Public on SSLSocket from Python 3.13 (returning DER bytes); 3.10 to 3.12 only have it on
    # the private _sslobj, returning _ssl.Certificate objects.
    reader: Any = getattr(tls, method, None)
    if reader is None:
        reader = getattr(getattr(tls, "_sslobj", None), method, None)
    if reader is None:
        return []
    items: Any = reader() or []
    der: list[bytes] = []
    for item in items:
        if isinstance(item, bytes | bytearray):
            der.append(bytes(item))
        else:
            import _ssl

            der.append(item.public_bytes(_ssl.ENCODING_DER))
    return der


def _load_der(items: Iterable[bytes]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for der in items:
        try:
            certs.append(_parse_der(der))
        except ValueError:
            continue  # a certificate cryptography cannot parse adds nothing to the diagnosis
    return certs


def _parse_der(der: bytes) -> x509.Certificate:
    from cryptography import x509
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        # Old roots in the system store (Go Daddy Class 2) have serial number 0, which
        # cryptography warns about on stderr, where it would look like a build problem.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_der_x509_certificate(der)


# --- stores -------------------------------------------------------------------------------------


class Trusted:
    """One certificate of a store, and which part of the bundle it came from, if known.

    Parsed only when asked for: naming the anchor of a verified chain needs its fingerprint
    and origin alone, and a bundle holds a hundred-odd certificates.
    """

    def __init__(self, der: bytes, origin: str | None = None) -> None:
        self.der = der
        self.sha256 = hashlib.sha256(der).hexdigest()
        self.origin = origin

    @classmethod
    def of(cls, cert: x509.Certificate, origin: str | None = None) -> Trusted:
        from cryptography.hazmat.primitives import serialization

        trusted = cls(cert.public_bytes(serialization.Encoding.DER), origin)
        trusted.__dict__["cert"] = cert
        return trusted

    @functools.cached_property
    def cert(self) -> x509.Certificate | None:
        """The parsed certificate; None when cryptography cannot parse it."""
        try:
            return _parse_der(self.der)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        return readable_name(self.cert.subject) if self.cert else f"SHA-256 {self.sha256}"

    def describe_origin(self) -> str:
        if self.origin is None:
            return "from the bundle"
        return ORIGIN_DESCRIPTIONS.get(self.origin, f"from {escaped(self.origin)}")


class Store:
    """The certificates of one PEM file (a bundle, certifi's roots, the system store)."""

    def __init__(self, entries: Sequence[Trusted], label: str) -> None:
        self.label = label
        self.entries = tuple(entries)
        self._by_sha256 = {entry.sha256: entry for entry in self.entries}

    @classmethod
    def load(cls, path: Path, label: str) -> Store:
        """Every certificate of ``path``; blocks that do not parse are skipped, not fatal."""
        try:
            data = path.read_bytes()
        except OSError:
            return cls((), label)
        return cls.from_pem(data, label)

    @classmethod
    def from_pem(cls, data: bytes, label: str) -> Store:
        origins = [
            (number, line.strip()[len(_ORIGIN_PREFIX) :].decode("utf-8", "replace"))
            for number, line in enumerate(data.splitlines(), start=1)
            if line.startswith(_ORIGIN_PREFIX)
        ]
        try:
            blocks = split_pem(data)
        except CertificateError:
            return cls((), label)
        entries: list[Trusted] = []
        for block in blocks:
            if not block.is_certificate:
                continue
            origin = next((name for number, name in reversed(origins) if number < block.line), None)
            entries.append(Trusted(block.der, origin))
        return cls(entries, label)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, cert: x509.Certificate) -> Trusted | None:
        """This very certificate, if the store holds it."""
        return self._by_sha256.get(fingerprint_sha256(cert))

    def issuers_of(self, cert: x509.Certificate) -> list[Trusted]:
        return [
            entry
            for entry in self.entries
            if entry.cert is not None and signed_by(cert, entry.cert)
        ]

    def holds_root(self, cert: x509.Certificate) -> bool:
        """Whether the store holds ``cert`` itself, or another certificate with its name and
        key: the same root to a verifier, issued again."""
        if self.find(cert) is not None:
            return True
        from cryptography.hazmat.primitives import serialization

        def key(of: x509.Certificate) -> bytes:
            return of.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )

        return any(
            entry.cert is not None
            and entry.cert.subject == cert.subject
            and key(entry.cert) == key(cert)
            for entry in self.entries
        )

    def anchor_for(self, cert: x509.Certificate) -> Trusted | None:
        """The store's certificate that is ``cert`` itself or signed it, if any."""
        found = self.find(cert)
        if found is not None:
            return found
        issuers = self.issuers_of(cert)
        return issuers[0] if issuers else None


def load_store(path: Path | None, label: str) -> Store | None:
    """``None`` when there is no such file (a laptop without Debian's store, say)."""
    if path is None or not path.is_file():
        return None
    store = Store.load(path, label)
    return store if len(store) else None


# --- reasoning ----------------------------------------------------------------------------------


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """``parent``'s name is ``child``'s issuer and ``parent``'s key made ``child``'s signature."""
    if child.issuer != parent.subject:
        return False
    verifies = signature_verifies(child, parent)
    if verifies is None:
        # An algorithm cryptography will not check: the key identifiers still tell the right
        # parent from a namesake.
        return _key_identifiers_match(child, parent)
    return verifies


def _key_identifiers_match(child: x509.Certificate, parent: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        authority = child.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        subject = parent.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return False
    return authority.key_identifier is not None and authority.key_identifier == subject.digest


def may_sign_certificates(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE, and keyCertSign if the certificate restricts its key usage:
    what an intermediate fetched from the network must show before the check trusts it to have
    signed the server's certificate. A bundle's anchors are judged more leniently
    (``certificates.is_ca_or_v1_root``: an X.509 v1 root has no extensions at all)."""
    from cryptography import x509

    if basic_constraints_ca(cert) is not True:
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


def proven_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and ``signed_by`` proves the certificate signed itself (its key
    identifiers standing in for a signature cryptography cannot check): where a chain the
    server sent ends. Proof, unlike ``certificates.presumed_self_signed``: a namesake of a root
    must not end the walk as if it were the root."""
    return cert.subject == cert.issuer and signed_by(cert, cert)


def presented_path(presented: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The leaf, then its issuer, then that one's, as far as the server sent them.

    Servers send extra or out-of-order certificates; this follows signatures, not the order,
    to the real end of what was sent: a certificate whose issuer the server did not send, or
    a root. No certificate is used twice, so certificates that name each other end the walk
    too, and it never takes more steps than the server sent certificates (a TLS handshake
    caps those: OpenSSL's max_cert_list).
    """
    if not presented:
        return []
    path = [presented[0]]
    while not proven_self_signed(path[-1]):
        current = path[-1]
        issuer = next(
            (
                cert
                for cert in presented
                if all(cert is not seen for seen in path) and signed_by(current, cert)
            ),
            None,
        )
        if issuer is None:
            break
        path.append(issuer)
    return path


def host_names(cert: x509.Certificate) -> list[str]:
    """The names a client can match: subjectAltName DNS names and IPs, else the subject CN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        alt = None
    if alt is not None:
        names = [escaped(name) for name in alt.get_values_for_type(x509.DNSName)]
        names.extend(str(ip) for ip in alt.get_values_for_type(x509.IPAddress))
        return names
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [escaped(str(attribute.value)) for attribute in common]


def access_urls(cert: x509.Certificate, method: x509.ObjectIdentifier) -> list[str]:
    """The URLs of one access method (caIssuers, OCSP) in the Authority Information Access."""
    from cryptography import x509

    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        item.access_location.value
        for item in access
        if item.access_method == method
        and isinstance(item.access_location, x509.UniformResourceIdentifier)
    ]


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def short_sha256(digest: str) -> str:
    return f"{digest[:8]}…{digest[-8:]}"


def describe(cert: x509.Certificate) -> str:
    """One line: subject, issuer and not-after, the way the report lists a chain."""
    return (
        f"{readable_name(cert.subject)}, issued by {readable_name(cert.issuer)}, "
        f"valid until {day(cert.not_valid_after_utc)}"
    )


def describe_chain(certs: Sequence[x509.Certificate]) -> list[str]:
    """One line per certificate, numbered as sent; a long chain as its first few and last few
    lines around "… N more", so a server that sends a hundred certificates gets a listing a
    person can read."""
    lines = [f"  {number}. {describe(cert)}" for number, cert in enumerate(certs, start=1)]
    return at_most(lines, LISTED_FIRST + LISTED_LAST, last=LISTED_LAST, indent="  ")
