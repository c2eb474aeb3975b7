"""What a check says: ``CheckOutcome``, and how its lines name the server (``where_of``).

Both the check's flow (``check``) and its failure diagnosis (``diagnosis``) build outcomes, so
the type lives apart from either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smtp_ca.check.smtp_session import CheckTarget


@dataclass(frozen=True)
class CheckOutcome:
    """What the check found. ``cause`` is a short stable name the tests and report key on:
    verified, missing-intermediate (verified once the build adds the fetched intermediate),
    unknown-issuer, expired, not-yet-valid, hostname-mismatch, self-signed, revoked,
    verify-failed, no-starttls, old-tls, tls, smtp, refused, dns, timeout, network, and bundle
    (the CA file itself cannot be loaded)."""

    verified: bool
    cause: str
    summary: str
    details: tuple[str, ...] = ()
    hint: str | None = None
    tls_version: str | None = None
    chain: tuple[str, ...] = field(default=())  # the chain the server presented, one line each
    notices: tuple[str, ...] = ()  # worth a warning even when verified
    extra_certificates: tuple[bytes, ...] = ()  # PEM the written bundle must add to verify
    anchor: str | None = None  # the bundle certificate that anchored the chain
    revocation: str | None = None  # good, revoked, unknown or unchecked; None: not asked


def where_of(target: CheckTarget) -> str:
    """The server as every summary starts: ``host:port (STARTTLS)``, IPv6 in brackets."""
    mode = "TLS" if target.implicit_tls else "STARTTLS"
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port} ({mode})"
