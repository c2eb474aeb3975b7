"""Certificates that point somewhere: AIA caIssuers, OCSP and CRL URLs, on top of
``support.certs``.

``support.certs.make_cert`` covers dates, names and CA flags; real servers' certificates also
say where their issuer can be fetched (caIssuers) and where to learn about revocation (OCSP,
a CRL Distribution Point). ``issue`` adds those, and the server-side TLS context presenting
any chain::

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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from support.certs import DEFAULT_LIFETIME, LEAF_LIFETIME, Issued, PrivateKey, make_cert


def issue(
    common_name: str,
    issuer: Issued | None,
    *,
    ca: bool = False,
    hostnames: Iterable[str] = (),
    ca_issuers: str | None = None,
    ocsp: str | None = None,
    crl: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    extended_usages: Iterable[x509.ObjectIdentifier] | None = None,
    key: PrivateKey | None = None,
) -> Issued:
    """A certificate signed by ``issuer`` (self-signed when None), with optional AIA URLs and
    a CRL Distribution Point (``crl``).

    Leaves get serverAuth unless ``extended_usages`` says otherwise (an OCSP responder's
    certificate passes ``[ExtendedKeyUsageOID.OCSP_SIGNING]``, or ``[]`` for none at all).
    """
    return make_cert(
        common_name,
        issuer=issuer,
        ca=ca,
        hostnames=hostnames,
        ca_issuers=ca_issuers,
        ocsp=ocsp,
        crl=crl,
        not_before=not_before,
        not_after=not_after,
        lifetime=DEFAULT_LIFETIME if ca else LEAF_LIFETIME,
        extended_usages=extended_usages,
        key=key,
    )


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
