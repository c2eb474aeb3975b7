"""What one source of revocation (a CRL, an OCSP responder) said about one certificate.

``crl`` and ``ocsp`` each give an ``Answer``; ``revocation`` weighs the answers for every
certificate of the verified chain and words the report. The type lives apart from all three
so that none imports another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# good: a trusted source says not revoked; revoked: a trusted source says revoked; unknown: an
# OCSP responder that does not know the certificate; unchecked: the question stays open.
Status = Literal["good", "revoked", "unknown", "unchecked"]


@dataclass(frozen=True)
class Answer:
    """``phrase`` is how the report says it, without a capital or a full stop, so answers can
    be joined: "not revoked, says the CRL at http://… (issued …)". ``phrase`` is None when the
    certificate names no such source at all: there was nobody to ask."""

    status: Status
    phrase: str | None
