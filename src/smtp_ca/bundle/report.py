"""What the bundle stage says in the build log: where each input came from, what validating
it found, the certificates that expire soon, and the total."""

from __future__ import annotations

from datetime import datetime

from smtp_ca.bundle.certificates import CertificateSummary
from smtp_ca.bundle.settings import (
    CERTS_VARIABLE,
    EXPIRY_WARNING_DAYS,
    PIN_VARIABLE,
    PUBLIC_ROOTS_VARIABLE,
    URL_VARIABLE,
    BundleSettings,
)
from smtp_ca.bundle.source import Source
from smtp_ca.bundle.store import Merged, Part
from smtp_ca.output import Log
from smtp_ca.untrusted import at_most


def report(
    settings: BundleSettings, source: Source | None, merged: Merged, log: Log, now: datetime
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
            f"{plural(total, 'certificate')} in all"
        )
    else:
        already = (
            f" ({merged.public_duplicates} already in the bundle)"
            if merged.public_duplicates
            else ""
        )
        log.info(
            f"Merged with {plural(merged.public_root_count, 'public root')} from certifi "
            f"{merged.certifi_version}{already}: {plural(total, 'certificate')}"
        )


def _report_source(
    settings: BundleSettings, source: Source, part: Part, log: Log, now: datetime
) -> None:
    kept = len(part.kept)
    if kept == part.certificate_count:
        count = plural(kept, "certificate")
    else:
        count = f"{kept} of {plural(part.certificate_count, 'certificate')} kept"
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
    log.info(f"Added {plural(len(part.kept), 'certificate')} from {CERTS_VARIABLE}:")
    for summary in part.kept:
        log.info(f"  {summary.display_name} (not after {summary.not_after:%Y-%m-%d})")
    _report_checks(part, f" from {CERTS_VARIABLE}", log)
    _warn_about_dates(part.kept, f"Put its successor in {CERTS_VARIABLE} before then.", log, now)


def _report_checks(part: Part, source: str, log: Log) -> None:
    """What validating one input found: notes, warnings, and each certificate left out of it
    (``source`` says which input, for the inputs after the first); the first few of each, and
    how many more: a bundle of thousands of odd blocks must not make a log of thousands of
    lines."""
    for notice in at_most(part.notices):
        log.info(notice)
    for warning in at_most(part.warnings):
        log.warn(warning)
    left_out = [f"{item.certificate.describe()}{source}: {item.reason}." for item in part.left_out]
    for line in at_most(left_out):
        log.warn(f"Left out {line}")


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
            when = plural(days, "day") if days else "less than a day"
            log.warn(f"{summary.describe()} expires in {when}. {renew}")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _short(digest: str) -> str:
    return f"{digest[:4]}…{digest[-4:]}"
