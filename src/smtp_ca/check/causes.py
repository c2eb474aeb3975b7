"""One cause of a refused chain each, explained: a self-signed certificate, a certificate out of
its dates, names that do not cover SMTP_SERVER; and OpenSSL's verdict alone, when nothing more
is known. ``diagnosis`` picks the cause and adds what else is wrong."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import fingerprint_sha256, readable_name
from smtp_ca.check.chain import (
    day,
    describe,
    host_names,
    is_ip_address,
    presented_path,
    short_sha256,
)
from smtp_ca.check.hints import SET_CA_CERTS
from smtp_ca.check.outcome import CheckOutcome, where_of
from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    from cryptography import x509

    from smtp_ca.check.context import Context
    from smtp_ca.check.smtp_session import CheckTarget

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code reports them.
UNKNOWN_ISSUER_CODES = {2, 20, 21}
EXPIRED = 10
NOT_YET_VALID = 9
SELF_SIGNED = 18
SELF_SIGNED_IN_CHAIN = 19  # the server sent a root the bundle does not hold: an unknown issuer
REVOKED = 23
NAME_MISMATCH_CODES = {62, 64}


def self_signed(
    context: Context, error: ssl.SSLCertVerificationError, presented: list[x509.Certificate]
) -> CheckOutcome:
    leaf = presented[0]
    return CheckOutcome(
        cause="self-signed",
        summary=(
            f"{context.where}: the server presents a self-signed certificate, "
            f"{readable_name(leaf.subject)} ({openssl_message(error)})."
        ),
        details=(
            f"It signed itself: {describe(leaf)}; SHA-256 "
            f"{short_sha256(fingerprint_sha256(leaf))}. No CA vouches for it.",
        ),
        hint="Put that server's own certificate (or its CA's) in SMTP_CA_CERTS "
        f"({SET_CA_CERTS}). Better: ask the provider for a certificate from a public CA.",
    )


def bad_dates(
    context: Context,
    error: ssl.SSLCertVerificationError,
    presented: list[x509.Certificate],
    *,
    expired: bool,
) -> CheckOutcome:
    path = presented_path(presented)
    anchor = context.bundle.anchor_for(path[-1])
    candidates: list[tuple[x509.Certificate, str]] = [
        (cert, "the server's certificate" if number == 0 else "the intermediate")
        for number, cert in enumerate(path)
    ]
    if anchor is not None and anchor.cert is not None:
        candidates.append((anchor.cert, "the bundle's anchor"))

    def out_of_date(cert: x509.Certificate) -> bool:
        if expired:
            return cert.not_valid_after_utc < context.now
        return cert.not_valid_before_utc > context.now

    found = [(cert, role) for cert, role in candidates if out_of_date(cert)]
    cert, role = found[0] if found else (path[0], "the server's certificate")
    name = readable_name(cert.subject)
    if expired:
        summary = (
            f"{context.where}: {role}, {name}, expired on {day(cert.not_valid_after_utc)} "
            f"({openssl_message(error)})."
        )
        hint = (
            "Only the mail provider can fix this: ask them to renew the certificate. Do not "
            "switch SMTP_OPENSSL_VERIFY_MODE to none."
        )
        if role == "the bundle's anchor":
            hint = (
                f"{name} in the bundle has expired: point SMTP_CA_BUNDLE_URL at the "
                "provider's current CA bundle and update SMTP_CA_BUNDLE_SHA256."
            )
        return CheckOutcome(
            cause="expired",
            summary=summary,
            details=(
                f"It was valid from {day(cert.not_valid_before_utc)} to "
                f"{day(cert.not_valid_after_utc)}; it is now {day(context.now)}.",
            ),
            hint=hint,
        )
    return CheckOutcome(
        cause="not-yet-valid",
        summary=(
            f"{context.where}: {role}, {name}, is not valid until "
            f"{day(cert.not_valid_before_utc)} ({openssl_message(error)})."
        ),
        details=(f"The build machine's clock says it is {day(context.now)}.",),
        hint="Check the clock of the build machine, or ask the provider: the certificate was "
        "installed before its start date.",
    )


def name_mismatch(
    context: Context, error: ssl.SSLCertVerificationError, presented: list[x509.Certificate]
) -> CheckOutcome:
    names = host_names(presented[0])
    host, naming = context.target.host, context.target.naming
    details = [f"The certificate holds: {shown(', '.join(names)) if names else 'no names at all'}."]
    if is_ip_address(host):
        details.append(
            f"{naming.server} is an IP address: the mail gem checks it against the IP "
            "addresses the certificate holds, not against its host names."
        )
    suggestion = next((name for name in names if not name.startswith("*")), None)
    hint = f"{naming.use_server} a name the certificate holds (the host name the provider "
    hint += "documents), not an alias or an IP address"
    hint += f": {naming.command_using(suggestion)}" if suggestion else "."
    return CheckOutcome(
        cause="hostname-mismatch",
        summary=(
            f"{context.where}: the certificate's names do not cover {naming.server_set_to(host)} "
            f"({openssl_message(error)})."
        ),
        details=tuple(details),
        hint=hint,
    )


def generic_verify_failure(
    target: CheckTarget, error: ssl.SSLCertVerificationError
) -> CheckOutcome:
    """OpenSSL's verdict alone, named as well as it names itself: when nothing more is known."""
    code = error.verify_code
    message = openssl_message(error)
    where = where_of(target)
    if code in UNKNOWN_ISSUER_CODES or code == SELF_SIGNED_IN_CHAIN:
        return CheckOutcome(
            cause="unknown-issuer",
            summary=(
                f"{where}: certificate verify failed: no certificate in the bundle anchors the "
                f"server's chain ({message})."
            ),
            hint="Point SMTP_CA_BUNDLE_URL at your provider's CA bundle (and set "
            "SMTP_CA_BUNDLE_SHA256), or keep SMTP_CA_PUBLIC_ROOTS=true if you turned it off.",
        )
    if code == EXPIRED:
        return CheckOutcome(
            cause="expired",
            summary=f"{where}: a certificate in the server's chain has expired ({message}).",
            hint="Only the mail provider can fix this: ask them to renew the certificate. "
            "Do not switch SMTP_OPENSSL_VERIFY_MODE to none.",
        )
    if code == NOT_YET_VALID:
        return CheckOutcome(
            cause="not-yet-valid",
            summary=f"{where}: the server's certificate is not valid yet ({message}).",
            hint="Check the clock of the build machine, or ask the provider.",
        )
    if code == SELF_SIGNED:
        return CheckOutcome(
            cause="self-signed",
            summary=f"{where}: the server presents a self-signed certificate ({message}).",
            hint=f"Put that server's own CA certificate in SMTP_CA_CERTS ({SET_CA_CERTS}).",
        )
    if code == REVOKED:
        return CheckOutcome(
            cause="revoked",
            summary=f"{where}: the server's certificate has been revoked ({message}).",
            hint="Only the mail provider can fix this: ask them to replace the certificate.",
        )
    if code in NAME_MISMATCH_CODES:
        return CheckOutcome(
            cause="hostname-mismatch",
            summary=(
                f"{where}: the certificate's names do not cover "
                f"{target.naming.server_set_to(target.host)} ({message})."
            ),
            hint=f"{target.naming.use_server} the host name the provider documents, not an alias.",
        )
    return CheckOutcome(
        cause="verify-failed",
        summary=f"{where}: certificate verify failed ({message}, OpenSSL code {code}).",
        hint="Run bin/check HOST:PORT from this buildpack for the full chain, and ask the "
        "provider about this error.",
    )


def openssl_message(error: ssl.SSLCertVerificationError) -> str:
    """OpenSSL's words, to quote in parentheses: "Hostname mismatch, ... for 'x'." ends in a
    period of its own."""
    return str(error.verify_message or "").rstrip(".")
