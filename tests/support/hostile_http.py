"""An HTTP(S) server on 127.0.0.1 that answers the way an attacker would: slowly, without end.

Each connection reads one request (the request line, headers and a Content-Length body), then
plays the server's ``script``:

* ``drip-status``: the status line, one byte every ``delay`` seconds (a reason phrase of 2,000
  bytes, so it never ends within a test);
* ``drip-header``: the status line at once, then one header whose bytes come one per ``delay``;
* ``endless-headers``: the status line at once, then a new header every ``delay``;
* ``slow``: nothing for ``delay`` seconds, then a whole, honest answer with ``body`` (and
  ``status``, 200 unless told);
* ``drip-body``: status and headers at once, then ``body`` one byte per ``delay``;
* ``redirects``: ``/hop/0`` .. ``/hop/N-1`` redirect at once to the next hop, and ``/hop/N``
  drips its headers as ``drip-header`` does (``hops`` = N);
* ``flood-header-line``: one header line of endless bytes, as fast as the socket takes them;
* ``flood-headers``: endless short headers, as fast as the socket takes them;
* ``flood-body``: a 200 answer without Content-Length and a body without end.

With ``tls=ca`` it speaks HTTPS with a certificate from that trustme CA for 127.0.0.1.
``first_accept`` is the time.monotonic() of the first connection: the build's fetch began then.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING

from support.tcp_server import ThreadedTcpServer

if TYPE_CHECKING:
    import trustme

# However a test ends, a connection is dropped after this long.
MAX_SECONDS = 60.0
FLOOD_CHUNK = 64 * 1024


class HostileServer(ThreadedTcpServer):
    def __init__(
        self,
        script: str,
        *,
        tls: trustme.CA | None = None,
        delay: float = 0.2,
        body: bytes = b"",
        hops: int = 2,
        status: int = 200,
    ) -> None:
        self.status = status
        self.script = script
        self.delay = delay
        self.body = body
        self.hops = hops
        self.paths: list[str] = []
        self._context: ssl.SSLContext | None = None
        if tls is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.issue_cert("127.0.0.1", "localhost").configure_cert(self._context)
        super().__init__()

    def url(self, path: str = "/bundle.pem") -> str:
        scheme = "https" if self._context else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.settimeout(MAX_SECONDS)
            if self._context is not None:
                connection = self._context.wrap_socket(connection, server_side=True)
            path = _read_request(connection)
            self.paths.append(path)
            self._play(connection, path)
        except (OSError, ValueError):
            pass  # the client gave up, as it should
        finally:
            connection.close()

    def _play(self, peer: socket.socket, path: str) -> None:
        script = self.script
        if script == "redirects":
            hop = int(path.rpartition("/")[2] or 0)
            if hop < self.hops:
                location = f"/hop/{hop + 1}"
                # Connection: close, as the server does close it: without it the client may
                # send the next hop on this connection just as it closes (a reset, not a drip).
                peer.sendall(
                    _head(302, f"Location: {location}", "Content-Length: 0", "Connection: close")
                )
                return
            script = "drip-header"
        if script == "drip-status":
            self._drip(peer, b"HTTP/1.1 200 " + b"O" * 2000 + b"\r\n")
        elif script == "drip-header":
            peer.sendall(b"HTTP/1.1 200 OK\r\n")
            self._drip(peer, b"X-Slow: " + b"a" * 5000 + b"\r\n")
        elif script == "endless-headers":
            peer.sendall(b"HTTP/1.1 200 OK\r\n")
            for number in range(10_000):
                if self._stop.wait(self.delay):
                    return
                peer.sendall(f"X-Header-{number}: {number}\r\n".encode())
        elif script == "slow":
            if self._stop.wait(self.delay):
                return
            peer.sendall(_head(self.status, f"Content-Length: {len(self.body)}") + self.body)
        elif script == "drip-body":
            peer.sendall(_head(200, f"Content-Length: {len(self.body)}"))
            self._drip(peer, self.body)
        elif script == "flood-header-line":
            peer.sendall(b"HTTP/1.1 200 OK\r\nX-Long: ")
            self._flood(peer, b"a" * FLOOD_CHUNK)
        elif script == "flood-headers":
            peer.sendall(b"HTTP/1.1 200 OK\r\n")
            self._flood(peer, b"".join(b"X-Flood: %d\r\n" % n for n in range(5000)))
        elif script == "flood-body":
            peer.sendall(_head(200, "Connection: close"))
            self._flood(peer, b"-----BEGIN CERTIFICATE-----\n" * 2000)
        else:
            raise ValueError(f"no script {script!r}")

    def _drip(self, peer: socket.socket, data: bytes) -> None:
        for index in range(len(data)):
            if self._stop.wait(self.delay):
                return
            peer.sendall(data[index : index + 1])

    def _flood(self, peer: socket.socket, chunk: bytes) -> None:
        ends = time.monotonic() + MAX_SECONDS
        while not self._stop.is_set() and time.monotonic() < ends:
            peer.sendall(chunk)


def _head(status: int, *headers: str) -> bytes:
    reason = {200: "OK", 302: "Found", 503: "Service Unavailable"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def _read_request(peer: socket.socket) -> str:
    """Reads one request (line, headers, Content-Length body); returns its path."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = peer.recv(4096)
        if not chunk or len(data) > 64 * 1024:
            raise ValueError("no whole request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = peer.recv(4096)
        if not chunk:
            break
        rest += chunk
    return lines[0].split(" ")[1]
