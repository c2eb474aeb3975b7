"""The CRLs the check keeps in the buildpack's cache, and what each said, until their nextUpdate.

For each distribution point URL, ``<cache>/crl/<sha256 of the URL>.crl`` is the CRL as it was
fetched (streamed there as it arrived, renamed into place once it was judged one that counts),
and ``.json`` beside it is the record of what it said about the certificates it was read for:
the verdict for each (by the certificate's SHA-256), the issuer whose key verified it (by its
SHA-256), its thisUpdate and nextUpdate, and the CRL file's size, modification time and SHA-256.

A warm build reads the record, not the CRL: a partitioned CRL of 10 MB costs some 30 ms to
parse, verify and search on every build, the record a fraction of a millisecond. The record
answers only for the same certificate and issuer, while the CRL file beside it is the one it
was made from (same size and modification time: a CRL rewritten since, damaged or not, sends
the check back to the CRL itself, judged in full, and to the network if it no longer counts),
and only until the CRL's nextUpdate. A record that does not read back whole is ignored and made
again. Like the rest of the buildpack's cache (the dependencies it runs among them), the record
is trusted against accidents, not against whoever can write the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from smtp_ca.cache import layout
from smtp_ca.files import write_atomically

_FORMAT = 1
# Verdicts kept per CRL: a server's certificate and the one that replaced it, with room to spare.
_MAX_VERDICTS = 16


@dataclass(frozen=True)
class Verdict:
    """What a CRL that counts said about one certificate."""

    status: str  # "good", "revoked", or "unchecked" (a partition for some reasons only)
    this_update: str  # ISO 8601, UTC
    next_update: str
    revoked_on: str | None = None  # YYYY-MM-DD
    reason: str | None = None  # keyCompromise, ...
    why: str | None = None  # for "unchecked": what the CRL covers

    @property
    def next_update_at(self) -> datetime:
        return datetime.fromisoformat(self.next_update)

    @property
    def this_update_at(self) -> datetime:
        return datetime.fromisoformat(self.this_update)


class KeptCrl:
    """One distribution point's CRL in ``cache_dir``, and its record."""

    def __init__(self, cache_dir: Path, url: str) -> None:
        name = hashlib.sha256(url.encode()).hexdigest()
        self.path = cache_dir / layout.CRL / f"{name}.crl"
        self.record_path = self.path.with_suffix(".json")

    def recorded(self, cert_sha256: str, issuer_sha256: str) -> Verdict | None:
        """The recorded verdict for this certificate and issuer, when the record is whole and
        the CRL beside it is the one it was made from. Its dates are the caller's to judge."""
        try:
            record = json.loads(self.record_path.read_bytes())
            stat = self.path.stat()
            if not isinstance(record, dict) or record.get("check") != _check(record):
                return None
            crl = record["crl"]
            if (
                record.get("format") != _FORMAT
                or record.get("issuer") != issuer_sha256
                or crl["size"] != stat.st_size
                or crl["mtime_ns"] != stat.st_mtime_ns
            ):
                return None
            found = record["verdicts"].get(cert_sha256)
            return Verdict(**found) if isinstance(found, dict) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def read(self, limit: int) -> bytes | None:
        """The kept CRL, unless there is none or it is larger than ``limit``."""
        try:
            with self.path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError:
            return None
        return data if len(data) <= limit else None

    def temporary(self) -> Path | None:
        """A new empty file beside the kept CRL, named as ``files.write_atomically`` names its
        temporaries (so the cache sweep removes one a killed build left); None when the cache
        cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError:
            return None
        os.close(descriptor)
        return Path(name)

    def keep(self, temporary: Path) -> bool:
        """Renames a judged download into place; False when the cache cannot be written."""
        try:
            temporary.replace(self.path)
        except OSError:
            return False
        return True

    def remember(self, data: bytes, cert_sha256: str, issuer_sha256: str, verdict: Verdict) -> None:
        """Records ``verdict`` for the kept CRL, whose bytes are ``data``, with the verdicts
        already recorded for the same CRL. A cache that can't be written costs time, no more."""
        digest = hashlib.sha256(data).hexdigest()
        verdicts: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            old = json.loads(self.record_path.read_bytes())
            if old.get("check") == _check(old) and old["crl"]["sha256"] == digest:
                verdicts = dict(old["verdicts"])
        verdicts.pop(cert_sha256, None)
        verdicts[cert_sha256] = asdict(verdict)
        with contextlib.suppress(OSError):
            stat = self.path.stat()
            record: dict[str, object] = {
                "format": _FORMAT,
                "crl": {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
                "issuer": issuer_sha256,
                "verdicts": dict(list(verdicts.items())[-_MAX_VERDICTS:]),
            }
            record["check"] = _check(record)
            write_atomically(self.record_path, json.dumps(record, sort_keys=True).encode())

    def forget(self) -> None:
        for path in (self.record_path, self.path):
            with contextlib.suppress(OSError):
                path.unlink()


def _check(record: dict[str, object]) -> str:
    """The SHA-256 of the record without its own check: a record that does not read back as
    written is not used."""
    rest = {key: value for key, value in record.items() if key != "check"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()
