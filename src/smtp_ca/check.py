"""The build-time proof: a real SMTP handshake that trusts only the bundle the build wrote.

It models the strictest Ruby client (old net/smtp, whose ``ca_file`` is its only trust): the
TLS context trusts nothing but ``ca_file`` and checks the host name against SMTP_SERVER, as the
mail gem does. Every step shares one deadline, so a silent server cannot hold the build longer
than the timeout.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code reports them.
_UNKNOWN_ISSUER_CODES = {2, 20, 21}
_EXPIRED = 10
_NOT_YET_VALID = 9
_SELF_SIGNED_CODES = {18, 19}
_REVOKED = 23
_NAME_MISMATCH_CODES = {62, 64}


@dataclass(frozen=True)
class CheckTarget:
    host: str
    port: int
    implicit_tls: bool = False
    timeout: float = 10.0


@dataclass(frozen=True)
class CheckOutcome:
    """What the check found. ``cause`` is a short stable name the tests and report key on."""

    verified: bool
    cause: str
    summary: str
    details: tuple[str, ...] = ()
    hint: str | None = None
    tls_version: str | None = None
    chain: tuple[str, ...] = field(default=())


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


class SmtpProtocolError(Exception):
    """The server answered, but not as an SMTP server that offers TLS would."""


class NoStartTlsError(SmtpProtocolError):
    def __init__(self) -> None:
        super().__init__("the server does not offer STARTTLS")


def _read_reply(sock: socket.socket | ssl.SSLSocket, deadline: _Deadline) -> tuple[int, list[str]]:
    buffer = b""
    lines: list[str] = []
    while True:
        while b"\n" not in buffer:
            sock.settimeout(deadline.remaining())
            chunk = sock.recv(4096)
            if not chunk:
                raise SmtpProtocolError("the server closed the connection")
            buffer += chunk
            if len(buffer) > 65536:
                raise SmtpProtocolError("the server sent an over-long reply")
        raw, buffer = buffer.split(b"\n", 1)
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if len(line) < 3 or not line[:3].isdigit():
            raise SmtpProtocolError(f"the server sent a reply that is not SMTP: {line[:60]!r}")
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), lines


def _command(
    sock: socket.socket | ssl.SSLSocket, deadline: _Deadline, command: str
) -> tuple[int, list[str]]:
    sock.settimeout(deadline.remaining())
    sock.sendall(command.encode("ascii") + b"\r\n")
    return _read_reply(sock, deadline)


def _expect_greeting(sock: socket.socket | ssl.SSLSocket, deadline: _Deadline) -> None:
    code, lines = _read_reply(sock, deadline)
    if code != 220:
        raise SmtpProtocolError(f"the greeting was {code} {' '.join(lines)[:80]}")


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Trust only ``ca_file`` (or nothing), check host names, refuse TLS older than 1.2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def open_tls(target: CheckTarget, context: ssl.SSLContext, deadline: _Deadline) -> ssl.SSLSocket:
    """Connects, speaks SMTP up to STARTTLS (unless TLS from the first byte), and handshakes."""
    sock = socket.create_connection((target.host, target.port), timeout=deadline.remaining())
    try:
        if not target.implicit_tls:
            _expect_greeting(sock, deadline)
            code, lines = _command(sock, deadline, "EHLO smtp-ca-check.invalid")
            if code != 250:
                raise SmtpProtocolError(f"EHLO was answered with {code}")
            if not any(line.upper().split(" ")[0] == "STARTTLS" for line in lines[1:]):
                raise NoStartTlsError
            code, lines = _command(sock, deadline, "STARTTLS")
            if code != 220:
                raise SmtpProtocolError(f"STARTTLS was answered with {code} {' '.join(lines)}")
        sock.settimeout(deadline.remaining())
        tls = context.wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise
    if target.implicit_tls:
        _expect_greeting(tls, deadline)
    return tls


def _names(rdns: object) -> dict[str, str]:
    """Flattens getpeercert()'s ((('commonName', 'x'),), ...) into {'commonName': 'x'}."""
    names: dict[str, str] = {}
    for rdn in rdns if isinstance(rdns, tuple) else ():
        for attribute in rdn:
            if isinstance(attribute, tuple) and len(attribute) == 2:
                names[str(attribute[0])] = str(attribute[1])
    return names


def _describe_peer(tls: ssl.SSLSocket) -> tuple[str, ...]:
    cert = tls.getpeercert() or {}
    subject = _names(cert.get("subject"))
    issuer = _names(cert.get("issuer"))
    return (
        f"Server certificate: {subject.get('commonName', '?')}, "
        f"issued by {issuer.get('commonName', issuer.get('organizationName', '?'))}, "
        f"valid until {cert.get('notAfter', '?')}",
    )


def _where(target: CheckTarget) -> str:
    mode = "TLS" if target.implicit_tls else "STARTTLS"
    return f"{target.host}:{target.port} ({mode})"


def _verification_failure(target: CheckTarget, error: ssl.SSLCertVerificationError) -> CheckOutcome:
    code = error.verify_code
    message = error.verify_message
    where = _where(target)
    if code in _UNKNOWN_ISSUER_CODES:
        return CheckOutcome(
            False,
            "unknown-issuer",
            f"{where}: certificate verify failed: the bundle has no CA certificate that "
            f"anchors the server's chain ({message}).",
            hint="Point SMTP_CA_BUNDLE_URL at your provider's CA bundle (and set "
            "SMTP_CA_BUNDLE_SHA256), or keep SMTP_CA_PUBLIC_ROOTS=true if you turned it off.",
        )
    if code == _EXPIRED:
        return CheckOutcome(
            False,
            "expired",
            f"{where}: the server's certificate has expired ({message}).",
            hint="Only the mail provider can fix this: ask them to renew the certificate. "
            "Do not switch SMTP_OPENSSL_VERIFY_MODE to none.",
        )
    if code == _NOT_YET_VALID:
        return CheckOutcome(
            False,
            "not-yet-valid",
            f"{where}: the server's certificate is not valid yet ({message}).",
            hint="Check the clock of the build machine, or ask the provider.",
        )
    if code in _SELF_SIGNED_CODES:
        return CheckOutcome(
            False,
            "self-signed",
            f"{where}: the server presents a self-signed certificate ({message}).",
            hint="Put that server's own CA certificate in a bundle and set SMTP_CA_BUNDLE_URL "
            "to it, with its SMTP_CA_BUNDLE_SHA256.",
        )
    if code == _REVOKED:
        return CheckOutcome(
            False,
            "revoked",
            f"{where}: the server's certificate has been revoked ({message}).",
            hint="Only the mail provider can fix this: ask them to replace the certificate.",
        )
    if code in _NAME_MISMATCH_CODES:
        return CheckOutcome(
            False,
            "hostname-mismatch",
            f"{where}: the certificate's names do not cover SMTP_SERVER={target.host} ({message}).",
            hint="Set SMTP_SERVER to the host name the provider documents, not an alias.",
        )
    return CheckOutcome(
        False,
        "verify-failed",
        f"{where}: certificate verify failed ({message}, code {code}).",
    )


def run_check(target: CheckTarget, ca_file: Path | None) -> CheckOutcome:
    """Handshakes with the SMTP server trusting only ``ca_file`` and says what happened."""
    deadline = _Deadline(target.timeout)
    where = _where(target)
    try:
        tls = open_tls(target, tls_context(ca_file), deadline)
    except ssl.SSLCertVerificationError as error:
        return _verification_failure(target, error)
    except NoStartTlsError:
        return CheckOutcome(
            False,
            "no-starttls",
            f"{where}: the server does not offer STARTTLS, so nothing can be verified.",
            hint="Check SMTP_SERVER and SMTP_PORT; for TLS from the first byte (port 465) set "
            "SMTP_TLS=true.",
        )
    except TimeoutError:
        return CheckOutcome(
            False,
            "timeout",
            f"{where}: no answer within {target.timeout:g} s.",
            hint="Check SMTP_SERVER and SMTP_PORT, or raise SMTP_CA_CHECK_TIMEOUT.",
        )
    except ConnectionRefusedError:
        return CheckOutcome(
            False,
            "refused",
            f"{where}: connection refused.",
            hint="Check SMTP_PORT: SendGrid and most providers take 587 (STARTTLS) or 465 (TLS).",
        )
    except socket.gaierror as error:
        return CheckOutcome(
            False,
            "dns",
            f"{where}: the host name does not resolve ({error.strerror}).",
            hint="Check SMTP_SERVER for a typo.",
        )
    except ssl.SSLError as error:
        reason = error.reason or error.__class__.__name__
        cause = "old-tls" if "VERSION" in reason.upper() or "PROTOCOL" in reason.upper() else "tls"
        return CheckOutcome(
            False,
            cause,
            f"{where}: the TLS handshake failed ({reason}).",
            hint="The server may only speak TLS older than 1.2, or the port may expect "
            "SMTP_TLS=true (TLS from the first byte)."
            if cause == "old-tls"
            else "Check SMTP_PORT and SMTP_TLS: port 465 usually wants SMTP_TLS=true.",
        )
    except SmtpProtocolError as error:
        return CheckOutcome(
            False,
            "smtp",
            f"{where}: {error}.",
            hint="Check SMTP_SERVER and SMTP_PORT, and SMTP_TLS for port 465.",
        )
    except OSError as error:
        return CheckOutcome(
            False,
            "network",
            f"{where}: {error.strerror or error.__class__.__name__}.",
            hint="Check SMTP_SERVER and SMTP_PORT.",
        )
    with tls:
        version = tls.version()
        details = _describe_peer(tls)
        # The proof is the handshake; a server that hangs up on QUIT changes nothing.
        with contextlib.suppress(OSError, SmtpProtocolError):
            _command(tls, deadline, "QUIT")
    return CheckOutcome(
        True,
        "verified",
        f"{where}: verified, {version}.",
        details=details,
        tls_version=version,
    )
