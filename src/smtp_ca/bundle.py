"""The bundle stage: read the CA bundle, check its pin, keep its CA certificates, add public roots.

In: ``BundleSettings`` (from config vars), a cache directory, the build log. Out: a
``PreparedBundle`` whose ``pem`` is the exact file to write. Same inputs, same bytes.

This module is the pipeline and its messages; getting bytes from a URL is ``fetch``, the
cache files (atomic writes, integrity checks) are ``bundle_cache``, and the records kept in
them (and how they read back) are ``bundle_store``. The cache under
``cache_dir/bundle`` holds two entries, each with its own SHA-256 so a damaged file is thrown
away instead of trusted:

* ``source.pem`` + ``source.json``: the last good download of an https:// source, with its
  ETag/Last-Modified. It makes the next build's request conditional (a 304 costs no body), and it
  stands in for the source when the source cannot be read. Its pin is checked like a download's.
* ``merged.pem`` + ``merged.json``: the output and its certificate summaries, keyed by a hash of
  everything the output depends on. A warm build reads it and never loads ``cryptography``.

``requests`` and ``cryptography`` are imported where they are used (``fetch``,
``certificates``), so a warm build from a file:// source, or from the merged cache, does not pay
for them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from smtp_ca import fetch
from smtp_ca.bundle_store import FORMAT_VERSION, CachedSource, Merged, MergedCache, SourceCache

# LeftOut is part of this module's API (PreparedBundle holds them): re-exported.
from smtp_ca.bundle_store import LeftOut as LeftOut
from smtp_ca.certificates import (
    CertificateError,
    CertificateSummary,
    PemBlock,
    basic_constraints_ca,
    guess_format,
    load_certificate,
    split_pem,
    summarize,
    to_pem,
)
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.settings import Settings, check_bundle_url

URL_VARIABLE = "SMTP_CA_BUNDLE_URL"
PIN_VARIABLE = "SMTP_CA_BUNDLE_SHA256"
PUBLIC_ROOTS_VARIABLE = "SMTP_CA_PUBLIC_ROOTS"

# A CA bundle is a few KiB (Go Daddy's: 4.6 KiB; all of Mozilla's roots: 230 KiB).
# The whole bundle download may take this many SMTP_CA_CHECK_TIMEOUTs (see _download).
DOWNLOAD_BUDGET = 4
MAX_BUNDLE_BYTES = 2 * 1024 * 1024
EXPIRY_WARNING_DAYS = 90
CACHE_SUBDIR = "bundle"


@dataclass(frozen=True)
class BundleSettings:
    url: str  # https:// or file://
    sha256: str | None  # lower-case hex pin, or None: unpinned
    public_roots: bool  # add certifi's roots after the source's certificates
    timeout: float  # seconds, for the connect and for each read
    retries: int = 3  # for connection errors, timeouts and 429/5xx answers

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float | None = None) -> BundleSettings:
        """The bundle a build makes from these config vars."""
        return cls(
            url=settings.bundle_url,
            sha256=settings.bundle_sha256,
            public_roots=settings.public_roots,
            timeout=settings.check_timeout if timeout is None else timeout,
        )


@dataclass(frozen=True)
class PreparedBundle:
    pem: bytes  # exact bytes to write to .smtp-ca/ca-bundle.pem
    source_certificates: tuple[CertificateSummary, ...]  # the CA certs kept from the source
    public_root_count: int  # certifi roots added (those not already in the source)
    source_sha256: str
    used_cached_copy: bool  # the source bytes came from the cache (304, or source unreachable)
    left_out: tuple[LeftOut, ...] = ()
    certifi_version: str | None = None  # None when public roots were not added
    fallback_reason: str | None = None  # why the cached copy stood in for an unreachable source

    @property
    def certificate_count(self) -> int:
        return len(self.source_certificates) + self.public_root_count


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
    log.redact.add_url_secrets(settings.url)
    directory = cache_dir / CACHE_SUBDIR
    source = _read_source(settings, directory, log)
    _check_pin(settings, source)

    public = _read_certifi() if settings.public_roots else None
    key = _merge_key(source.sha256, public)
    merged_cache = MergedCache(directory, log)
    merged = merged_cache.load(key, now)
    if merged is None:
        merged = _merge(_keep_source_certificates(source, now), public, now)
        merged_cache.store(key, merged)
    if source.origin == "network":
        SourceCache(directory, settings.url, log).store(
            source.data,
            etag=source.etag,
            last_modified=source.last_modified,
            fetched_at=source.fetched_at,
        )

    _report(settings, source, merged, log, now)
    return PreparedBundle(
        pem=merged.pem,
        source_certificates=merged.source,
        public_root_count=merged.public_root_count,
        source_sha256=source.sha256,
        used_cached_copy=source.origin in ("not-modified", "cache"),
        left_out=merged.left_out,
        certifi_version=merged.certifi_version,
        fallback_reason=source.fallback_reason,
    )


# --- reading the source -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    data: bytes
    sha256: str
    origin: str  # "network", "not-modified", "cache" or "file"
    display: str  # the URL or path, safe to print
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str | None = None
    fallback_reason: str | None = None


def _read_source(settings: BundleSettings, directory: Path, log: Log) -> _Source:
    # Settings checked the URL already; BundleSettings made another way gets the same rule.
    if check_bundle_url(settings.url) == "file":
        return _read_file(settings.url)
    display = fetch.display_url(settings.url)

    cache = SourceCache(directory, settings.url, log)
    cached = cache.load()
    # A copy that fails the pin is no base for a 304, nor a stand-in: the pin changed since.
    usable = cached if cached and settings.sha256 in (None, cached.sha256) else None
    try:
        download = _download(settings, usable, log)
    except fetch.Unavailable as problem:
        if usable is None:
            note = ""
            if cached is not None:
                note = (
                    f" The copy an earlier build cached does not match {PIN_VARIABLE}, "
                    "so it cannot stand in."
                )
            raise BuildError(
                f"Could not download the CA bundle from {URL_VARIABLE} ({display}): "
                f"{problem.reason}.{note}",
                hint=problem.hint or _unavailable_hint(problem),
            ) from None
        log.warn(f"Could not download the CA bundle from {display}: {problem.reason}.")
        log.alert(
            f"Using the copy an earlier build downloaded{_on_date(usable.fetched_at)}; "
            "its SHA-256 is checked as a download's would be."
        )
        return _Source(
            usable.data,
            usable.sha256,
            "cache",
            display,
            usable.etag,
            usable.last_modified,
            usable.fetched_at,
            fallback_reason=problem.reason,
        )
    if download.not_modified:
        assert usable is not None  # no conditional request was sent without it
        return _Source(
            usable.data,
            usable.sha256,
            "not-modified",
            display,
            download.etag or usable.etag,
            download.last_modified or usable.last_modified,
            usable.fetched_at,
        )
    return _Source(
        download.data,
        hashlib.sha256(download.data).hexdigest(),
        "network",
        display,
        download.etag,
        download.last_modified,
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _unavailable_hint(problem: fetch.Unavailable) -> str:
    if problem.status is not None and problem.status < 500:
        return f"Check {URL_VARIABLE}: the server refused that address."
    return f"Check {URL_VARIABLE}, and retry the build if the server was down."


def _read_file(url: str) -> _Source:
    try:
        data, path = fetch.read_file_url(url, MAX_BUNDLE_BYTES)
    except fetch.NotLocal as error:
        raise BuildError(
            f"{URL_VARIABLE} ({fetch.display_url(url)}) names a file on another host "
            f"({error.host}); a file:// URL can only name a file on the build machine.",
            hint="Use file:///absolute/path/to/bundle.pem, or an https:// URL.",
        ) from None
    except fetch.NotAbsolute:
        raise BuildError(
            f"{URL_VARIABLE} ({url}) is not an absolute file:// path.",
            hint="Use file:///absolute/path/to/bundle.pem (three slashes).",
        ) from None
    except fetch.FileMissing as error:
        raise BuildError(
            f"{URL_VARIABLE} names {error.path}, which does not exist.",
            hint="Check the path; files of the app are under the build directory during a build.",
        ) from None
    except fetch.FileUnreadable as error:
        raise BuildError(
            f"Could not read {error.path}, named by {URL_VARIABLE}: {error.detail}.",
            hint="It must be a readable file of PEM certificates.",
        ) from None
    except fetch.TooLarge as error:
        raise _too_large(error.where) from None
    return _Source(data, hashlib.sha256(data).hexdigest(), "file", str(path))


def _download(settings: BundleSettings, cached: CachedSource | None, log: Log) -> fetch.Fetched:
    """The https:// download; ``fetch.Unavailable`` when a cached copy may stand in."""
    validators = None
    if cached is not None:
        validators = fetch.Validators(cached.etag, cached.last_modified)
    # The whole download, retries and redirects included, ends DOWNLOAD_BUDGET timeouts from
    # now: without it a CA site that hangs would hold the build once per try and per redirect.
    limits = fetch.Limits(
        max_bytes=MAX_BUNDLE_BYTES,
        timeout=settings.timeout,
        retries=settings.retries,
        ends_at=time.monotonic() + DOWNLOAD_BUDGET * settings.timeout,
    )
    try:
        return fetch.fetch_url(settings.url, limits, log.redact, validators=validators)
    except fetch.InvalidUrl as error:
        raise BuildError(
            f"{URL_VARIABLE} ({fetch.display_url(settings.url)}) is not a valid URL: "
            f"{error.reason}",
            hint="Use the https:// address of the bundle.",
        ) from None
    except fetch.SchemeRefused as error:
        raise BuildError(
            f"{URL_VARIABLE} ({error.source}) redirects to {error.target}, which is "
            "not https://: the bundle would travel where anyone on the path can rewrite it.",
            hint="Point SMTP_CA_BUNDLE_URL at an address that stays on https://.",
        ) from None
    except fetch.TooLarge as error:
        raise _too_large(error.where) from None


def _too_large(where: str) -> BuildError:
    return BuildError(
        f"The CA bundle at {where} ({URL_VARIABLE}) is larger than "
        f"{MAX_BUNDLE_BYTES // (1024 * 1024)} MiB; a CA bundle is a few KiB.",
        hint=f"Check that {URL_VARIABLE} points at the PEM file itself, not at an archive or page.",
    )


# --- the pin --------------------------------------------------------------------------------


def _check_pin(settings: BundleSettings, source: _Source) -> None:
    if settings.sha256 is None or settings.sha256 == source.sha256:
        return
    where = "The cached copy of the" if source.origin == "cache" else "The"
    raise BuildError(
        f"{where} CA bundle at {URL_VARIABLE} ({source.display}) does not match "
        f"{PIN_VARIABLE}.\n"
        f"  expected (SMTP_CA_BUNDLE_SHA256): {settings.sha256}\n"
        f"  actual (the file's SHA-256):     {source.sha256}",
        hint=(
            "If the provider changed the file on purpose, check the new file (its certificates "
            "should be the ones your SMTP provider documents), then update the pin: "
            f"heroku config:set {PIN_VARIABLE}={source.sha256}\n"
            "If nobody changed it, something between the build and the server did: "
            "do not update the pin."
        ),
    )


# --- parsing and merging --------------------------------------------------------------------


@dataclass(frozen=True)
class _Kept:
    summary: CertificateSummary
    pem: bytes


@dataclass(frozen=True)
class _SourceContent:
    kept: tuple[_Kept, ...]
    left_out: tuple[LeftOut, ...]
    certificate_count: int  # certificate blocks in the source, left out ones included
    sha256: str
    notices: tuple[str, ...]
    warnings: tuple[str, ...]


def _keep_source_certificates(source: _Source, now: datetime) -> _SourceContent:
    what = f"The CA bundle at {URL_VARIABLE} ({source.display})"
    blocks = _pem_blocks(source.data, what)
    kept: list[_Kept] = []
    left_out: list[LeftOut] = []
    notices: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()
    certificate_blocks = [block for block in blocks if block.is_certificate]
    for block in blocks:
        if not block.is_certificate:
            warning = (
                f"Left out {block.where} of the bundle: it is a {block.label}, not a certificate."
            )
            if "PRIVATE KEY" in block.label:
                warning += " A private key has no place in a CA bundle; if it is real, it leaked."
            warnings.append(warning)
            continue
        try:
            cert = load_certificate(block)
        except CertificateError as error:
            raise BuildError(f"{what}: {error}.", hint=_BAD_FILE_HINT) from None
        summary = summarize(cert)
        if summary.sha256 in seen:
            notices.append(f"Left out a second copy of {summary.describe()}.")
            continue
        seen.add(summary.sha256)
        if not summary.is_ca:
            flag = basic_constraints_ca(cert)
            why = (
                "its basicConstraints say CA:FALSE"
                if flag is False
                else "it has no basicConstraints"
            )
            left_out.append(
                LeftOut(
                    summary,
                    f"it is not a CA certificate ({why}): a CA bundle holds roots and "
                    "intermediates, not servers' certificates",
                )
            )
        elif summary.is_expired(now):
            left_out.append(LeftOut(summary, "it has expired"))
        else:
            kept.append(_Kept(summary, to_pem(cert)))
    if not certificate_blocks:
        labels = ", ".join(sorted({block.label for block in blocks}))
        raise BuildError(f"{what} has no certificate, only {labels}.", hint=_BAD_FILE_HINT)
    if not kept:
        lines = "".join(f"\n  {item.certificate.describe()}: {item.reason}" for item in left_out)
        raise BuildError(
            f"{what} has no CA certificate that can be used:{lines}",
            hint=(
                "Use the bundle of the CA that issued your SMTP server's certificate (its "
                "intermediate and root certificates), not the server's own certificate."
            ),
        )
    return _SourceContent(
        tuple(kept),
        tuple(left_out),
        len(certificate_blocks),
        source.sha256,
        tuple(notices),
        tuple(warnings),
    )


_BAD_FILE_HINT = (
    f"Check that {URL_VARIABLE} points at a PEM file of CA certificates "
    "(-----BEGIN CERTIFICATE----- blocks), and that the file is complete."
)


def _pem_blocks(data: bytes, what: str) -> list[PemBlock]:
    kind = guess_format(data)
    if kind == "empty":
        raise BuildError(f"{what} is empty.", hint=_BAD_FILE_HINT)
    if kind == "html":
        raise BuildError(
            f"{what} looks like an HTML page, not PEM certificates: the server sent a web page "
            "(an error, login or download page) instead of the file.",
            hint=_BAD_FILE_HINT,
        )
    if kind == "der":
        raise BuildError(
            f"{what} looks like a binary (DER) certificate; the bundle must be PEM.",
            hint="Convert it with: openssl x509 -inform der -in cert.der -out cert.pem",
        )
    if kind != "pem":
        raise BuildError(
            f"{what} is not PEM: it has no -----BEGIN CERTIFICATE----- line.",
            hint=_BAD_FILE_HINT,
        )
    try:
        return split_pem(data)
    except CertificateError as error:
        raise BuildError(f"{what}: {error}.", hint=_BAD_FILE_HINT) from None


_CERTIFI_HINT = (
    f"Reinstall the buildpack's dependencies, or set {PUBLIC_ROOTS_VARIABLE}=false to go without."
)


@dataclass(frozen=True)
class _PublicRoots:
    data: bytes
    sha256: str
    version: str


def _read_certifi() -> _PublicRoots:
    import certifi

    path = Path(certifi.where())
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BuildError(
            f"Could not read certifi's roots ({path}): {error.strerror or error}.",
            hint=_CERTIFI_HINT,
        ) from None
    return _PublicRoots(data, hashlib.sha256(data).hexdigest(), str(certifi.__version__))


def _merge_key(source_sha256: str, public: _PublicRoots | None) -> str:
    parts = [FORMAT_VERSION, source_sha256, None, None]
    if public is not None:
        parts[2:] = [public.sha256, public.version]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _merge(content: _SourceContent, public: _PublicRoots | None, now: datetime) -> Merged:
    """Source certificates first, in source order, then certifi's roots in certifi's order.

    Both orders are already stable, and keeping them makes the output easy to diff against the
    source and keeps a certifi upgrade to a small diff; sorting by fingerprint would do neither.
    A root that is in both stays in the source's place.
    """
    seen = {item.summary.sha256 for item in content.kept}
    added: list[_Kept] = []
    duplicates = 0
    notices = list(content.notices)
    if public is not None:
        expired = 0
        try:
            blocks = [block for block in split_pem(public.data) if block.is_certificate]
            certificates = [load_certificate(block) for block in blocks]
        except CertificateError as error:
            raise BuildError(
                f"certifi's roots are damaged: {error}.",
                hint=_CERTIFI_HINT,
            ) from None
        for cert in certificates:
            summary = summarize(cert)
            if summary.sha256 in seen:
                duplicates += 1
                continue
            seen.add(summary.sha256)
            if summary.is_expired(now):
                expired += 1
                continue
            added.append(_Kept(summary, to_pem(cert)))
        if expired:
            notices.append(f"Left out {_plural(expired, 'expired public root')} of certifi.")
    pem = _render(content, added, public)
    written = [item.summary.not_after for item in (*content.kept, *added)]
    return Merged(
        pem=pem,
        source=tuple(item.summary for item in content.kept),
        left_out=content.left_out,
        source_certificate_count=content.certificate_count,
        public_root_count=len(added),
        public_duplicates=duplicates,
        certifi_version=public.version if public else None,
        expires=min(written),
        notices=tuple(notices),
        warnings=content.warnings,
    )


def _render(content: _SourceContent, added: list[_Kept], public: _PublicRoots | None) -> bytes:
    # No dates, paths or URLs: the same inputs must give the same bytes on every build.
    lines = [
        "# CA certificates for SMTP clients, written by heroku-buildpack-smtp-ca on every build.",
        f"# Edits are overwritten: change {URL_VARIABLE} and {PIN_VARIABLE} instead.",
        f"# {_plural(len(content.kept), 'certificate')} from the bundle at {URL_VARIABLE},",
        f"#   whose SHA-256 is {content.sha256},",
    ]
    if public is not None:
        lines.append(
            f"# then {_plural(len(added), 'public root')} from certifi {public.version} "
            "(Mozilla's CA certificates)."
        )
    else:
        lines.append(f"# and no public roots ({PUBLIC_ROOTS_VARIABLE}=false).")
    out = ["\n".join(lines) + "\n"]
    for origin, items in ((URL_VARIABLE, content.kept), ("certifi", added)):
        for item in items:
            s = item.summary
            out.append(
                f"\n# {s.display_name}\n"
                f"# Subject: {s.subject}\n"
                f"# Issuer: {s.issuer}\n"
                f"# Valid: {s.not_before:%Y-%m-%d} to {s.not_after:%Y-%m-%d}\n"
                f"# SHA-256: {s.sha256}\n"
                f"# From: {origin}\n" + item.pem.decode("ascii")
            )
    return "".join(out).encode("utf-8")


# --- messages -------------------------------------------------------------------------------


def _report(
    settings: BundleSettings, source: _Source, merged: Merged, log: Log, now: datetime
) -> None:
    kept = len(merged.source)
    if kept == merged.source_certificate_count:
        count = _plural(kept, "certificate")
    else:
        count = f"{kept} of {_plural(merged.source_certificate_count, 'certificate')} kept"
    pin = (
        f"SHA-256 {_short(source.sha256)} matches the pin"
        if settings.sha256
        else f"SHA-256 {_short(source.sha256)}, not pinned"
    )
    details = f"({count}, {pin})"
    if source.origin == "network":
        log.info(f"Fetched {source.display} {details}")
    elif source.origin == "not-modified":
        log.info(f"{source.display} has not changed since the last build {details}")
    elif source.origin == "cache":
        log.info(f"Used the cached copy of {source.display} {details}")
    else:
        log.info(f"Read {source.display} {details}")

    for notice in merged.notices:
        log.info(notice)
    for warning in merged.warnings:
        log.warn(warning)
    for item in merged.left_out:
        log.warn(f"Left out {item.certificate.describe()}: {item.reason}.")
    for summary in merged.source:
        if summary.not_before > now:
            log.warn(
                f"{summary.describe()} is not valid until {summary.not_before:%Y-%m-%d}: "
                "chains that need it fail until then."
            )
        elif summary.days_left(now) < EXPIRY_WARNING_DAYS:
            days = summary.days_left(now)
            when = _plural(days, "day") if days else "less than a day"
            log.warn(
                f"{summary.describe()} expires in {when}. "
                f"Get the provider's new bundle before then and update {URL_VARIABLE} "
                f"and {PIN_VARIABLE}."
            )
    if settings.sha256 is None:
        log.warn(
            f"{PIN_VARIABLE} is not set, so nothing checks that the bundle at {URL_VARIABLE} "
            "is the one you meant: whoever can change that file decides whom your mail trusts."
        )
        log.alert(f"Its SHA-256 is {source.sha256}. To pin it:")
        log.alert(f"heroku config:set {PIN_VARIABLE}={source.sha256}")

    total = kept + merged.public_root_count
    if merged.certifi_version is None:
        log.info(
            f"No public roots added ({PUBLIC_ROOTS_VARIABLE}=false): "
            f"{_plural(total, 'certificate')}, all from the bundle"
        )
    else:
        already = (
            f" ({merged.public_duplicates} already in the bundle)"
            if merged.public_duplicates
            else ""
        )
        log.info(
            f"Merged with {_plural(merged.public_root_count, 'public root')} from certifi "
            f"{merged.certifi_version}{already}: {_plural(total, 'certificate')}"
        )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _short(digest: str) -> str:
    return f"{digest[:4]}…{digest[-4:]}"


def _on_date(timestamp: str | None) -> str:
    return f" on {timestamp[:10]}" if timestamp else ""
