"""Why a check failed, in words that say what to change: the check's diagnosis.

OpenSSL's verdict names one error code. Given the chain the server presented (read in a second
handshake that verifies nothing), this module says which certificate is at fault, whether
certifi's roots or the system store would anchor the chain, and what else is wrong that the
next build would otherwise reveal. It also names TLS and transport failures that never got as
far as certificates.

The check's flow (handshakes, AIA completion, revocation) is ``flow``; everything here works
on what the flow hands it, through a ``Context``. The one exception is the legacy-version probe
of ``tls_failure``, a handshake whose only purpose is to name the failure.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.certificates import SYSTEM_STORE, fingerprint_sha256, readable_name
from smtp_ca.check.chain import (
    Store,
    Trusted,
    day,
    describe,
    describe_chain,
    host_names,
    is_ip_address,
    load_store,
    presented_path,
    proven_self_signed,
    short_sha256,
)
from smtp_ca.check.outcome import Cause, CheckOutcome, where_of
from smtp_ca.check.smtp_session import (
    CheckTarget,
    NoStartTlsError,
    Progress,
    ReplyPastCap,
    SmtpProtocolError,
    legacy_probe_context,
    open_tls,
)
from smtp_ca.deadline import Deadline
from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    from cryptography import x509

    from smtp_ca.check.aia import Completion

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code reports them.
_UNKNOWN_ISSUER_CODES = {2, 20, 21}
_EXPIRED = 10
_NOT_YET_VALID = 9
_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19  # the server sent a root the bundle does not hold: an unknown issuer
_REVOKED = 23
_NAME_MISMATCH_CODES = {62, 64}

# OpenSSL's reasons for a server that speaks only TLS older than the client's minimum.
_OLD_TLS_REASONS = {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"}
# ... and for bytes that are not TLS at all (an SMTP greeting where a ServerHello should be).
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
# What the legacy probe may learn; anything else means the probe taught nothing.
_LEGACY_VERSIONS = ("TLSv1", "TLSv1.1", "SSLv3")

# How a user gives the build a CA certificate of their own (a private relay's, a self-signed
# server's): a config var, no file to host.
_SET_CA_CERTS = 'heroku config:set SMTP_CA_CERTS="$(cat ca.pem)"'


@dataclass(frozen=True)
class TrustStores:
    """The stores a failed check compares the bundle with. They are never trusted by the check
    itself; they only let the report say which setting would fix an unknown issuer."""

    public_roots: Path | None = None  # None: certifi's cacert.pem, when certifi is installed
    system: Path | None = SYSTEM_STORE


@dataclass(frozen=True)
class Context:
    """What the diagnosis of a refused chain needs to know about the check that was refused."""

    target: CheckTarget
    bundle: Store  # the bundle the check trusted
    stores: TrustStores
    now: datetime

    @property
    def where(self) -> str:
        return where_of(self.target)


# --- a chain OpenSSL refused --------------------------------------------------------------------


def is_unknown_issuer(error: ssl.SSLCertVerificationError) -> bool:
    """Whether OpenSSL found no issuer for the chain in the bundle: the one failure that
    fetching the server's missing intermediate through AIA may fix."""
    return error.verify_code in _UNKNOWN_ISSUER_CODES or error.verify_code == _SELF_SIGNED_IN_CHAIN


def diagnose(
    context: Context,
    error: ssl.SSLCertVerificationError,
    presented: list[x509.Certificate],
    notes: list[str],
    *,
    fetched: Completion | None = None,
) -> CheckOutcome:
    """Names why OpenSSL refused the chain ``presented`` (empty when it could not be read;
    ``notes`` then say why). ``fetched``: the intermediates fetched through AIA, when the chain
    reached the bundle with them and ``error`` is what failed then."""
    code = error.verify_code
    if not presented:
        outcome = generic_verify_failure(context.target, error)
        return _with(outcome, details=(*notes, *outcome.details))
    if is_unknown_issuer(error):
        return unknown_issuer(context, error, presented, notes, None)
    if fetched is not None:
        names = ", ".join(readable_name(item.cert.subject) for item in fetched.fetched)
        notes = [
            *notes,
            f"The server does not send its intermediate {names}. With it, fetched through "
            "AIA, the chain reaches the bundle; what is left is the failure above.",
        ]
    if code == _SELF_SIGNED:
        outcome = _self_signed(context, error, presented)
    elif code in (_EXPIRED, _NOT_YET_VALID):
        outcome = _dates(context, error, presented, expired=code == _EXPIRED)
    elif code in _NAME_MISMATCH_CODES:
        outcome = _name_mismatch(context, error, presented)
    else:
        outcome = generic_verify_failure(context.target, error)
    chain_lines = tuple(describe_chain(presented))
    others = _other_problems(context, presented, outcome.cause)
    return _with(
        outcome,
        details=(
            *outcome.details,
            *notes,
            *others,
            "The server presented:",
            *chain_lines,
        ),
        chain=chain_lines,
    )


def unknown_issuer(
    context: Context,
    error: ssl.SSLCertVerificationError,
    presented: list[x509.Certificate],
    notes: list[str],
    completion: Completion | None,
) -> CheckOutcome:
    """No certificate of the bundle anchors ``presented``. ``completion``: what fetching the
    missing issuers through AIA found, when the check tried and it did not reach the bundle."""
    path = presented_path(presented)
    top = path[-1]
    reach, completion_notes = _reach(path, completion)
    details: list[str] = []
    notes = [*notes, *completion_notes]

    missing = readable_name(reach.issuer)
    if proven_self_signed(top):
        details.append(
            f"The server's chain ends at the root {readable_name(top.subject)}, which the "
            "bundle does not hold."
        )
    else:
        details.append(
            f"The chain the server sent ends at {readable_name(top.subject)}, issued by "
            f"{missing}: the bundle holds no {missing}."
        )
        if len(path) == 1:
            details.append(
                "The server sent only its own certificate: it may be missing its "
                "intermediate certificate."
            )
    details.extend(notes)
    public, system = _other_stores(context, reach)
    system_label = str(context.stores.system or SYSTEM_STORE)
    if public is not None:
        details.append(f"certifi's public roots would verify it: they hold {public.name}.")
    if system is not None:
        details.append(
            f"The system store ({system_label}) would verify it: it holds {system.name}."
        )
    if public is None and system is None:
        details.append(
            f"Neither certifi's public roots nor the system store ({system_label}) "
            f"would verify it either: neither holds {missing}."
        )
    chain_lines = tuple(describe_chain(presented))
    details.extend(_other_problems(context, presented, "unknown-issuer"))
    details.extend(["The server presented:", *chain_lines])

    return CheckOutcome(
        cause="unknown-issuer",
        summary=(
            f"{context.where}: certificate verify failed: no certificate in the bundle anchors the "
            f"server's chain ({_message(error)})."
        ),
        details=tuple(details),
        hint=_unknown_issuer_fix(
            public, system, missing, leaf_alone=len(path) == 1 and not proven_self_signed(top)
        ),
        chain=chain_lines,
    )


def _reach(
    path: list[x509.Certificate], completion: Completion | None
) -> tuple[x509.Certificate, list[str]]:
    """How far the chain reaches: the top of what the server sent, or of what AIA fetched on
    top of it; and what fetching noted on the way."""
    if completion is None:
        return path[-1], []
    # That a CA certificate names no caIssuers URL is normal; worth saying only when the
    # server sent its leaf alone, where the URL was the way to the intermediate.
    notes = [
        note
        for note in completion.notes
        if len(path) == 1 or "names no http:// caIssuers URL" not in note
    ]
    reach = completion.fetched[-1].cert if completion.fetched else path[-1]
    return reach, notes


def _unknown_issuer_fix(
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
            f"{system.name} in SMTP_CA_CERTS ({_SET_CA_CERTS})."
        )
    hint = (
        f"Ask the mail provider for its CA bundle (the one that holds {missing}), point "
        "SMTP_CA_BUNDLE_URL at it and set SMTP_CA_BUNDLE_SHA256 (sha256sum FILE); or, for "
        f"a private CA, put its certificate in SMTP_CA_CERTS ({_SET_CA_CERTS})."
    )
    if leaf_alone:
        hint += " Or ask the provider to send its intermediate certificate."
    return hint


def _other_stores(context: Context, top: x509.Certificate) -> tuple[Trusted | None, Trusted | None]:
    """The certificate of certifi's roots, and of the system store, that anchors ``top``."""
    public_path = context.stores.public_roots
    if public_path is None:
        try:
            import certifi

            public_path = Path(certifi.where())
        except ImportError:
            public_path = None
    public = load_store(public_path, "certifi")
    system = load_store(context.stores.system, "the system store")
    return (
        public.anchor_for(top) if public else None,
        system.anchor_for(top) if system else None,
    )


def _self_signed(
    context: Context, error: ssl.SSLCertVerificationError, presented: list[x509.Certificate]
) -> CheckOutcome:
    leaf = presented[0]
    return CheckOutcome(
        cause="self-signed",
        summary=(
            f"{context.where}: the server presents a self-signed certificate, "
            f"{readable_name(leaf.subject)} ({_message(error)})."
        ),
        details=(
            f"It signed itself: {describe(leaf)}; SHA-256 "
            f"{short_sha256(fingerprint_sha256(leaf))}. No CA vouches for it.",
        ),
        hint="Put that server's own certificate (or its CA's) in SMTP_CA_CERTS "
        f"({_SET_CA_CERTS}). Better: ask the provider for a certificate from a public CA.",
    )


def _dates(
    context: Context,
    error: ssl.SSLCertVerificationError,
    presented: list[x509.Certificate],
    *,
    expired: bool,
) -> CheckOutcome:
    path = presented_path(presented)
    anchor = context.bundle.anchor_for(path[-1])
    candidates: list[tuple[x509.Certificate, str]] = [
        (cert, "the server's certificate" if number == 0 else "the intermediate")
        for number, cert in enumerate(path)
    ]
    if anchor is not None and anchor.cert is not None:
        candidates.append((anchor.cert, "the bundle's anchor"))

    def out_of_date(cert: x509.Certificate) -> bool:
        if expired:
            return cert.not_valid_after_utc < context.now
        return cert.not_valid_before_utc > context.now

    found = [(cert, role) for cert, role in candidates if out_of_date(cert)]
    cert, role = found[0] if found else (path[0], "the server's certificate")
    name = readable_name(cert.subject)
    if expired:
        summary = (
            f"{context.where}: {role}, {name}, expired on {day(cert.not_valid_after_utc)} "
            f"({_message(error)})."
        )
        hint = (
            "Only the mail provider can fix this: ask them to renew the certificate. Do not "
            "switch SMTP_OPENSSL_VERIFY_MODE to none."
        )
        if role == "the bundle's anchor":
            hint = (
                f"{name} in the bundle has expired: point SMTP_CA_BUNDLE_URL at the "
                "provider's current CA bundle and update SMTP_CA_BUNDLE_SHA256."
            )
        return CheckOutcome(
            cause="expired",
            summary=summary,
            details=(
                f"It was valid from {day(cert.not_valid_before_utc)} to "
                f"{day(cert.not_valid_after_utc)}; it is now {day(context.now)}.",
            ),
            hint=hint,
        )
    return CheckOutcome(
        cause="not-yet-valid",
        summary=(
            f"{context.where}: {role}, {name}, is not valid until "
            f"{day(cert.not_valid_before_utc)} ({_message(error)})."
        ),
        details=(f"The build machine's clock says it is {day(context.now)}.",),
        hint="Check the clock of the build machine, or ask the provider: the certificate was "
        "installed before its start date.",
    )


def _name_mismatch(
    context: Context, error: ssl.SSLCertVerificationError, presented: list[x509.Certificate]
) -> CheckOutcome:
    names = host_names(presented[0])
    host, naming = context.target.host, context.target.naming
    details = [f"The certificate holds: {shown(', '.join(names)) if names else 'no names at all'}."]
    if is_ip_address(host):
        details.append(
            f"{naming.server} is an IP address: the mail gem checks it against the IP "
            "addresses the certificate holds, not against its host names."
        )
    suggestion = next((name for name in names if not name.startswith("*")), None)
    hint = f"{naming.use_server} a name the certificate holds (the host name the provider "
    hint += "documents), not an alias or an IP address"
    hint += f": {naming.command_using(suggestion)}" if suggestion else "."
    return CheckOutcome(
        cause="hostname-mismatch",
        summary=(
            f"{context.where}: the certificate's names do not cover {naming.server_set_to(host)} "
            f"({_message(error)})."
        ),
        details=tuple(details),
        hint=hint,
    )


def _other_problems(context: Context, presented: list[x509.Certificate], cause: Cause) -> list[str]:
    """What else is wrong with the server's certificate: OpenSSL stops at the first error,
    and fixing one cause should not reveal the next only at the next build."""
    leaf = presented[0]
    problems: list[str] = []
    if cause != "expired" and leaf.not_valid_after_utc < context.now:
        problems.append(
            f"Also: the server's certificate expired on {day(leaf.not_valid_after_utc)}."
        )
    if cause != "not-yet-valid" and leaf.not_valid_before_utc > context.now:
        problems.append(
            f"Also: the server's certificate is not valid until {day(leaf.not_valid_before_utc)}."
        )
    if cause not in ("hostname-mismatch", "self-signed") and not _covers(leaf, context.target.host):
        names = shown(", ".join(host_names(leaf))) or "no names"
        problems.append(
            f"Also: the certificate's names ({names}) do not cover "
            f"{context.target.naming.server_set_to(context.target.host)}."
        )
    return problems


def generic_verify_failure(
    target: CheckTarget, error: ssl.SSLCertVerificationError
) -> CheckOutcome:
    """OpenSSL's verdict alone, named as well as it names itself: when nothing more is known."""
    code = error.verify_code
    message = _message(error)
    where = where_of(target)
    if code in _UNKNOWN_ISSUER_CODES or code == _SELF_SIGNED_IN_CHAIN:
        return CheckOutcome(
            cause="unknown-issuer",
            summary=(
                f"{where}: certificate verify failed: no certificate in the bundle anchors the "
                f"server's chain ({message})."
            ),
            hint="Point SMTP_CA_BUNDLE_URL at your provider's CA bundle (and set "
            "SMTP_CA_BUNDLE_SHA256), or keep SMTP_CA_PUBLIC_ROOTS=true if you turned it off.",
        )
    if code == _EXPIRED:
        return CheckOutcome(
            cause="expired",
            summary=f"{where}: a certificate in the server's chain has expired ({message}).",
            hint="Only the mail provider can fix this: ask them to renew the certificate. "
            "Do not switch SMTP_OPENSSL_VERIFY_MODE to none.",
        )
    if code == _NOT_YET_VALID:
        return CheckOutcome(
            cause="not-yet-valid",
            summary=f"{where}: the server's certificate is not valid yet ({message}).",
            hint="Check the clock of the build machine, or ask the provider.",
        )
    if code == _SELF_SIGNED:
        return CheckOutcome(
            cause="self-signed",
            summary=f"{where}: the server presents a self-signed certificate ({message}).",
            hint=f"Put that server's own CA certificate in SMTP_CA_CERTS ({_SET_CA_CERTS}).",
        )
    if code == _REVOKED:
        return CheckOutcome(
            cause="revoked",
            summary=f"{where}: the server's certificate has been revoked ({message}).",
            hint="Only the mail provider can fix this: ask them to replace the certificate.",
        )
    if code in _NAME_MISMATCH_CODES:
        return CheckOutcome(
            cause="hostname-mismatch",
            summary=(
                f"{where}: the certificate's names do not cover "
                f"{target.naming.server_set_to(target.host)} ({message})."
            ),
            hint=f"{target.naming.use_server} the host name the provider documents, not an alias.",
        )
    return CheckOutcome(
        cause="verify-failed",
        summary=f"{where}: certificate verify failed ({message}, OpenSSL code {code}).",
        hint="Run bin/check HOST:PORT from this buildpack for the full chain, and ask the "
        "provider about this error.",
    )


# --- TLS that never got to certificates ---------------------------------------------------------


def tls_failure(target: CheckTarget, error: ssl.SSLError, deadline: Deadline) -> CheckOutcome:
    """Names a TLS handshake that failed before any certificate was judged."""
    where = where_of(target)
    reason = error.reason or error.__class__.__name__
    closed = isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    if closed or reason in _OLD_TLS_REASONS:
        # Some servers refuse a TLS 1.2+ hello by hanging up instead of with an alert: a
        # handshake that accepts old versions tells which one they speak.
        version = _probe_legacy_version(target, deadline)
        if version is not None or not closed:
            return _old_tls(target, version, None if closed else reason)
    if closed:
        return CheckOutcome(
            cause="tls",
            summary=f"{where}: the server closed the connection during the TLS handshake.",
            hint=_mode_hint(target),
        )
    if reason in _NOT_TLS_REASONS:
        if target.implicit_tls:
            return CheckOutcome(
                cause="tls",
                summary=(
                    f"{where}: the server did not answer in TLS ({reason}): this port "
                    "speaks plain SMTP first, and wants STARTTLS."
                ),
                hint=f"{target.naming.use_starttls} to use STARTTLS on this port, or "
                f"{target.naming.use_port_465} for TLS from the first byte.",
            )
        return CheckOutcome(
            cause="tls",
            summary=f"{where}: the server answered STARTTLS but then did not speak TLS ({reason}).",
            hint=_mode_hint(target),
        )
    return CheckOutcome(
        cause="tls",
        summary=f"{where}: the TLS handshake failed ({reason}).",
        hint=_mode_hint(target),
    )


def _old_tls(target: CheckTarget, version: str | None, reason: str | None) -> CheckOutcome:
    where = where_of(target)
    spoken = f"only {version}" if version else "only TLS older than 1.2"
    return CheckOutcome(
        cause="old-tls",
        summary=(
            f"{where}: the server speaks {spoken}; the check and the app's OpenSSL "
            f"require TLS 1.2 or later{f' ({reason})' if reason else ''}."
        ),
        hint="Only the mail provider can fix this: ask them for TLS 1.2 or 1.3, or use "
        "the host and port they document for it. Do not work around it: TLS 1.0 and 1.1 "
        "are broken.",
        tls_version=version,
    )


def _probe_legacy_version(target: CheckTarget, deadline: Deadline) -> str | None:
    try:
        tls = open_tls(target, legacy_probe_context(), deadline, Progress())
    except (OSError, SmtpProtocolError):
        return None
    with tls:
        version = tls.version()
    return version if version in _LEGACY_VERSIONS else None


# --- no TLS at all ------------------------------------------------------------------------------


def transport_failure(
    target: CheckTarget, error: OSError | SmtpProtocolError, stage: str
) -> CheckOutcome:
    where, naming = where_of(target), target.naming
    if isinstance(error, NoStartTlsError):
        return CheckOutcome(
            cause="no-starttls",
            summary=(
                f"{where}: the server does not offer STARTTLS, so mail would go unencrypted and "
                "nothing can be verified."
            ),
            hint=f"Check {naming.server} and {naming.port} (587 is the usual STARTTLS port); "
            f"for TLS from the first byte (port 465) {naming.use_implicit_tls}.",
        )
    if isinstance(error, ReplyPastCap):
        return CheckOutcome(
            cause="smtp",
            summary=f"{where}: {error}.",
            hint="A mail server's replies are a few short lines; this one did not stop. Check "
            f"that {naming.server} and {naming.port} name your provider's mail server, and ask "
            "the provider if they do.",
        )
    if isinstance(error, SmtpProtocolError):
        return CheckOutcome(
            cause="smtp",
            summary=f"{where}: {error}.",
            hint=f"Check {naming.server} and {naming.port}, and {naming.tls} for port 465.",
        )
    if isinstance(error, TimeoutError):
        hint = f"Check {naming.server} and {naming.port} (a firewall may drop the connection), "
        hint += f"or raise {naming.timeout}."
        if stage == "waiting for the SMTP greeting" and not target.implicit_tls:
            hint = (
                "A server that says nothing after the connection may expect TLS from the first "
                f"byte (port 465 usually does): {naming.use_implicit_tls}. Otherwise "
                + hint[0].lower()
            ) + hint[1:]
        return CheckOutcome(
            cause="timeout",
            summary=f"{where}: no answer within {target.timeout:g} s ({stage}).",
            hint=hint,
        )
    if isinstance(error, ConnectionRefusedError):
        return CheckOutcome(
            cause="refused",
            summary=f"{where}: connection refused.",
            hint=f"Check {naming.port}: SendGrid and most providers take 587 (STARTTLS) or 465 "
            "(TLS).",
        )
    if isinstance(error, socket.gaierror):
        return CheckOutcome(
            cause="dns",
            summary=f"{where}: the host name does not resolve ({error.strerror}).",
            # Offline, every name fails so: a typo is not the only cause worth a word.
            hint=f"Check {naming.server} for a typo. If it has none, this machine may have no "
            "DNS or no network.",
        )
    return CheckOutcome(
        cause="network",
        summary=f"{where}: {error.strerror or error.__class__.__name__} ({stage}).",
        hint=f"Check {naming.server} and {naming.port}.",
    )


# --- helpers ------------------------------------------------------------------------------------


def _covers(cert: x509.Certificate, host: str) -> bool:
    """Whether ``cert`` names ``host``, the way OpenSSL's host check (and the mail gem) does."""
    names = host_names(cert)
    host = host.lower().rstrip(".")
    if is_ip_address(host):
        wanted = ipaddress.ip_address(host)
        return any(is_ip_address(name) and ipaddress.ip_address(name) == wanted for name in names)
    for name in (name.lower().rstrip(".") for name in names):
        if name == host:
            return True
        # A wildcard covers exactly one leftmost label.
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _with(
    outcome: CheckOutcome, *, details: tuple[str, ...], chain: tuple[str, ...] | None = None
) -> CheckOutcome:
    return dataclasses.replace(
        outcome, details=details, chain=outcome.chain if chain is None else chain
    )


def _message(error: ssl.SSLCertVerificationError) -> str:
    """OpenSSL's words, to quote in parentheses: "Hostname mismatch, ... for 'x'." ends in a
    period of its own."""
    return str(error.verify_message or "").rstrip(".")


def _mode_hint(target: CheckTarget) -> str:
    naming = target.naming
    if target.implicit_tls:
        return (
            f"Check {naming.port}: TLS from the first byte ({naming.tls_on}) is usually port 465."
        )
    return f"Check {naming.port} and {naming.tls}: port 465 usually wants {naming.tls_on}."
