"""What the diagnosis of a refused chain works with: the stores it compares the bundle with
(``TrustStores``) and the check that was refused (``Context``). Its own module so that
``diagnosis`` and the ``causes`` it explains both import it, and neither imports the other
back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from smtp_ca import SYSTEM_STORE
from smtp_ca.check.chain import Store
from smtp_ca.check.outcome import where_of
from smtp_ca.check.smtp_session import CheckTarget


@dataclass(frozen=True)
class TrustStores:
    """The stores a failed check compares the bundle with. They are never trusted by the check
    itself; they only let the report say which setting would fix an unknown issuer, and
    whether a chain is anchored outside Mozilla's list."""

    public_roots: Path | None = None  # None: certifi's cacert.pem, when certifi is installed
    system: Path | None = SYSTEM_STORE
    # The SHA-256 of the bundle's certificates that Mozilla's list does not hold, when the
    # build that made the bundle knows them (it compared them with certifi); None: the check
    # compares the anchor with ``public_roots`` itself.
    outside_mozilla: frozenset[str] | None = None


@dataclass(frozen=True)
class Context:
    """What the diagnosis of a refused chain needs to know about the check that was refused."""

    target: CheckTarget
    bundle: Store  # the bundle the check trusted
    stores: TrustStores
    now: datetime

    @property
    def where(self) -> str:
        return where_of(self.target)
