"""Fix texts a failed check names that are more than one fixed string: how to give the build a
CA certificate of one's own (several causes name it), the fix for an unknown issuer (which store
holds the missing certificate decides it), and the TLS-mode hint (SMTP_TLS on or off)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smtp_ca.check.chain import Trusted
    from smtp_ca.check.smtp_session import CheckTarget

# How a user gives the build a CA certificate of their own (a private relay's, a self-signed
# server's): a config var, no file to host.
SET_CA_CERTS = 'heroku config:set SMTP_CA_CERTS="$(cat ca.pem)"'


def unknown_issuer_fix(
    public: Trusted | None, system: Trusted | None, missing: str, *, leaf_alone: bool
) -> str:
    """The fix for an unknown issuer: the public roots if they hold it, else the system
    store's certificate in a bundle of the user's, else the provider's bundle. ``leaf_alone``:
    the server sent only its own certificate, so its intermediate may be all that is missing."""
    if public is not None:
        return (
            "Set SMTP_CA_PUBLIC_ROOTS=true (heroku config:set SMTP_CA_PUBLIC_ROOTS=true) so "
            f"the bundle holds certifi's public roots, {public.name} among them; or point "
            f"SMTP_CA_BUNDLE_URL at a bundle that holds {public.name}."
        )
    if system is not None:
        return (
            f"The app does not use the system store once SMTP_CA_FILE names the bundle: put "
            f"{system.name} in SMTP_CA_CERTS ({SET_CA_CERTS})."
        )
    hint = (
        f"Ask the mail provider for its CA bundle (the one that holds {missing}), point "
        "SMTP_CA_BUNDLE_URL at it and set SMTP_CA_BUNDLE_SHA256 (sha256sum FILE); or, for "
        f"a private CA, put its certificate in SMTP_CA_CERTS ({SET_CA_CERTS})."
    )
    if leaf_alone:
        hint += " Or ask the provider to send its intermediate certificate."
    return hint


def mode_hint(target: CheckTarget) -> str:
    naming = target.naming
    if target.implicit_tls:
        return (
            f"Check {naming.port}: TLS from the first byte ({naming.tls_on}) is usually port 465."
        )
    return f"Check {naming.port} and {naming.tls}: port 465 usually wants {naming.tls_on}."
