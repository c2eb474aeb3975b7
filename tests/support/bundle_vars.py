"""The config vars that point a build at a CA bundle and pin it, which many tests set."""

from __future__ import annotations

import hashlib


def pinned_bundle_vars(url: str, body: bytes) -> dict[str, str]:
    """SMTP_CA_BUNDLE_URL at ``url``, and SMTP_CA_BUNDLE_SHA256 pinning ``body``, the bundle
    that ``url`` serves."""
    return {
        "SMTP_CA_BUNDLE_URL": url,
        "SMTP_CA_BUNDLE_SHA256": hashlib.sha256(body).hexdigest(),
    }
