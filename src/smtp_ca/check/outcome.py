"""What a check says: ``CheckOutcome``, and how its lines name the server (``where_of``).

Both the check's flow (``flow``) and its failure diagnosis (``diagnosis``) build outcomes, so
the type lives apart from either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from smtp_ca.check.smtp_session import CheckTarget

if TYPE_CHECKING:
    from smtp_ca.check.answers import Status
    from smtp_ca.check.revocation import Finding
    from smtp_ca.output import Log

# A short stable name for what the check found, that the tests and the report key on.
Cause = Literal[
    "verified",
    "missing-intermediate",  # verified once the build adds the intermediate AIA fetched
    "unknown-issuer",
    "expired",
    "not-yet-valid",
    "hostname-mismatch",
    "self-signed",
    "revoked",
    "verify-failed",  # any other certificate error OpenSSL names
    "no-starttls",
    "old-tls",
    "oversized",  # a handshake message (the certificate chain) past OpenSSL's limit
    "tls",
    "smtp",
    "refused",
    "dns",
    "timeout",
    "network",
    "bundle",  # the CA file itself cannot be loaded
]
CAUSES: tuple[Cause, ...] = get_args(Cause)
# The causes of a check that passed: the app's client verifies the server with the bundle the
# build writes.
VERIFIED_CAUSES: tuple[Cause, ...] = ("verified", "missing-intermediate")


@dataclass(frozen=True, kw_only=True)
class CheckOutcome:
    """What the check found: ``cause`` names it, ``summary`` says it in one line."""

    cause: Cause
    summary: str
    details: tuple[str, ...] = ()
    hint: str | None = None
    tls_version: str | None = None
    chain: tuple[str, ...] = field(default=())  # the chain the server presented, one line each
    notices: tuple[str, ...] = ()  # worth a warning even when verified
    extra_certificates: tuple[bytes, ...] = ()  # PEM the written bundle must add to verify
    anchor: str | None = None  # the bundle certificate that anchored the chain
    # What the CRL and OCSP responder said about the server's certificate; None: not asked
    # (the chain did not verify, or the certificate is trusted as itself).
    revocation: Status | None = None
    # What they said about each certificate of the verified chain but its anchor, leaf first.
    revocations: tuple[Finding, ...] = ()

    @property
    def verified(self) -> bool:
        return self.cause in VERIFIED_CAUSES


def report_verified(outcome: CheckOutcome, log: Log) -> bool:
    """How the build and ``bin/check`` both begin their report: the notices as warnings, then,
    when the check verified, its summary and details. Whether it verified; a failure is theirs
    to report (the build's check mode decides what it means)."""
    for notice in outcome.notices:
        log.warn(notice)
    if not outcome.verified:
        return False
    log.info(outcome.summary)
    for line in outcome.details:
        log.info(line)
    return True


def where_of(target: CheckTarget, found_in: str | None = None) -> str:
    """The server as every summary starts: ``host:port (STARTTLS)``, IPv6 in brackets; with
    ``found_in``, as the build's step names a server it found outside Mastodon's variables:
    ``host:port (STARTTLS, from MAILGUN_SMTP_SERVER)``."""
    mode = "TLS" if target.implicit_tls else "STARTTLS"
    host = f"[{target.host}]" if ":" in target.host else target.host
    source = f", from {found_in}" if found_in else ""
    return f"{host}:{target.port} ({mode}{source})"
