"""The bundle stage: read the CA bundle, check its pin, keep its CA certificates, add public roots.

In: ``BundleSettings`` (from config vars), a cache directory, the build log. Out: a
``PreparedBundle`` whose ``pem`` is the exact file to write. Same inputs, same bytes.

The bundle is made of up to three inputs, in this order: the certificates of the file at
SMTP_CA_BUNDLE_URL (none with ``SMTP_CA_BUNDLE_URL=none``), those of SMTP_CA_CERTS, and
certifi's public roots (unless SMTP_CA_PUBLIC_ROOTS=false). Each certificate's ``# From:`` comment
line names its input, which the check's "Anchored by" line reads back.

This module runs the stage: what the inputs are (``settings``), reading the source and checking
its pin (``source``), parsing each input and merging them (``merge``), and what the build log
says about it (``report``). Getting bytes from a URL is ``net.http``, the cache files (atomic
writes, integrity checks) are ``cache``, and the records kept in them (and how they read back)
are ``store``. The cache under ``cache_dir/bundle`` holds
two entries, each with its own SHA-256 so a damaged file is thrown away instead of trusted:

* ``source.pem`` + ``source.json``: the last good read of the source, with an https:// source's
  ETag/Last-Modified. It makes the next build's request conditional (a 304 costs no body), and it
  stands in for the source when the source cannot be read (a server down, a file:// path gone).
  Its pin is checked like a download's.
* ``merged.pem`` + ``merged.json``: the output and its certificate summaries, keyed by a hash of
  everything the output depends on. A warm build reads it and never loads ``cryptography``.

``requests`` and ``cryptography`` are imported where they are used (``net.http``,
``certificates``), so a warm build from a file:// source, or from the merged cache, does not pay
for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from smtp_ca.bundle.certificates import CertificateSummary
from smtp_ca.bundle.merge import (
    keep_added_certificates,
    keep_source_certificates,
    merge,
    merge_key,
    read_certifi,
    read_certifi_quietly,
)
from smtp_ca.bundle.report import report

# BundleSettings and the bundle's limits are part of this module's API: re-exported.
from smtp_ca.bundle.settings import BundleSettings
from smtp_ca.bundle.source import Missing, Source, check_pin, read_source

# LeftOut is part of this module's API (PreparedBundle holds them): re-exported.
from smtp_ca.bundle.store import LeftOut, MergedCache, SourceCache
from smtp_ca.cache import layout
from smtp_ca.output import Log
from smtp_ca.settings.ca import refuse_empty_bundle


@dataclass(frozen=True)
class PreparedBundle:
    pem: bytes  # exact bytes to write to .smtp-ca/ca-bundle.pem
    source_certificates: tuple[CertificateSummary, ...]  # the CA certs kept from the source
    public_root_count: int  # certifi roots added (those not already in the source)
    source_sha256: str | None  # None when no source was read
    used_cached_copy: bool  # the source bytes came from the cache (304, or source unreachable)
    left_out: tuple[LeftOut, ...] = ()
    certifi_version: str | None = None  # None when public roots were not added
    fallback_reason: str | None = None  # why the cached copy stood in for an unreachable source
    # Why the default source is not in the bundle at all (unreachable, never cached), if so.
    missing_source_reason: str | None = None
    added_certificates: tuple[CertificateSummary, ...] = ()  # kept from SMTP_CA_CERTS
    # SHA-256 of the certificates of the source and SMTP_CA_CERTS that Mozilla's list does not
    # hold (None: not known), for the check to say when one of them anchors the chain.
    outside_mozilla: tuple[str, ...] | None = None

    @property
    def certificate_count(self) -> int:
        return len(self.source_certificates) + len(self.added_certificates) + self.public_root_count


def prepare_bundle(
    settings: BundleSettings,
    cache_dir: Path,
    log: Log,
    *,
    now: datetime | None = None,
) -> PreparedBundle:
    """Reads the source, checks its pin, keeps its CA certificates, adds certifi's roots.

    Raises ``BuildError`` for anything the user must fix. ``now`` is for tests.
    """
    now = now or datetime.now(timezone.utc)
    refuse_empty_bundle(settings.url, settings.public_roots, settings.certs)
    directory = cache_dir / layout.BUNDLE
    source: Source | Missing | None = None
    source_cache = None
    if settings.url is not None:
        log.redact.add_url_secrets(settings.url)
        source_cache = SourceCache(directory, settings.url, log)
        source = read_source(settings, source_cache, log)
    if isinstance(source, Source):
        check_pin(settings, source)
    read = source if isinstance(source, Source) else None

    certs = settings.certs.encode("utf-8") if settings.certs else None
    public = read_certifi() if settings.public_roots else None
    # Without certifi's roots in the bundle, they are still what its own roots are compared
    # with: trust never wider than Mozilla's list without a word.
    reference = read_certifi_quietly() if public is None and read is not None else None
    key = merge_key(read, certs, public, reference)
    merged_cache = MergedCache(directory, log)
    inputs = (read.data if read else b"", certs or b"", public.data if public else b"")
    merged = merged_cache.load(key, now, inputs)
    merged_was_cached = merged is not None
    if merged is None:
        content = keep_source_certificates(read, now) if read else None
        added = keep_added_certificates(certs, content, now) if certs else None
        merged = merge(content, added, public, now, reference=reference)
        merged_cache.store(key, merged)
    # A download is kept for its validators. A file:// source is read on every build: its copy
    # is kept only when these bytes are new, which a merged result cached under the same source
    # hash rules out, so a warm build writes nothing.
    fresh_file = read is not None and read.origin == "file" and not merged_was_cached
    if read is not None and (read.origin == "network" or fresh_file) and source_cache is not None:
        source_cache.store(
            read.data,
            sha256=read.sha256,
            etag=read.etag,
            last_modified=read.last_modified,
            fetched_at=read.fetched_at,
        )

    report(settings, read, merged, log, now)
    part = merged.source
    return PreparedBundle(
        pem=merged.pem,
        source_certificates=part.kept if part else (),
        public_root_count=merged.public_root_count,
        source_sha256=read.sha256 if read else None,
        used_cached_copy=read is not None and read.origin in ("not-modified", "cache"),
        left_out=part.left_out if part else (),
        certifi_version=merged.certifi_version,
        fallback_reason=read.fallback_reason if read else None,
        missing_source_reason=source.reason if isinstance(source, Missing) else None,
        added_certificates=merged.added.kept if merged.added else (),
        outside_mozilla=merged.outside_mozilla,
    )
