"""The bundle stage: read the CA bundle, check its pin, keep its CA certificates, add public roots.

In: ``BundleSettings`` (from config vars), a cache directory, the build log. Out: a
``PreparedBundle`` whose ``pem`` is the exact file to write. Same inputs, same bytes.

The bundle is made of up to three inputs, in this order: the certificates of the file at
SMTP_CA_BUNDLE_URL (none with ``SMTP_CA_BUNDLE_URL=none``), those of SMTP_CA_CERTS, and
certifi's public roots (unless SMTP_CA_PUBLIC_ROOTS=false). Each certificate's ``# From:`` comment
line names its input, which the check's "Anchored by" line reads back.

This module is the pipeline and its messages; getting bytes from a URL is ``fetch``, the
cache files (atomic writes, integrity checks) are ``bundle_cache``, and the records kept in
them (and how they read back) are ``bundle_store``. The cache under
``cache_dir/bundle`` holds two entries, each with its own SHA-256 so a damaged file is thrown
away instead of trusted:

* ``source.pem`` + ``source.json``: the last good read of the source, with an https:// source's
  ETag/Last-Modified. It makes the next build's request conditional (a 304 costs no body), and it
  stands in for the source when the source cannot be read (a server down, a file:// path gone).
  Its pin is checked like a download's.
* ``merged.pem`` + ``merged.json``: the output and its certificate summaries, keyed by a hash of
  everything the output depends on. A warm build reads it and never loads ``cryptography``.

``requests`` and ``cryptography`` are imported where they are used (``fetch``,
``certificates``), so a warm build from a file:// source, or from the merged cache, does not pay
for them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca import fetch
from smtp_ca.bundle_store import (
    FORMAT_VERSION,
    CachedSource,
    Merged,
    MergedCache,
    Part,
    SourceCache,
)

# LeftOut is part of this module's API (PreparedBundle holds them): re-exported.
from smtp_ca.bundle_store import LeftOut as LeftOut
from smtp_ca.certificates import (
    CertificateError,
    CertificateSummary,
    PemBlock,
    basic_constraints_ca,
    guess_format,
    load_certificate,
    printable,
    split_pem,
    summarize,
    to_pem,
)
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.settings import Settings, check_bundle_url

if TYPE_CHECKING:
    from smtp_ca.retry import RetryNote

URL_VARIABLE = "SMTP_CA_BUNDLE_URL"
CERTS_VARIABLE = "SMTP_CA_CERTS"
PIN_VARIABLE = "SMTP_CA_BUNDLE_SHA256"
PUBLIC_ROOTS_VARIABLE = "SMTP_CA_PUBLIC_ROOTS"

FETCH_TIMEOUT_VARIABLE = "SMTP_CA_FETCH_TIMEOUT"
# What the default bundle adds to certifi's roots, which hold the G2 root: named in the warning
# when it cannot be downloaded.
DEFAULT_BUNDLE_ADDS = "Go Daddy Secure Certificate Authority - G2"
# A CA bundle is a few KiB (Go Daddy's: 4.6 KiB; all of Mozilla's roots: 230 KiB).
MAX_BUNDLE_BYTES = 2 * 1024 * 1024
EXPIRY_WARNING_DAYS = 90
CACHE_SUBDIR = "bundle"


@dataclass(frozen=True)
class BundleSettings:
    url: str | None  # https:// or file://; None: SMTP_CA_BUNDLE_URL=none, nothing is read
    sha256: str | None  # lower-case hex pin, or None: unpinned
    public_roots: bool  # add certifi's roots after the source's certificates
    timeout: float  # seconds for the whole download, retries and redirects included
    retries: int = 3  # for connection errors, timeouts and 429/5xx answers
    # The default source may be left out when it cannot be downloaded and no build cached it:
    # all it adds to certifi's roots is one intermediate, which the check can fetch (AIA).
    may_go_without: bool = False
    certs: str | None = None  # SMTP_CA_CERTS: PEM text, added after the source's certificates

    @classmethod
    def from_settings(cls, settings: Settings) -> BundleSettings:
        """The bundle a build makes from these config vars."""
        return cls(
            url=settings.bundle_url,
            sha256=settings.bundle_sha256,
            public_roots=settings.public_roots,
            timeout=settings.fetch_timeout,
            may_go_without=settings.default_bundle and settings.public_roots,
            certs=settings.ca_certs,
        )


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
    directory = cache_dir / CACHE_SUBDIR
    source: _Source | _Missing | None = None
    if settings.url is not None:
        log.redact.add_url_secrets(settings.url)
        source = _read_source(settings, directory, log)
    if isinstance(source, _Source):
        _check_pin(settings, source)
    read = source if isinstance(source, _Source) else None

    certs = settings.certs.encode("utf-8") if settings.certs else None
    public = _read_certifi() if settings.public_roots else None
    key = _merge_key(read, certs, public)
    merged_cache = MergedCache(directory, log)
    inputs = (read.data if read else b"", certs or b"", public.data if public else b"")
    merged = merged_cache.load(key, now, inputs)
    merged_was_cached = merged is not None
    if merged is None:
        content = _keep_source_certificates(read, now) if read else None
        added = _keep_added_certificates(certs, content, now) if certs else None
        merged = _merge(content, added, public, now)
        merged_cache.store(key, merged)
    # A download is kept for its validators. A file:// source is read on every build: its copy
    # is kept only when these bytes are new, which a merged result cached under the same source
    # hash rules out, so a warm build writes nothing.
    fresh_file = read is not None and read.origin == "file" and not merged_was_cached
    if read is not None and (read.origin == "network" or fresh_file) and settings.url is not None:
        SourceCache(directory, settings.url, log).store(
            read.data,
            etag=read.etag,
            last_modified=read.last_modified,
            fetched_at=read.fetched_at,
        )

    _report(settings, read, merged, log, now)
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
        missing_source_reason=source.reason if isinstance(source, _Missing) else None,
        added_certificates=merged.added.kept if merged.added else (),
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


@dataclass(frozen=True)
class _Missing:
    """The default source, left out: it could not be downloaded and no build cached it."""

    reason: str


def _read_source(settings: BundleSettings, directory: Path, log: Log) -> _Source | _Missing:
    assert settings.url is not None
    cache = SourceCache(directory, settings.url, log)
    # Settings checked the URL already; BundleSettings made another way gets the same rule.
    if check_bundle_url(settings.url) == "file":
        try:
            return _read_file(settings.url)
        except fetch.FileMissing as gone:
            cached = cache.load()
            # A file:// path that is gone is a source that cannot be reached, like a server
            # that is down: the copy an earlier build read stands in, its pin checked again.
            if cached is None or settings.sha256 not in (None, cached.sha256):
                raise _file_missing(gone.path, cached) from None
            reason = f"{gone.path} does not exist"
            log.warn(
                f"{URL_VARIABLE} names {gone.path}, which does not exist.",
                _standing_in(cached, "read"),
            )
            return _stand_in(cached, str(gone.path), reason)
    display = fetch.display_url(settings.url)

    cached = cache.load()
    # A copy that fails the pin is no base for a 304, nor a stand-in: the pin changed since.
    usable = cached if cached and settings.sha256 in (None, cached.sha256) else None
    try:
        download = _download(settings, usable, log)
    except fetch.Unavailable as problem:
        if usable is None:
            if cached is None and settings.may_go_without:
                _warn_going_without(display, problem.reason, log)
                return _Missing(problem.reason)
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
        log.warn(
            f"Could not download the CA bundle from {display}: {problem.reason}.",
            _standing_in(usable, "downloaded"),
        )
        return _stand_in(usable, display, problem.reason)
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
        _now_text(),
    )


def _standing_in(cached: CachedSource, verb: str) -> str:
    """What the warning about an unreadable source says the build does instead."""
    return (
        f"Using the copy an earlier build {verb}{_on_date(cached.fetched_at)}; "
        "its SHA-256 is checked as a fresh copy's would be."
    )


def _stand_in(cached: CachedSource, display: str, reason: str) -> _Source:
    """The cached copy, standing in for a source that cannot be read this time."""
    return _Source(
        cached.data,
        cached.sha256,
        "cache",
        display,
        cached.etag,
        cached.last_modified,
        cached.fetched_at,
        fallback_reason=reason,
    )


def _warn_going_without(display: str, reason: str, log: Log) -> None:
    log.warn(
        f"Could not download the default CA bundle ({display}): {reason}; no earlier build "
        "cached it.",
        "The build goes on with certifi's public roots alone. What they lack is "
        f"{DEFAULT_BUNDLE_ADDS}, the intermediate of GoDaddy's server certificates (its root, "
        "Go Daddy Root Certificate Authority - G2, is a public root): a server that does not "
        "send that intermediate cannot be verified without it.",
        "The SMTP handshake check proves whether it matters: it fetches an intermediate the "
        "server does not send (AIA) and adds it to the bundle. The next build downloads the "
        "bundle again.",
    )


def _file_missing(path: Path, cached: CachedSource | None) -> BuildError:
    note = ""
    if cached is not None:
        note = (
            f" The copy an earlier build read does not match {PIN_VARIABLE}, so it cannot stand in."
        )
    return BuildError(
        f"{URL_VARIABLE} names {path}, which does not exist.{note}",
        hint="Check the path; files of the app are under the build directory during a build.",
    )


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unavailable_hint(problem: fetch.Unavailable) -> str:
    if problem.status is not None and problem.status < 500:
        return f"Check {URL_VARIABLE}: the server refused that address."
    return (
        f"Check {URL_VARIABLE}, and retry the build if the server was down. "
        f"{FETCH_TIMEOUT_VARIABLE} bounds the whole download."
    )


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
    except fetch.FileUnreadable as error:
        raise BuildError(
            f"Could not read {error.path}, named by {URL_VARIABLE}: {error.detail}.",
            hint="It must be a readable file of PEM certificates.",
        ) from None
    except fetch.TooLarge as error:
        raise _too_large(error.where) from None
    return _Source(
        data, hashlib.sha256(data).hexdigest(), "file", str(path), fetched_at=_now_text()
    )


def _download(settings: BundleSettings, cached: CachedSource | None, log: Log) -> fetch.Fetched:
    """The https:// download; ``fetch.Unavailable`` when a cached copy may stand in."""
    validators = None
    if cached is not None:
        validators = fetch.Validators(cached.etag, cached.last_modified)
    # The whole download, retries and redirects included, ends SMTP_CA_FETCH_TIMEOUT from now:
    # without it a CA site that hangs would hold the build once per try and per redirect.
    limits = fetch.Limits(
        max_bytes=MAX_BUNDLE_BYTES,
        timeout=settings.timeout,
        retries=settings.retries,
        ends_at=time.monotonic() + settings.timeout,
    )
    display = fetch.display_url(settings.url or "")

    def retrying(note: RetryNote) -> None:
        log.info(
            f"Attempt {note.attempt} of {note.attempts} to download {display} failed "
            f"({note.reason}); trying again in {fetch.seconds(note.wait)} s."
        )

    try:
        return fetch.fetch_url(
            settings.url or "", limits, log.redact, validators=validators, on_retry=retrying
        )
    except fetch.InvalidUrl as error:
        raise BuildError(
            f"{URL_VARIABLE} ({display}) is not a valid URL: {error.reason}",
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
class _Content:
    """One input's certificates, parsed and checked: what it puts in the bundle, and why not
    the rest."""

    kept: tuple[_Kept, ...]
    part: Part
    display: str = ""  # the source's URL or path, as the "# From:" lines name it
    part_sha256: str = ""  # the source's SHA-256, for the header


def _keep_source_certificates(source: _Source, now: datetime) -> _Content:
    what = f"The CA bundle at {URL_VARIABLE} ({source.display})"
    blocks = _pem_blocks(source.data, what)
    content = _keep_ca_certificates(blocks, what, now, _BAD_FILE_HINT)
    return replace(content, display=source.display, part_sha256=source.sha256)


def _keep_added_certificates(data: bytes, source: _Content | None, now: datetime) -> _Content:
    """SMTP_CA_CERTS, checked like a downloaded bundle; but a block that is not a certificate
    fails the build, naming the block: the app's owner typed this value and can fix it."""
    blocks = _pem_blocks(data, CERTS_VARIABLE, _CERTS_HINT)
    for block in blocks:
        if block.is_certificate:
            continue
        message = f"{CERTS_VARIABLE}: {block.where} is a {block.label}, not a certificate."
        if "PRIVATE KEY" in block.label:
            message += (
                " A private key has no place there, and every collaborator on the app can read "
                "config vars: if it is a real key, treat it as leaked and replace it."
            )
        raise BuildError(message, hint=f"Remove that block. {_CERTS_HINT}")
    already = {item.summary.sha256 for item in source.kept} if source else set()
    return _keep_ca_certificates(blocks, CERTS_VARIABLE, now, _CERTS_HINT, already)


def _keep_ca_certificates(
    blocks: list[PemBlock],
    what: str,
    now: datetime,
    hint: str,
    already: set[str] | frozenset[str] = frozenset(),
) -> _Content:
    """The CA certificates of ``blocks`` that are valid now, each once; what is left out,
    and why. ``already``: fingerprints an earlier input put in the bundle. ``BuildError``
    when nothing can be used."""
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
            raise BuildError(f"{what}: {error}.", hint=hint) from None
        summary = summarize(cert)
        if summary.sha256 in seen:
            notices.append(f"Left out a second copy of {summary.describe()}.")
            continue
        seen.add(summary.sha256)
        if summary.sha256 in already:
            notices.append(
                f"{summary.describe()} from {what} is in the bundle from {URL_VARIABLE} already."
            )
            continue
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
        raise BuildError(f"{what} has no certificate, only {labels}.", hint=hint)
    if not kept and not already.intersection(seen):
        lines = "".join(f"\n  {item.certificate.describe()}: {item.reason}" for item in left_out)
        raise BuildError(
            f"{what} has no CA certificate that can be used:{lines}",
            hint=(
                "Use the bundle of the CA that issued your SMTP server's certificate (its "
                "intermediate and root certificates), not the server's own certificate."
            ),
        )
    part = Part(
        tuple(item.summary for item in kept),
        tuple(left_out),
        len(certificate_blocks),
        tuple(notices),
        tuple(warnings),
    )
    return _Content(tuple(kept), part)


_CERTS_HINT = (
    f"{CERTS_VARIABLE} holds PEM CA certificates (-----BEGIN CERTIFICATE----- blocks): "
    f'heroku config:set {CERTS_VARIABLE}="$(cat relay-ca.pem)"'
)
_BAD_FILE_HINT = (
    f"Check that {URL_VARIABLE} points at a PEM file of CA certificates "
    "(-----BEGIN CERTIFICATE----- blocks), and that the file is complete."
)


def _pem_blocks(data: bytes, what: str, hint: str = _BAD_FILE_HINT) -> list[PemBlock]:
    kind = guess_format(data)
    if kind == "empty":
        raise BuildError(f"{what} is empty.", hint=hint)
    if kind == "html":
        raise BuildError(
            f"{what} looks like an HTML page, not PEM certificates: the server sent a web page "
            "(an error, login or download page) instead of the file.",
            hint=hint,
        )
    if kind == "der":
        raise BuildError(
            f"{what} looks like a binary (DER) certificate; the bundle must be PEM.",
            hint="Convert it with: openssl x509 -inform der -in cert.der -out cert.pem",
        )
    if kind != "pem":
        raise BuildError(
            f"{what} is not PEM: it has no -----BEGIN CERTIFICATE----- line.",
            hint=hint,
        )
    try:
        blocks = split_pem(data)
    except CertificateError as error:
        raise BuildError(f"{what}: {error}.", hint=hint) from None
    if not blocks:
        # "-----BEGIN CERTIFICATE-----\\nMIIB...": pasted with its line breaks as \\n.
        one_line = b"\n" not in data.strip() and b"\\n" in data
        raise BuildError(
            f"{what} has no complete PEM block"
            + (
                ", and it is one line with \\n where its line breaks should be."
                if one_line
                else "."
            ),
            hint=hint,
        )
    return blocks


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


def _merge_key(source: _Source | None, certs: bytes | None, public: _PublicRoots | None) -> str:
    # The source's display URL is in the output (its "# From:" lines), so it is in the key.
    parts: list[object] = [FORMAT_VERSION, None, None, None, None, None]
    if source is not None:
        parts[1:3] = [source.sha256, source.display]
    if certs is not None:
        parts[3] = hashlib.sha256(certs).hexdigest()
    if public is not None:
        parts[4:] = [public.sha256, public.version]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _merge(
    content: _Content | None,
    added_content: _Content | None,
    public: _PublicRoots | None,
    now: datetime,
) -> Merged:
    """Source certificates first, in source order, then SMTP_CA_CERTS's, then certifi's roots
    in certifi's order.

    Both orders are already stable, and keeping them makes the output easy to diff against the
    source and keeps a certifi upgrade to a small diff; sorting by fingerprint would do neither.
    A root that is in both stays in the source's place.
    """
    kept = (*(content.kept if content else ()), *(added_content.kept if added_content else ()))
    seen = {item.summary.sha256 for item in kept}
    added: list[_Kept] = []
    duplicates = 0
    notices: list[str] = []
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
    written = [item.summary.not_after for item in (*kept, *added)]
    if not written:
        raise BuildError(
            f"The CA bundle would be empty: no certificate came from {URL_VARIABLE}, "
            f"{CERTS_VARIABLE} or certifi's public roots.",
            hint=f"Set {CERTS_VARIABLE} or {URL_VARIABLE}, or unset {PUBLIC_ROOTS_VARIABLE}.",
        )
    return Merged(
        pem=_render(content, added_content, added, public),
        source=content.part if content else None,
        added=added_content.part if added_content else None,
        public_root_count=len(added),
        public_duplicates=duplicates,
        certifi_version=public.version if public else None,
        expires=min(written),
        notices=tuple(notices),
    )


def _render(
    content: _Content | None,
    added_content: _Content | None,
    added: list[_Kept],
    public: _PublicRoots | None,
) -> bytes:
    # No dates: the same inputs must give the same bytes on every build.
    lines = [
        "# CA certificates for SMTP clients, written by heroku-buildpack-smtp-ca on every build.",
        "# Edits are overwritten: change the buildpack's config vars instead.",
    ]
    if content is not None:
        lines.append(
            f"# {_plural(len(content.kept), 'certificate')} from the bundle at {URL_VARIABLE}, "
            f"whose SHA-256 is {_comment(content.part_sha256)},"
        )
    else:
        lines.append(f"# Nothing from {URL_VARIABLE}.")
    if added_content is not None:
        lines.append(f"# {_plural(len(added_content.kept), 'certificate')} from {CERTS_VARIABLE},")
    if public is not None:
        lines.append(
            f"# then {_plural(len(added), 'public root')} from certifi {public.version} "
            "(Mozilla's CA certificates)."
        )
    else:
        lines.append(f"# No public roots ({PUBLIC_ROOTS_VARIABLE}=false).")
    out = ["\n".join(lines) + "\n"]
    origin = f"{_comment(content.display)} ({URL_VARIABLE})" if content else ""
    for item in content.kept if content else ():
        out.append(_block(item, origin))
    for item in added_content.kept if added_content else ():
        out.append(_block(item, CERTS_VARIABLE))
    for item in added:
        out.append(_block(item, "certifi"))
    return "".join(out).encode("utf-8")


def _block(item: _Kept, origin: str) -> str:
    s = item.summary
    return (
        f"\n# {s.display_name}\n"
        f"# Subject: {s.subject}\n"
        f"# Issuer: {s.issuer}\n"
        f"# Valid: {s.not_before:%Y-%m-%d} to {s.not_after:%Y-%m-%d}\n"
        f"# SHA-256: {s.sha256}\n"
        f"# From: {origin}\n" + item.pem.decode("ascii")
    )


def _comment(text: str) -> str:
    """Text fit for a comment line of the bundle: one printable line with no run of five
    dashes, so that no PEM reader can take it for a BEGIN line."""
    return re.sub("-{5,}", "----", printable(text))


# --- messages -------------------------------------------------------------------------------


def _report(
    settings: BundleSettings, source: _Source | None, merged: Merged, log: Log, now: datetime
) -> None:
    part = merged.source
    if settings.url is None:
        log.info(f"Downloaded no bundle ({URL_VARIABLE}=none)")
    if source is not None and part is not None:
        _report_source(settings, source, part, log, now)
    if merged.added is not None:
        _report_added(merged.added, log, now)
    for notice in merged.notices:
        log.info(notice)

    total = sum(len(p.kept) for p in (part, merged.added) if p) + merged.public_root_count
    if merged.certifi_version is None:
        log.info(
            f"No public roots added ({PUBLIC_ROOTS_VARIABLE}=false): "
            f"{_plural(total, 'certificate')} in all"
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


def _report_source(
    settings: BundleSettings, source: _Source, part: Part, log: Log, now: datetime
) -> None:
    kept = len(part.kept)
    if kept == part.certificate_count:
        count = _plural(kept, "certificate")
    else:
        count = f"{kept} of {_plural(part.certificate_count, 'certificate')} kept"
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

    _report_checks(part, "", log)
    _warn_about_dates(
        part.kept,
        f"Get the provider's new bundle before then and update {URL_VARIABLE} and {PIN_VARIABLE}.",
        log,
        now,
    )
    if settings.sha256 is None:
        log.warn(
            f"{PIN_VARIABLE} is not set, so nothing checks that the bundle at {URL_VARIABLE} "
            "is the one you meant: whoever can change that file decides whom your mail trusts.",
            f"Its SHA-256 is {source.sha256}. To pin it:",
            f"heroku config:set {PIN_VARIABLE}={source.sha256}",
        )


def _report_added(part: Part, log: Log, now: datetime) -> None:
    log.info(f"Added {_plural(len(part.kept), 'certificate')} from {CERTS_VARIABLE}:")
    for summary in part.kept:
        log.info(f"  {summary.display_name} (not after {summary.not_after:%Y-%m-%d})")
    _report_checks(part, f" from {CERTS_VARIABLE}", log)
    _warn_about_dates(part.kept, f"Put its successor in {CERTS_VARIABLE} before then.", log, now)


def _report_checks(part: Part, source: str, log: Log) -> None:
    """What validating one input found: notes, warnings, and each certificate left out of it
    (``source`` says which input, for the inputs after the first)."""
    for notice in part.notices:
        log.info(notice)
    for warning in part.warnings:
        log.warn(warning)
    for item in part.left_out:
        log.warn(f"Left out {item.certificate.describe()}{source}: {item.reason}.")


def _warn_about_dates(
    kept: tuple[CertificateSummary, ...], renew: str, log: Log, now: datetime
) -> None:
    for summary in kept:
        if summary.not_before > now:
            log.warn(
                f"{summary.describe()} is not valid until {summary.not_before:%Y-%m-%d}: "
                "chains that need it fail until then."
            )
        elif summary.days_left(now) < EXPIRY_WARNING_DAYS:
            days = summary.days_left(now)
            when = _plural(days, "day") if days else "less than a day"
            log.warn(f"{summary.describe()} expires in {when}. {renew}")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _short(digest: str) -> str:
    return f"{digest[:4]}…{digest[-4:]}"


def _on_date(timestamp: str | None) -> str:
    return f" on {timestamp[:10]}" if timestamp else ""
