"""SMTP servers that misbehave on purpose, on loopback: raw sockets, one thread per client.

aiosmtpd (``support.smtp_server``) is an honest server; these are the servers a careful client
must survive. Each speaks just enough SMTP to reach the misbehaviour it stands for::

    with HostileSmtpServer(endless_ehlo) as server:
        ...  # point the check at server.port

A behaviour is a function of the connected socket. It may write without end: the server stops
it (and closes every socket) on exit, and a client that hangs up ends it with an OSError.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from support.smtp_server import LOOPBACK
from support.tcp_server import ThreadedTcpServer

Behaviour = Callable[[socket.socket, threading.Event], None]

# One flood write: many lines at once, so the server outruns any client.
_FLOOD_LINES = 2000


def _read_command(conn: socket.socket) -> bytes:
    """One command line from the client (up to 4 KiB), without its line end."""
    data = b""
    while b"\n" not in data and len(data) < 4096:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("the client hung up")
        data += chunk
    return data.split(b"\n", 1)[0].rstrip(b"\r")


def _flood(conn: socket.socket, stop: threading.Event, line: bytes) -> None:
    block = line * _FLOOD_LINES
    while not stop.is_set():
        conn.sendall(block)


def _up_to_starttls(conn: socket.socket) -> None:
    """Greeting, EHLO answered with STARTTLS offered, then the STARTTLS command read."""
    conn.sendall(b"220 hostile.invalid ESMTP\r\n")
    _read_command(conn)
    conn.sendall(b"250-hostile.invalid\r\n250 STARTTLS\r\n")
    _read_command(conn)


def endless_greeting(conn: socket.socket, stop: threading.Event) -> None:
    """A greeting of "220-" lines that never ends."""
    _flood(conn, stop, b"220-" + b"G" * 60 + b"\r\n")


def endless_ehlo(conn: socket.socket, stop: threading.Event) -> None:
    """An honest greeting, then an answer to EHLO of "250-" lines that never ends."""
    conn.sendall(b"220 hostile.invalid ESMTP\r\n")
    _read_command(conn)
    _flood(conn, stop, b"250-" + b"X" * 60 + b"\r\n")


def long_starttls_refusal(lines: int) -> Behaviour:
    """STARTTLS refused with a ``454`` reply of ``lines`` lines."""

    def behave(conn: socket.socket, stop: threading.Event) -> None:
        _up_to_starttls(conn)
        body = b"".join(b"454-TLS not available, line %d\r\n" % number for number in range(lines))
        conn.sendall(body + b"454 TLS not available\r\n")
        conn.recv(4096)  # until the client hangs up

    return behave


ESCAPES = b"\x1b[2J\x1b[31mPWNED\x1b]0;t\x07"


def escaping_starttls_refusal(conn: socket.socket, stop: threading.Event) -> None:
    """STARTTLS refused with terminal escapes: clear the screen, red text, a window title."""
    _up_to_starttls(conn)
    conn.sendall(b"454 " + ESCAPES + b"\r\n")
    conn.recv(4096)


class HostileSmtpServer(ThreadedTcpServer):
    """Listens on 127.0.0.1 at a free port; runs ``behaviour`` for each client in a thread."""

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__()
        self._behaviour = behaviour
        self.host = LOOPBACK

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)  # no behaviour outlives a test by long, whatever the client does
        # A client that hangs up, or the server shutting down, ends the behaviour.
        with contextlib.suppress(OSError):
            self._behaviour(conn, self._stop)
