"""Failures before any certificate was judged: a TLS handshake that failed (an old TLS version,
bytes that are not TLS), and a connection or SMTP conversation that never reached TLS."""

from __future__ import annotations

import socket
import ssl

from smtp_ca.check.hints import mode_hint
from smtp_ca.check.outcome import CheckOutcome, where_of
from smtp_ca.check.smtp_session import (
    CheckTarget,
    NoStartTlsError,
    Progress,
    ReplyPastCap,
    SmtpProtocolError,
    legacy_probe_context,
    open_tls,
)
from smtp_ca.net.deadline import Deadline

# OpenSSL's reasons for a server that speaks only TLS older than the client's minimum.
_OLD_TLS_REASONS = {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"}
# ... and for bytes that are not TLS at all (an SMTP greeting where a ServerHello should be).
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
# ... and for a handshake message past OpenSSL's limit: in practice the Certificate message,
# whose limit (max_cert_list) is 100 KiB by default, in Python's OpenSSL and in Ruby's alike.
_OVERSIZED_REASONS = {"EXCESSIVE_MESSAGE_SIZE"}
# What the legacy probe may learn; anything else means the probe taught nothing.
_LEGACY_VERSIONS = ("TLSv1", "TLSv1.1", "SSLv3")


# --- TLS that never got to certificates ---------------------------------------------------------


def tls_failure(target: CheckTarget, error: ssl.SSLError, deadline: Deadline) -> CheckOutcome:
    """Names a TLS handshake that failed before any certificate was judged."""
    where = where_of(target)
    reason = error.reason or error.__class__.__name__
    if reason in _OVERSIZED_REASONS:
        return _oversized(target, reason)
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
            hint=mode_hint(target),
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
            hint=mode_hint(target),
        )
    return CheckOutcome(
        cause="tls",
        summary=f"{where}: the TLS handshake failed ({reason}).",
        hint=mode_hint(target),
    )


def _oversized(target: CheckTarget, reason: str) -> CheckOutcome:
    """The server spoke TLS, on the right port in the right mode, and sent more than OpenSSL
    takes: the port and the TLS mode are not the problem, and the app's OpenSSL, with the same
    limit, fails the same way."""
    return CheckOutcome(
        cause="oversized",
        summary=(
            f"{where_of(target)}: the server sent a TLS handshake message larger than OpenSSL "
            f"accepts ({reason}): its certificate chain is over 100 KiB, such as a certificate "
            "with thousands of names. The app's OpenSSL refuses it the same way, so its mail "
            "fails too."
        ),
        hint="Only the mail provider can fix this: ask them for a certificate with fewer names, "
        "or for the host name of a server whose certificate is its own. Another port or TLS "
        "mode does not help.",
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
