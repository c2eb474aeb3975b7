"""The settings of the CA bundle's source: SMTP_CA_BUNDLE_URL and its pin, SMTP_CA_BUNDLE_SHA256.

Stdlib only, like ``load``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from smtp_ca.errors import BuildError

DEFAULT_BUNDLE_URL = "https://certs.godaddy.com/repository/gd_bundle-g2-g1.crt"
DEFAULT_BUNDLE_SHA256 = "0aa4014e6a34e2553b6258c671946620a44e03aedf0fde497781fe8a6abfd858"
# SMTP_CA_BUNDLE_URL=none: no download; the bundle is SMTP_CA_CERTS and the public roots.
NO_BUNDLE_URL = "none"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def refuse_empty_bundle(url: str | None, public_roots: bool, certs: str | None) -> None:
    """A ``BuildError`` when no input is left to put a certificate in the bundle. The one
    wording of that rule: the bundle stage asks here too, for settings made another way."""
    if url is None and not public_roots and certs is None:
        raise BuildError(
            "The CA bundle would be empty: SMTP_CA_BUNDLE_URL=none downloads nothing, "
            "SMTP_CA_PUBLIC_ROOTS=false adds no public roots, and SMTP_CA_CERTS is not set.",
            hint='Put your CA certificates in SMTP_CA_CERTS: heroku config:set SMTP_CA_CERTS="$('
            'cat relay-ca.pem)". Or unset SMTP_CA_PUBLIC_ROOTS or SMTP_CA_BUNDLE_URL.',
        )


def is_default_bundle(url: str | None) -> bool:
    """Whether the bundle comes from the default source (GoDaddy's), not one the user set."""
    return url == DEFAULT_BUNDLE_URL


def bundle_source(variables: Mapping[str, str]) -> tuple[str | None, str | None, list[str]]:
    """SMTP_CA_BUNDLE_URL and its pin: (URL or None for none, pin or None, notices)."""
    url = variables.get("SMTP_CA_BUNDLE_URL", "").strip() or DEFAULT_BUNDLE_URL
    if url.lower() == NO_BUNDLE_URL:
        notices = []
        if variables.get("SMTP_CA_BUNDLE_SHA256", "").strip():
            notices.append(
                "SMTP_CA_BUNDLE_SHA256 is set, but SMTP_CA_BUNDLE_URL=none: nothing is "
                "downloaded, so the pin checks nothing. Unset it: "
                "heroku config:unset SMTP_CA_BUNDLE_SHA256"
            )
        return None, None, notices
    check_bundle_url(url)
    raw_pin = variables.get("SMTP_CA_BUNDLE_SHA256", "").strip()
    if raw_pin:
        pin = raw_pin.lower().removeprefix("sha256:")
        if not _SHA256_HEX.fullmatch(pin):
            raise BuildError(
                "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal digits (a SHA-256 digest); "
                f"it has {len(raw_pin)} characters.",
                hint="Compute it with: sha256sum ca-bundle.crt",
            )
        return url, pin, []
    return url, (DEFAULT_BUNDLE_SHA256 if url == DEFAULT_BUNDLE_URL else None), []


def check_bundle_url(url: str) -> str:
    """The scheme of an SMTP_CA_BUNDLE_URL, ``https`` or ``file``; a ``BuildError`` for
    anything else. The one wording of that rule: the bundle stage asks here too."""
    try:
        parts = urlsplit(url)
        scheme, hostname = parts.scheme.lower(), parts.hostname
    except ValueError:
        # An unbalanced [ in the host, for example: no URL library can read it.
        raise BuildError(
            "SMTP_CA_BUNDLE_URL is not a valid URL (its host part cannot be read).",
            hint=f"Use an https:// URL or a file:// path; unset it to use {DEFAULT_BUNDLE_URL}",
        ) from None
    if any(not character.isprintable() for character in url):
        raise BuildError(
            "SMTP_CA_BUNDLE_URL holds a control character (a line break or a tab, perhaps from "
            "a copy and paste).",
            hint="Set it again, as one line: heroku config:set SMTP_CA_BUNDLE_URL=https://...",
        )
    if scheme == "http":
        raise BuildError(
            "SMTP_CA_BUNDLE_URL uses http://, which anyone on the network path can rewrite: "
            "a CA bundle decides whom the app trusts, so it must come over https:// or from a "
            "file:// path.",
            hint="Use the https:// address of the bundle.",
        )
    if scheme not in ("https", "file") or (scheme == "https" and not hostname):
        raise BuildError(
            "SMTP_CA_BUNDLE_URL must be an https:// URL, a file:// path, or none.",
            hint=f"Unset it to use the default, {DEFAULT_BUNDLE_URL}",
        )
    return scheme
