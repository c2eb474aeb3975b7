"""What the bundle is made of, as the config vars say: ``BundleSettings`` and the names of
the variables the bundle stage's messages quote."""

from __future__ import annotations

from dataclasses import dataclass

from smtp_ca.settings.load import Settings

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
