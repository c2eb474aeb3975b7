"""Revocation of every certificate of the chain that verified: its CRL and its OCSP responder.

For the server's certificate and each intermediate above it, the issuer is the next
certificate up the chain OpenSSL verified; the anchor itself is trusted by being in the bundle
and is not asked about. Each certificate's CRL (``crl``) is read, then its OCSP responder
(``ocsp``) is asked, both within the check's one deadline, and the report says what each
said: revoked from either source means revoked, whatever the other says; "not revoked" needs
a source that counts, and names it; anything else leaves the question open, with each
source's reason.

The report gives one line per certificate: ``Revocation: …`` for the server's certificate,
``Revocation of the intermediate <name>: …`` for each intermediate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import readable_name
from smtp_ca.check import crl, ocsp
from smtp_ca.check.answers import Answer, Status
from smtp_ca.net.deadline import Deadline

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Finding:
    """What the build found about one certificate of the chain."""

    name: str  # the certificate's readable name
    is_leaf: bool
    status: Status
    line: str  # the report's line: "Revocation: not revoked, says the CRL at …."


def check_chain(
    verified: Sequence[x509.Certificate],
    deadline: Deadline,
    now: datetime,
    cache_dir: Path | None = None,
) -> tuple[Finding, ...]:
    """One finding per certificate of ``verified`` (leaf first, anchor last) but the anchor."""
    findings = []
    for position, cert in enumerate(verified[:-1]):
        issuer = verified[position + 1]
        answers = [
            crl.ask(cert, issuer, deadline, now, cache_dir),
            ocsp.ask(cert, issuer, deadline, now, cache_dir),
        ]
        findings.append(_finding(cert, answers, is_leaf=position == 0))
    return tuple(findings)


def _finding(cert: x509.Certificate, answers: Sequence[Answer], *, is_leaf: bool) -> Finding:
    name = readable_name(cert.subject)
    prefix = "Revocation: " if is_leaf else f"Revocation of the intermediate {name}: "
    status = _weigh([answer.status for answer in answers])
    # Revoked first, then not revoked, then what left the question open.
    order: dict[Status, int] = {"revoked": 0, "good": 1, "unknown": 2, "unchecked": 2}
    phrases = [
        answer.phrase
        for answer in sorted(answers, key=lambda answer: order[answer.status])
        if answer.phrase is not None
    ]
    if not phrases:
        subject = "the certificate" if is_leaf else "it"
        text = f"not checked, {subject} names no CRL distribution point and no OCSP responder"
    elif status in ("revoked", "good"):
        text = "; ".join(phrases)
    else:
        text = "not checked, " + "; ".join(phrases)
    return Finding(name, is_leaf, status, f"{prefix}{text}.")


def _weigh(statuses: Sequence[Status]) -> Status:
    """Revoked from either source is revoked; then a "not revoked" that counts; then an OCSP
    responder that does not know the certificate; else the question is open."""
    for status in ("revoked", "good", "unknown"):
        if status in statuses:
            return status
    return "unchecked"
