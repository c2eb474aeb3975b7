"""What the bundle stage keeps between builds: its last download and its last output.

The records (``CachedSource``, ``Merged``) and how each is written to and read back from a
``bundle.cache`` entry; which entry a build may use, and when, is the pipeline's call
(``bundle``). A record that does not read back as written is discarded, never half-trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from smtp_ca.bundle.cache import (
    CacheEntry,
    CorruptCache,
    meta_count,
    meta_object,
    meta_objects,
    meta_optional_text,
    meta_text,
    meta_text_list,
)
from smtp_ca.bundle.certificates import CertificateError, CertificateSummary, split_pem
from smtp_ca.output import Log

# Bump when the output or the cache layout changes: old cache entries then stop matching.
FORMAT_VERSION = 4


@dataclass(frozen=True)
class LeftOut:
    """A certificate of the source that is not in the output, and why."""

    certificate: CertificateSummary
    reason: str


@dataclass(frozen=True)
class Part:
    """What one input of the bundle (SMTP_CA_BUNDLE_URL, SMTP_CA_CERTS) put in it."""

    kept: tuple[CertificateSummary, ...]
    left_out: tuple[LeftOut, ...]
    certificate_count: int  # certificate blocks in the input, left out ones included
    notices: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "kept": [s.to_json() for s in self.kept],
            "left_out": [
                {"certificate": item.certificate.to_json(), "reason": item.reason}
                for item in self.left_out
            ],
            "certificate_count": self.certificate_count,
            "notices": list(self.notices),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Part:
        """The inverse of ``to_json``; ``ValueError`` on anything malformed."""
        return cls(
            kept=tuple(CertificateSummary.from_json(s) for s in meta_objects(data, "kept")),
            left_out=tuple(
                LeftOut(
                    CertificateSummary.from_json(meta_object(item, "certificate")),
                    meta_text(item, "reason"),
                )
                for item in meta_objects(data, "left_out")
            ),
            certificate_count=meta_count(data, "certificate_count"),
            notices=tuple(meta_text_list(data, "notices")),
            warnings=tuple(meta_text_list(data, "warnings")),
        )


@dataclass(frozen=True)
class Merged:
    """The bundle stage's output, with what its report needs, so a warm build redoes neither."""

    pem: bytes
    source: Part | None  # SMTP_CA_BUNDLE_URL's certificates; None when nothing was read
    added: Part | None  # SMTP_CA_CERTS's certificates; None when it is not set
    public_root_count: int
    public_duplicates: int  # certifi roots that the bundle already had
    certifi_version: str | None
    # The first not-after of any certificate written: past it, the output must be made again.
    expires: datetime
    notices: tuple[str, ...]
    # The SHA-256 of each certificate of the source and SMTP_CA_CERTS that Mozilla's list
    # (certifi) does not hold, by name and key; None when certifi could not be read.
    outside_mozilla: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CachedSource:
    """The last good download of the source, with its validators for a conditional request."""

    data: bytes
    sha256: str
    etag: str | None
    last_modified: str | None
    fetched_at: str | None


class SourceCache:
    """The last good download of one https:// URL, with its validators."""

    def __init__(self, directory: Path, url: str, log: Log) -> None:
        self._entry = CacheEntry(directory, "source", "the cached download of the CA bundle", log)
        # Only a hash of the URL is stored: the URL may hold credentials.
        self._identity = {
            "format": FORMAT_VERSION,
            "url_sha256": hashlib.sha256(url.encode()).hexdigest(),
        }

    def load(self) -> CachedSource | None:
        loaded = self._entry.load(self._identity)
        if loaded is None:
            return None
        data, meta = loaded
        try:
            return CachedSource(
                data,
                meta_text(meta, "sha256"),
                meta_optional_text(meta, "etag"),
                meta_optional_text(meta, "last_modified"),
                meta_optional_text(meta, "fetched_at"),
            )
        except ValueError as error:
            self._entry.discard(error)
            return None

    def store(
        self,
        data: bytes,
        *,
        sha256: str,
        etag: str | None,
        last_modified: str | None,
        fetched_at: str | None,
    ) -> None:
        """``sha256``: the data's, as the build computed it to check the pin."""
        meta = {"etag": etag, "last_modified": last_modified, "fetched_at": fetched_at}
        self._entry.store(data, self._identity, meta, sha256=sha256)


class MergedCache:
    """The last output, with the summaries the report needs, under the hash of its inputs."""

    def __init__(self, directory: Path, log: Log) -> None:
        self._entry = CacheEntry(directory, "merged", "the cached CA bundle", log)

    def load(self, key: str, now: datetime, sources: Sequence[bytes]) -> Merged | None:
        """The cached output for ``key``, if it holds up against ``sources`` (the bytes of
        the bundle's inputs, read on this build): see :func:`check_merged_pem`."""
        loaded = self._entry.load({"format": FORMAT_VERSION, "key": key})
        if loaded is None:
            return None
        pem, meta = loaded
        try:
            expires = datetime.fromisoformat(meta_text(meta, "expires"))
            if expires.tzinfo is None:
                raise ValueError("expires: expected a time zone")
            if expires < now:
                return None  # a certificate in it has expired since: it must be left out now
            merged = Merged(
                pem=pem,
                source=_optional_part(meta, "source"),
                added=_optional_part(meta, "added"),
                public_root_count=meta_count(meta, "public_root_count"),
                public_duplicates=meta_count(meta, "public_duplicates"),
                certifi_version=meta_optional_text(meta, "certifi_version"),
                expires=expires,
                notices=tuple(meta_text_list(meta, "notices")),
                outside_mozilla=(
                    tuple(meta_text_list(meta, "outside_mozilla"))
                    if meta.get("outside_mozilla") is not None
                    else None
                ),
            )
        except ValueError as error:
            self._entry.discard(error)
            return None
        try:
            check_merged_pem(merged, sources)
        except CorruptCache as error:
            self._entry.discard(error, untrusted=True)
            return None
        return merged

    def store(self, key: str, merged: Merged) -> None:
        meta = {
            "expires": merged.expires.isoformat(),
            "source": merged.source.to_json() if merged.source else None,
            "added": merged.added.to_json() if merged.added else None,
            "public_root_count": merged.public_root_count,
            "public_duplicates": merged.public_duplicates,
            "certifi_version": merged.certifi_version,
            "notices": list(merged.notices),
            "outside_mozilla": (
                list(merged.outside_mozilla) if merged.outside_mozilla is not None else None
            ),
        }
        self._entry.store(merged.pem, {"format": FORMAT_VERSION, "key": key}, meta)


def _optional_part(meta: Mapping[str, object], key: str) -> Part | None:
    return None if meta.get(key) is None else Part.from_json(meta_object(meta, key))


def check_merged_pem(merged: Merged, sources: Sequence[bytes]) -> None:
    """Raises ``CorruptCache`` unless the cached output is only comment lines and certificates
    that its inputs hold, the ones its record lists, each once.

    The cache's own SHA-256 catches a torn write, not a write: anyone who can change the cache
    can make the data and its record agree. So what goes into the app is checked against this
    build's inputs (the bundle just read and pinned, SMTP_CA_CERTS, the pinned certifi) by
    fingerprint. Standard library only: a few milliseconds, where loading ``cryptography`` to
    parse the certificates again would cost a warm build some 90 ms before the parse itself.
    """
    in_block = False
    for number, raw in enumerate(merged.pem.splitlines(), start=1):
        line = raw.strip()
        if line in (b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"):
            in_block = line.startswith(b"-----BEGIN")
        elif line.startswith(b"-----") or not (in_block or not line or line.startswith(b"#")):
            raise CorruptCache(f"line {number} is neither a certificate nor a comment")
    try:
        blocks = split_pem(merged.pem)
        known = {
            hashlib.sha256(block.der).hexdigest()
            for data in sources
            for block in split_pem(data)
            if block.is_certificate
        }
    except CertificateError as error:
        raise CorruptCache(str(error)) from None
    written = [hashlib.sha256(block.der).hexdigest() for block in blocks]
    listed = [s.sha256 for part in (merged.source, merged.added) if part for s in part.kept]
    if len(written) != len(listed) + merged.public_root_count:
        raise CorruptCache(
            f"it holds {len(written)} certificates where its record lists "
            f"{len(listed) + merged.public_root_count}"
        )
    if written[: len(listed)] != listed or len(set(written)) != len(written):
        raise CorruptCache("its certificates are not the ones its record lists")
    if not known.issuperset(written):
        raise CorruptCache("it holds a certificate that none of the bundle's inputs holds")
