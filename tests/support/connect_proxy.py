"""An honest HTTP proxy on 127.0.0.1, as a build machine's proxy is: it answers CONNECT for
https:// and forwards plain http:// requests.

For ``CONNECT host:port`` it connects to the target it names (loopback only: anything else is
refused with 403, so no test can reach past the machine), answers ``200 Connection
established`` and relays bytes both ways until either side closes. ``tunnels`` lists the
``host:port`` targets it was asked for.

A request for an absolute ``http://`` URL (``GET http://127.0.0.1:8080/ca.crt HTTP/1.1``) is
sent on to that server (loopback only) in origin form, without the proxy's own headers
(``Proxy-Authorization``, ``Proxy-Connection``), as a real proxy forwards it; the answer goes
back with ``Connection: close``, one request per connection. ``forwarded`` records each such
request as the proxy received it: its request line and its headers (lower-case names), so a
test can see what a client sent to the proxy.
"""

from __future__ import annotations

import selectors
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from support.tcp_server import ThreadedTcpServer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# However a test ends, a tunnel is dropped after this long without traffic.
IDLE_SECONDS = 30.0
# Headers that are for the proxy itself: never passed on.
_PROXY_HEADERS = ("proxy-authorization", "proxy-connection", "connection", "keep-alive")


@dataclass(frozen=True)
class ProxiedRequest:
    request_line: str
    headers: dict[str, str]  # lower-case names, as the client sent them to the proxy


class ConnectProxy(ThreadedTcpServer):
    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tunnels: list[str] = []
        self.forwarded: list[ProxiedRequest] = []

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(IDLE_SECONDS)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16 * 1024:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            if method == "CONNECT":
                self._tunnel(client, target)
            else:
                self._forward(client, lines, rest)

    def _tunnel(self, client: socket.socket, target: str) -> None:
        host, _, port = target.rpartition(":")
        if host.strip("[]") not in LOOPBACK:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.tunnels.append(target)
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._relay(client, upstream)

    def _forward(self, client: socket.socket, lines: list[str], rest: bytes) -> None:
        """One request, forwarded; the answer goes back with ``Connection: close``, and the
        client's connection is closed after it (the client must not reuse it)."""
        method, target, version = lines[0].split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        self.forwarded.append(ProxiedRequest(lines[0], headers))
        url = urlsplit(target)
        if url.scheme != "http" or url.hostname not in LOOPBACK:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        body = rest
        while len(body) < int(headers.get("content-length") or 0):
            chunk = client.recv(64 * 1024)
            if not chunk:
                return
            body += chunk
        kept = [
            line
            for line in lines[1:]
            if line.partition(":")[0].strip().lower() not in _PROXY_HEADERS
        ]
        path = url.path or "/"
        if url.query:
            path += f"?{url.query}"
        head = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
        try:
            with socket.create_connection((url.hostname, url.port or 80), timeout=5) as upstream:
                upstream.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
                answer = b""
                while chunk := upstream.recv(64 * 1024):
                    answer += chunk
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        answer_head, _, answer_body = answer.partition(b"\r\n\r\n")
        answer_lines = [
            line
            for line in answer_head.split(b"\r\n")
            if line.partition(b":")[0].strip().lower() not in (b"connection", b"keep-alive")
        ]
        client.sendall(b"\r\n".join([*answer_lines, b"Connection: close", b"", answer_body]))

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        other = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for side in other:
                selector.register(side, selectors.EVENT_READ)
            while not self._stop.is_set():
                ready = selector.select(IDLE_SECONDS)
                if not ready:
                    return
                for key, _ in ready:
                    sender: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = sender.recv(64 * 1024)
                    if not data:
                        return
                    other[sender].sendall(data)
