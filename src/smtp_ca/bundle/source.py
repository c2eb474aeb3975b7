"""Reading the bundle's source, SMTP_CA_BUNDLE_URL, and checking its pin.

An https:// source is downloaded (``net.http``), conditionally when an earlier build cached it; a
file:// source is read. When the source cannot be read, the copy an earlier build cached stands
in, its pin checked again; the default source may be left out altogether (``Missing``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.settings import (
    DEFAULT_BUNDLE_ADDS,
    FETCH_TIMEOUT_VARIABLE,
    MAX_BUNDLE_BYTES,
    PIN_VARIABLE,
    URL_VARIABLE,
    BundleSettings,
)
from smtp_ca.bundle.store import CachedSource, SourceCache
from smtp_ca.errors import BuildError
from smtp_ca.net import http as fetch
from smtp_ca.output import Log
from smtp_ca.settings.ca import check_bundle_url

if TYPE_CHECKING:
    from smtp_ca.net.retry import RetryNote


@dataclass(frozen=True)
class Source:
    data: bytes
    sha256: str
    origin: str  # "network", "not-modified", "cache" or "file"
    display: str  # the URL or path, safe to print
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str | None = None
    fallback_reason: str | None = None


@dataclass(frozen=True)
class Missing:
    """The default source, left out: it could not be downloaded and no build cached it."""

    reason: str


def read_source(settings: BundleSettings, cache: SourceCache, log: Log) -> Source | Missing:
    """The source's bytes, or the copy ``cache`` holds standing in for them."""
    assert settings.url is not None
    # Settings checked the URL already; BundleSettings made another way gets the same rule.
    if check_bundle_url(settings.url) == "file":
        try:
            return _read_file(settings.url, settings.timeout)
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
        download = _download(settings, usable, display, log)
    except fetch.Unavailable as problem:
        if usable is None:
            if cached is None and settings.may_go_without:
                _warn_going_without(display, problem.reason, log)
                return Missing(problem.reason)
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
        return Source(
            usable.data,
            usable.sha256,
            "not-modified",
            display,
            download.etag or usable.etag,
            download.last_modified or usable.last_modified,
            usable.fetched_at,
        )
    return Source(
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


def _stand_in(cached: CachedSource, display: str, reason: str) -> Source:
    """The cached copy, standing in for a source that cannot be read this time."""
    return Source(
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


def _read_file(url: str, timeout: float) -> Source:
    try:
        data, path = fetch.read_file_url(url, MAX_BUNDLE_BYTES, timeout)
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
    return Source(data, hashlib.sha256(data).hexdigest(), "file", str(path), fetched_at=_now_text())


def _download(
    settings: BundleSettings, cached: CachedSource | None, display: str, log: Log
) -> fetch.Fetched:
    """The https:// download; ``net.http.Unavailable`` when a cached copy may stand in.
    ``display``: the URL as the log shows it."""
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

    def retrying(note: RetryNote) -> None:
        log.info(
            f"Attempt {note.attempt} of {note.attempts} to download {display} failed "
            f"({note.reason}); trying again in {fetch.seconds(note.wait)} s."
        )

    try:
        # The user and password written in SMTP_CA_BUNDLE_URL, if any, are the bundle's only
        # credentials: never the machine's .netrc (see smtp_ca.net.credentials).
        return fetch.fetch_url(
            settings.url or "",
            limits,
            log.redact,
            validators=validators,
            on_retry=retrying,
            credentials="url",
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


def check_pin(settings: BundleSettings, source: Source) -> None:
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


def _on_date(timestamp: str | None) -> str:
    return f" on {timestamp[:10]}" if timestamp else ""
