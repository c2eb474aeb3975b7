"""Throwaway certificates for tests: roots, intermediates, leaves, and the odd ones.

Built with ``cryptography`` on EC P-256 keys by default (fast to make; RSA on request)::

    root = make_root("Test Root CA")
    intermediate = make_intermediate(root, "Test Issuing CA")
    leaf = make_leaf(intermediate, "smtp.example.test", "127.0.0.1")
    chain = leaf.pem + intermediate.pem          # what a server should send
    write_pem(tmp_path / "bundle.pem", intermediate, root)

Odd ones for servers and bundles that go wrong: ``expired=True``, ``expires_in=timedelta(...)``
(expiring soon), ``ca=False`` or ``ca=None`` (no basicConstraints at all), a self-signed leaf
(``make_self_signed_leaf``), an RSA key (``key_type="rsa"``). cryptography cannot sign with
SHA-1 any more: for an old SHA-1 root, use the real Go Daddy bundle in
tests/fixtures/godaddy (support.godaddy).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyType = Literal["ec", "rsa"]

DEFAULT_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=365)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    @property
    def common_name(self) -> str:
        value = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return value if isinstance(value, str) else value.decode()

    def write(self, path: Path) -> Path:
        """The certificate as PEM at ``path``."""
        path.write_bytes(self.pem)
        return path

    def write_key(self, path: Path) -> Path:
        path.write_bytes(self.key_pem)
        return path


def new_key(key_type: KeyType = "ec") -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool | None = True,
    path_length: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    expires_in: dt.timedelta | None = None,
    expired: bool = False,
    hostnames: Iterable[str] = (),
    organization: str | None = "smtp-ca tests",
    key: PrivateKey | None = None,
    key_type: KeyType = "ec",
    hash_algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
    server_auth: bool | None = None,
    extended_usages: Iterable[x509.ObjectIdentifier] | None = None,
    ca_issuers: str | None = None,
    ocsp: str | None = None,
    crl: str | Iterable[str] | None = None,
) -> Issued:
    """Any certificate. The helpers below are this with the usual settings.

    ``issuer=None`` makes it self-signed. ``ca=True``/``False`` sets basicConstraints (critical);
    ``ca=None`` leaves the extension out. Validity: ``expired=True`` ended yesterday;
    ``expires_in`` ends that far from now; otherwise ``not_before``/``not_after``, or now to
    now + ``lifetime``. ``hostnames`` become subjectAltName entries (IP addresses as IPs).
    Leaves get serverAuth unless ``server_auth`` or ``extended_usages`` (the whole list; ``[]``
    for none) say otherwise. ``ca_issuers`` and ``ocsp`` are Authority Information Access URLs:
    where the issuer can be fetched, and whom to ask about revocation; ``crl`` is the URL (or
    URLs) of one CRL Distribution Point, where the issuer publishes its revocation list.
    """
    now = utcnow()
    key = key or new_key(key_type)
    if expired:
        not_before = not_before or now - dt.timedelta(days=400)
        not_after = now - dt.timedelta(days=1)
    elif expires_in is not None:
        not_after = now + expires_in
    not_before = not_before or now - dt.timedelta(hours=1)
    not_after = not_after or not_before + lifetime

    # Most general first, as CAs write them: RFC 4514 strings then start with the CN.
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else key

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if ca:
        builder = builder.add_extension(_key_usage(cert_sign=True), critical=True)
    else:
        builder = builder.add_extension(
            _key_usage(cert_sign=False, rsa_key=isinstance(key, rsa.RSAPrivateKey)), critical=True
        )
    names = [_general_name(name) for name in hostnames]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if extended_usages is None:
        wants_server_auth = server_auth if server_auth is not None else not ca
        extended_usages = [ExtendedKeyUsageOID.SERVER_AUTH] if wants_server_auth else []
    usages = list(extended_usages)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    access = [
        x509.AccessDescription(method, x509.UniformResourceIdentifier(url))
        for method, url in (
            (AuthorityInformationAccessOID.CA_ISSUERS, ca_issuers),
            (AuthorityInformationAccessOID.OCSP, ocsp),
        )
        if url
    ]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    crl_urls = [crl] if isinstance(crl, str) else list(crl or ())
    if crl_urls:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(url) for url in crl_urls],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    cert = builder.sign(signer_key, hash_algorithm or hashes.SHA256())
    return Issued(cert, key)


def make_root(common_name: str = "smtp-ca Test Root CA", **options: Any) -> Issued:
    """A self-signed CA certificate."""
    return make_cert(common_name, issuer=None, ca=True, **options)


def make_intermediate(
    issuer: Issued, common_name: str = "smtp-ca Test Intermediate CA", **options: Any
) -> Issued:
    return make_cert(common_name, issuer=issuer, ca=True, **options)


def make_leaf(
    issuer: Issued,
    common_name: str = "localhost",
    *hostnames: str,
    **options: Any,
) -> Issued:
    """A server certificate; its subjectAltName holds ``common_name`` and ``hostnames``."""
    names = (common_name, *hostnames)
    options.setdefault("lifetime", LEAF_LIFETIME)
    return make_cert(common_name, issuer=issuer, ca=False, hostnames=names, **options)


def make_self_signed_leaf(
    common_name: str = "localhost", *hostnames: str, **options: Any
) -> Issued:
    """A server certificate that signs itself (CA:FALSE), as home-made mail servers have."""
    options.setdefault("lifetime", LEAF_LIFETIME)
    return make_cert(
        common_name, issuer=None, ca=False, hostnames=(common_name, *hostnames), **options
    )


@dataclass(frozen=True)
class Chain:
    """A root, its intermediates (closest to the root first) and a leaf."""

    root: Issued
    intermediates: tuple[Issued, ...]
    leaf: Issued

    @property
    def issuer(self) -> Issued:
        return self.intermediates[-1] if self.intermediates else self.root

    def server_chain_pem(self, *, with_intermediates: bool = True) -> bytes:
        """What a server sends: its leaf, then the intermediates (unless it forgets them)."""
        parts = [self.leaf.pem]
        if with_intermediates:
            parts.extend(item.pem for item in reversed(self.intermediates))
        return b"".join(parts)

    def write_server_files(
        self, directory: Path, *, with_intermediates: bool = True
    ) -> tuple[Path, Path]:
        """(certfile, keyfile) for ``ssl.SSLContext.load_cert_chain``."""
        certfile = directory / "server-chain.pem"
        keyfile = directory / "server-key.pem"
        certfile.write_bytes(self.server_chain_pem(with_intermediates=with_intermediates))
        keyfile.write_bytes(self.leaf.key_pem)
        return certfile, keyfile


def make_chain(
    *hostnames: str,
    intermediates: int = 1,
    leaf_options: dict[str, Any] | None = None,
    prefix: str = "smtp-ca Test",
) -> Chain:
    """A root, ``intermediates`` CAs under it, and a leaf for ``hostnames`` (default localhost)."""
    root = make_root(f"{prefix} Root CA")
    issuers: list[Issued] = []
    issuer = root
    for number in range(1, intermediates + 1):
        issuer = make_intermediate(issuer, f"{prefix} Intermediate CA {number}")
        issuers.append(issuer)
    names = hostnames or ("localhost", "127.0.0.1")
    leaf = make_leaf(issuer, names[0], *names[1:], **(leaf_options or {}))
    return Chain(root, tuple(issuers), leaf)


def pem_bundle(*items: Issued | bytes, separator: bytes = b"") -> bytes:
    """The PEM of each item (certificates or raw bytes), one after another."""
    return separator.join(item if isinstance(item, bytes) else item.pem for item in items)


def write_pem(path: Path, *items: Issued | bytes) -> Path:
    path.write_bytes(pem_bundle(*items))
    return path


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(*, cert_sign: bool, rsa_key: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def duplicate_extension_der() -> bytes:
    """A certificate whose basicConstraints appears twice: cryptography raises
    DuplicateExtension for it, which is not a ValueError."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Twice")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # 2.5.29.99 encodes to as many bytes as basicConstraints' 2.5.29.19: swapped below.
        .add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("2.5.29.99"), b"\x30\x03\x01\x01\xff"),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER).replace(
        b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x13"
    )
