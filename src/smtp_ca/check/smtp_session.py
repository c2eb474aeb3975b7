"""Talking SMTP up to a TLS handshake, with one deadline over every step.

STARTTLS on a plain connection (greeting, EHLO, STARTTLS) or TLS from the first byte, the way
the mail gem does; the name lookup runs inside the deadline too, since a socket timeout does
not cover it. Nothing here judges certificates: that is the check's job (``flow``, ``diagnosis``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from smtp_ca.check.naming import CONFIG_VARS, Naming
from smtp_ca.net.deadline import Deadline, resolve_within
from smtp_ca.untrusted import shown

# Waiting for the reply to QUIT costs at most this: the verdict is already in.
QUIT_WAIT = 1.0


@dataclass(frozen=True)
class CheckTarget:
    host: str
    port: int
    implicit_tls: bool = False
    timeout: float = 10.0
    naming: Naming = CONFIG_VARS  # how hints name these settings: config vars, or bin/check's


class SmtpProtocolError(Exception):
    """The server answered, but not as an SMTP server that offers TLS would."""


class ReplyPastCap(SmtpProtocolError):
    """A reply went past a cap (lines, line length, bytes): it did not stop as a mail server's
    replies do. The diagnosis words its hint, since only it knows how the user named the server."""


class NoStartTlsError(SmtpProtocolError):
    def __init__(self) -> None:
        super().__init__("the server does not offer STARTTLS")


# What one reply may hold, capped the way a mail client caps it (Postfix's smtp client reads
# lines of at most line_length_limit, 2048 bytes): an honest greeting or EHLO answer is a few
# lines of under 100 bytes. Without caps, a server answering with endless "250-" lines grows
# the check's memory by tens of megabytes a second until SMTP_CA_CHECK_TIMEOUT.
MAX_LINE_BYTES = 2048
MAX_REPLY_LINES = 200
MAX_REPLY_BYTES = 64 * 1024
# How much of a reply's text a message quotes (it is the server's words: ``untrusted.shown``).
QUOTED_REPLY = 200


class Progress:
    """Where the conversation is, so a timeout can say what the server did not answer."""

    def __init__(self) -> None:
        self.stage = "connecting"


def _read_reply(
    sock: socket.socket | ssl.SSLSocket, deadline: Deadline, what: str
) -> tuple[int, list[str]]:
    """One reply, its code and its lines' text. ``what`` names it in errors: "greeting",
    "reply to EHLO". Caps lines, line length and bytes, and fails saying which it hit."""
    buffer = b""
    received = 0
    lines: list[str] = []
    while True:
        while b"\n" not in buffer:
            if len(buffer) > MAX_LINE_BYTES:
                raise ReplyPastCap(
                    f"the server's {what} has a line longer than {MAX_LINE_BYTES:,} bytes"
                )
            sock.settimeout(deadline.remaining())
            chunk = sock.recv(4096)
            if not chunk:
                raise SmtpProtocolError(
                    f"the server closed the connection before the end of its {what}"
                )
            received += len(chunk)
            if received > MAX_REPLY_BYTES:
                raise ReplyPastCap(f"the server's {what} ran past {MAX_REPLY_BYTES:,} bytes")
            buffer += chunk
        raw, buffer = buffer.split(b"\n", 1)
        if len(raw) > MAX_LINE_BYTES:
            raise ReplyPastCap(
                f"the server's {what} has a line longer than {MAX_LINE_BYTES:,} bytes"
            )
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if len(line) < 3 or not line[:3].isdigit():
            raise SmtpProtocolError(
                f"the server sent a reply that is not SMTP ({what}): {shown(line, 60)}"
            )
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), lines
        if len(lines) >= MAX_REPLY_LINES:
            raise ReplyPastCap(f"the server's {what} ran past {MAX_REPLY_LINES} lines")


def _command(
    sock: socket.socket | ssl.SSLSocket, deadline: Deadline, command: str
) -> tuple[int, list[str]]:
    sock.settimeout(deadline.remaining())
    sock.sendall(command.encode("ascii") + b"\r\n")
    return _read_reply(sock, deadline, f"reply to {command.split(' ')[0]}")


def _reply_text(lines: list[str]) -> str:
    return shown(" ".join(lines), QUOTED_REPLY)


def _expect_greeting(sock: socket.socket | ssl.SSLSocket, deadline: Deadline) -> None:
    code, lines = _read_reply(sock, deadline, "greeting")
    if code != 220:
        raise SmtpProtocolError(f"the greeting was {code} {_reply_text(lines)}")


def tls_context(ca_file: Path | None, extra_pem: bytes = b"") -> ssl.SSLContext:
    """Trust only ``ca_file`` (plus ``extra_pem``) or nothing, check host names, TLS 1.2+."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if extra_pem:
        context.load_verify_locations(cadata=extra_pem.decode("ascii"))
    return context


def reading_context() -> ssl.SSLContext:
    """Verifies nothing: only to read the chain a failing server presents."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def legacy_probe_context() -> ssl.SSLContext:
    """Accepts TLS 1.0 and 1.1, only to learn which version an old server speaks."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    # OpenSSL 3 refuses TLS below 1.2 at its default security level.
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _connect(target: CheckTarget, deadline: Deadline, progress: Progress) -> socket.socket:
    """socket.create_connection, with the name lookup inside the deadline too."""
    progress.stage = "resolving the host name"
    addresses = resolve_within(target.host, target.port, deadline.remaining())
    progress.stage = "connecting"
    last_error: OSError = socket.gaierror(socket.EAI_NONAME, "no address")
    for family, kind, protocol, _, address in addresses:
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(address)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            last_error = error  # the next address (IPv4 after IPv6) may answer
    raise last_error


def open_tls(
    target: CheckTarget,
    context: ssl.SSLContext,
    deadline: Deadline,
    progress: Progress | None = None,
) -> ssl.SSLSocket:
    """Connects, speaks SMTP up to STARTTLS (unless TLS from the first byte), and handshakes."""
    progress = progress or Progress()
    sock = _connect(target, deadline, progress)
    try:
        if not target.implicit_tls:
            progress.stage = "waiting for the SMTP greeting"
            _expect_greeting(sock, deadline)
            progress.stage = "waiting for the answer to EHLO"
            code, lines = _command(sock, deadline, "EHLO smtp-ca-check.invalid")
            if code != 250:
                raise SmtpProtocolError(f"EHLO was answered with {code}")
            if not any(line.upper().split(" ")[0] == "STARTTLS" for line in lines[1:]):
                raise NoStartTlsError
            progress.stage = "waiting for the answer to STARTTLS"
            code, lines = _command(sock, deadline, "STARTTLS")
            if code != 220:
                raise SmtpProtocolError(f"STARTTLS was answered with {code} {_reply_text(lines)}")
        progress.stage = "during the TLS handshake"
        sock.settimeout(deadline.remaining())
        tls = context.wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise
    if target.implicit_tls:
        try:
            progress.stage = "waiting for the SMTP greeting after the TLS handshake"
            _expect_greeting(tls, deadline)
        except BaseException:
            tls.close()
            raise
    return tls


def quit_politely(tls: ssl.SSLSocket, deadline: Deadline) -> None:
    # The proof is the handshake; a server that hangs up on QUIT, or takes its time to answer
    # it, changes nothing, and must not eat the time AIA and OCSP fetches need.
    with contextlib.suppress(OSError, SmtpProtocolError):
        tls.settimeout(min(deadline.remaining(), QUIT_WAIT))
        tls.sendall(b"QUIT\r\n")
        tls.recv(512)
