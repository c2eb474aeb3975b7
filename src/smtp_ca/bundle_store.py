"""What the bundle stage keeps between builds: its last download and its last output.

The records (``CachedSource``, ``Merged``) and how each is written to and read back from a
``bundle_cache`` entry; which entry a build may use, and when, is the pipeline's call
(``bundle``). A record that does not read back as written is discarded, never half-trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from smtp_ca.bundle_cache import (
    CacheEntry,
    meta_count,
    meta_object,
    meta_objects,
    meta_optional_text,
    meta_text,
    meta_text_list,
)
from smtp_ca.certificates import CertificateSummary
from smtp_ca.output import Log

# Bump when the output or the cache layout changes: old cache entries then stop matching.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class LeftOut:
    """A certificate of the source that is not in the output, and why."""

    certificate: CertificateSummary
    reason: str


@dataclass(frozen=True)
class Merged:
    """The bundle stage's output, with what its report needs, so a warm build redoes neither."""

    pem: bytes
    source: tuple[CertificateSummary, ...]
    left_out: tuple[LeftOut, ...]
    source_certificate_count: int
    public_root_count: int
    public_duplicates: int  # certifi roots that the source already had
    certifi_version: str | None
    # The first not-after of any certificate written: past it, the output must be made again.
    expires: datetime
    notices: tuple[str, ...]
    warnings: tuple[str, ...]


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
        self, data: bytes, *, etag: str | None, last_modified: str | None, fetched_at: str | None
    ) -> None:
        meta = {"etag": etag, "last_modified": last_modified, "fetched_at": fetched_at}
        self._entry.store(data, self._identity, meta)


class MergedCache:
    """The last output, with the summaries the report needs, under the hash of its inputs."""

    def __init__(self, directory: Path, log: Log) -> None:
        self._entry = CacheEntry(directory, "merged", "the cached CA bundle", log)

    def load(self, key: str, now: datetime) -> Merged | None:
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
            return Merged(
                pem=pem,
                source=tuple(CertificateSummary.from_json(s) for s in meta_objects(meta, "source")),
                left_out=tuple(
                    LeftOut(
                        CertificateSummary.from_json(meta_object(item, "certificate")),
                        meta_text(item, "reason"),
                    )
                    for item in meta_objects(meta, "left_out")
                ),
                source_certificate_count=meta_count(meta, "source_certificate_count"),
                public_root_count=meta_count(meta, "public_root_count"),
                public_duplicates=meta_count(meta, "public_duplicates"),
                certifi_version=meta_optional_text(meta, "certifi_version"),
                expires=expires,
                notices=tuple(meta_text_list(meta, "notices")),
                warnings=tuple(meta_text_list(meta, "warnings")),
            )
        except ValueError as error:
            self._entry.discard(error)
            return None

    def store(self, key: str, merged: Merged) -> None:
        meta = {
            "expires": merged.expires.isoformat(),
            "source": [s.to_json() for s in merged.source],
            "left_out": [
                {"certificate": item.certificate.to_json(), "reason": item.reason}
                for item in merged.left_out
            ],
            "source_certificate_count": merged.source_certificate_count,
            "public_root_count": merged.public_root_count,
            "public_duplicates": merged.public_duplicates,
            "certifi_version": merged.certifi_version,
            "notices": list(merged.notices),
            "warnings": list(merged.warnings),
        }
        self._entry.store(merged.pem, {"format": FORMAT_VERSION, "key": key}, meta)
