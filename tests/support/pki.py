"""Certificates that point somewhere: AIA caIssuers and OCSP URLs, on top of ``support.certs``.

``support.certs.make_cert`` covers dates, names and CA flags; real servers' certificates also
say where their issuer can be fetched (caIssuers) and whom to ask about revocation (OCSP).
``issue`` adds those, and the server-side TLS context presenting any chain::

    root = make_root("Root")
    intermediate = issue("Issuing CA", root, ca=True)
    leaf = issue("localhost", intermediate, hostnames=("localhost",),
                 ca_issuers="http://127.0.0.1:8080/issuer.der", ocsp="http://127.0.0.1:8081/")
    context = server_context(leaf)           # a server that forgets its intermediate
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from support.certs import LEAF_LIFETIME, Issued, PrivateKey, _general_name, new_key, utcnow


def issue(
    common_name: str,
    issuer: Issued | None,
    *,
    ca: bool = False,
    hostnames: Iterable[str] = (),
    ca_issuers: str | None = None,
    ocsp: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    extended_usages: Iterable[x509.ObjectIdentifier] | None = None,
    key: PrivateKey | None = None,
) -> Issued:
    """A certificate signed by ``issuer`` (self-signed when None), with optional AIA URLs.

    Leaves get serverAuth unless ``extended_usages`` says otherwise (an OCSP responder's
    certificate passes ``[ExtendedKeyUsageOID.OCSP_SIGNING]``, or ``[]`` for none at all).
    """
    now = utcnow()
    key = key or new_key()
    not_before = not_before or now - dt.timedelta(hours=1)
    not_after = not_after or now + (dt.timedelta(days=3650) if ca else LEAF_LIFETIME)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smtp-ca tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
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
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    names = [_general_name(name) for name in hostnames]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usages = (
        list(extended_usages)
        if extended_usages is not None
        else ([] if ca else [ExtendedKeyUsageOID.SERVER_AUTH])
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    access = []
    if ca_issuers:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(ca_issuers)
            )
        )
    if ocsp:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp)
            )
        )
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def server_context(
    leaf: Issued,
    *chain: Issued,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A server-side context presenting ``leaf`` then ``chain``, exactly those."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as scratch:
        certfile = Path(scratch) / "chain.pem"
        keyfile = Path(scratch) / "key.pem"
        certfile.write_bytes(leaf.pem + b"".join(item.pem for item in chain))
        keyfile.write_bytes(leaf.key_pem)
        context.load_cert_chain(certfile=str(certfile), keyfile=str(keyfile))
    if maximum_version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1, on purpose
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = maximum_version
        # OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level, on both sides.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def as_der(cert: Issued) -> bytes:
    return cert.der


def as_pkcs7(*certs: Issued, pem: bool = False) -> bytes:
    """A "certs-only" PKCS#7 bundle, the other format RFC 5280 allows for caIssuers."""
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    return pkcs7.serialize_certificates([cert.cert for cert in certs], encoding)


def bundle_with_origins(*entries: tuple[Issued, str]) -> bytes:
    """A bundle whose certificates carry the "# From:" lines the build writes."""
    return b"".join(
        f"\n# {item.common_name}\n# From: {origin}\n".encode() + item.pem
        for item, origin in entries
    )
