"""Fetching an issuer the server forgot to send, from the AIA caIssuers URL of its certificate.

Browsers do this silently; Ruby's OpenSSL client does not, so a server that sends only its
leaf works in a browser and fails in the app. The build fetches the missing issuer, checks that
it is a CA certificate that signed the server's certificate and that chains to the bundle, and
then adds it to the written bundle, where the app's client finds it.

caIssuers URLs are usually plain http://: the fetched certificate is trusted for its signature
and for chaining to the bundle, never for how it travelled.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import fingerprint_sha256, readable_name, to_pem
from smtp_ca.cache import layout
from smtp_ca.check.chain import Store, Trusted, access_urls, may_sign_certificates, signed_by
from smtp_ca.files import write_atomically
from smtp_ca.net.deadline import Deadline
from smtp_ca.net.http import FetchError, display_url, fetch, is_fetchable
from smtp_ca.untrusted import escaped

if TYPE_CHECKING:
    from cryptography import x509

# A certificate is 1 to 2 KiB; a PKCS#7 bundle of a few, a few KiB.
MAX_ISSUER_BYTES = 256 * 1024
# Missing certificates fetched one after another before giving up (a leaf, its intermediate,
# a cross-sign: two is already rare).
MAX_FETCHES = 3
# caIssuers URLs tried per certificate; one is the norm.
MAX_URLS = 2


@dataclass(frozen=True)
class Fetched:
    cert: x509.Certificate
    url: str  # printable, without user info or query: safe for the log and the bundle


@dataclass(frozen=True)
class Completion:
    """What fetching missing issuers gave: the certificates, and the bundle's anchor for them."""

    fetched: tuple[Fetched, ...]
    anchor: Trusted | None  # None: the fetched certificates do not reach the bundle
    notes: tuple[str, ...]  # what went wrong on the way, when it did

    @property
    def complete(self) -> bool:
        return self.anchor is not None and bool(self.fetched)


def ca_issuers_urls(cert: x509.Certificate) -> list[str]:
    from cryptography.x509.oid import AuthorityInformationAccessOID

    return access_urls(cert, AuthorityInformationAccessOID.CA_ISSUERS)


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """DER, PEM or PKCS#7 (DER or PEM): RFC 5280 allows DER and "certs-only" PKCS#7; PEM is
    what some CAs serve anyway. ``ValueError`` when it is none of them."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.utils import CryptographyDeprecationWarning

    stripped = data.strip()
    with warnings.catch_warnings():
        # A serial number of 0 (old CAs) is a warning on stderr, not a reason to refuse.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if b"-----BEGIN PKCS7-----" in stripped:
            return pkcs7.load_pem_pkcs7_certificates(stripped)
        if b"-----BEGIN " in stripped:
            return x509.load_pem_x509_certificates(stripped)
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            return pkcs7.load_der_pkcs7_certificates(data)


def complete_chain(
    top: x509.Certificate, bundle: Store, deadline: Deadline, cache_dir: Path | None = None
) -> Completion:
    """Fetches the issuer of ``top`` (the last certificate the server's chain reaches), and
    that one's issuer, until a fetched certificate chains to ``bundle``.

    What a caIssuers URL served is kept in ``cache_dir``, so a warm build fetches nothing: a
    kept answer is checked exactly like a fresh one (it must have signed the certificate),
    and one that no longer fits (the provider changed CA) is fetched again.
    """
    fetched: list[Fetched] = []
    notes: list[str] = []
    current = top
    for _ in range(MAX_FETCHES):
        urls = [url for url in ca_issuers_urls(current) if is_fetchable(url)]
        if not urls:
            notes.append(
                f"{readable_name(current.subject)} names no http:// caIssuers URL (AIA) to "
                "fetch its issuer from."
            )
            return Completion(tuple(fetched), None, tuple(notes))
        found = None
        for url in urls[:MAX_URLS]:
            found = _fetch_issuer(current, url, deadline, notes, cache_dir)
            if found is not None:
                break
        if found is None:
            return Completion(tuple(fetched), None, tuple(notes))
        if bundle.find(found.cert) is None:
            fetched.append(found)
        anchor = bundle.anchor_for(found.cert)
        if anchor is not None:
            return Completion(tuple(fetched), anchor, tuple(notes))
        current = found.cert
    notes.append(
        f"{len(fetched)} certificates fetched through AIA still do not reach a certificate of "
        "the bundle."
    )
    return Completion(tuple(fetched), None, tuple(notes))


def _fetch_issuer(
    child: x509.Certificate,
    url: str,
    deadline: Deadline,
    notes: list[str],
    cache_dir: Path | None,
) -> Fetched | None:
    # The URL is the certificate's words: printable, or a newline in it could write lines of
    # its own into the bundle's comments (and so a certificate of its own into the bundle).
    shown = escaped(display_url(url))
    kept = (
        cache_dir / layout.AIA / f"{hashlib.sha256(url.encode()).hexdigest()}.bin"
        if cache_dir
        else None
    )
    if kept is not None and kept.is_file():
        found = _issuer_in(child, kept.read_bytes(), shown, [])
        if found is not None:
            return found
        kept.unlink(missing_ok=True)
    try:
        data = fetch(
            url,
            deadline,
            max_bytes=MAX_ISSUER_BYTES,
            accept="application/pkix-cert, application/pkcs7-mime, */*",
        )
    except FetchError as error:
        notes.append(f"Could not fetch the issuer from {shown}: {error.reason}.")
        return None
    found = _issuer_in(child, data, shown, notes)
    if found is not None and kept is not None:
        with contextlib.suppress(OSError):  # a cache that can't be written costs a fetch
            write_atomically(kept, data)
    return found


def _issuer_in(
    child: x509.Certificate, data: bytes, shown: str, notes: list[str]
) -> Fetched | None:
    """The CA certificate in ``data`` that signed ``child``, or None with a note saying why."""
    try:
        candidates = parse_certificates(data)
    except ValueError:
        notes.append(f"{shown} does not hold a certificate (DER, PEM or PKCS#7).")
        return None
    child_name = readable_name(child.subject)
    for cert in candidates:
        if not signed_by(child, cert):
            continue
        if not may_sign_certificates(cert):
            notes.append(
                f"{shown} holds {readable_name(cert.subject)}, which signed {child_name} but is "
                "not a CA certificate."
            )
            return None
        return Fetched(cert, shown)
    names = ", ".join(readable_name(cert.subject) for cert in candidates) or "nothing"
    notes.append(f"{shown} holds {names}, which did not sign {child_name}.")
    return None


def render_fetched(fetched: Sequence[Fetched], where: str) -> bytes:
    """The fetched certificates as PEM with the comment lines the bundle uses for the others."""
    out: list[str] = []
    for item in fetched:
        cert = item.cert
        out.append(
            f"\n# {_comment(readable_name(cert.subject))}\n"
            f"# Subject: {_comment(cert.subject.rfc4514_string())}\n"
            f"# Issuer: {_comment(cert.issuer.rfc4514_string())}\n"
            f"# Valid: {cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d}\n"
            f"# SHA-256: {fingerprint_sha256(cert)}\n"
            f"# From: {_comment(item.url)} (AIA caIssuers of the certificate "
            f"{_comment(where)} presents; it does not send it)\n" + to_pem(cert).decode("ascii")
        )
    return "".join(out).encode("utf-8")


def _comment(text: str) -> str:
    """Text from a certificate, fit for a comment line of the bundle: one printable line with
    no run of five dashes, so that no PEM reader (some find BEGIN lines mid-line) can take a
    URL or a name for a certificate of its own."""
    return re.sub("-{5,}", "----", escaped(text))
