"""An honest HTTP proxy on 127.0.0.1 that answers CONNECT, as a build machine's proxy does.

It reads one CONNECT request, connects to the target it names (loopback only: anything else is
refused with 403, so no test can reach past the machine), answers ``200 Connection
established`` and relays bytes both ways until either side closes. ``tunnels`` lists the
``host:port`` targets it was asked for.
"""

from __future__ import annotations

import selectors
import socket

from support.tcp_server import ThreadedTcpServer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# However a test ends, a tunnel is dropped after this long without traffic.
IDLE_SECONDS = 30.0


class ConnectProxy(ThreadedTcpServer):
    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tunnels: list[str] = []

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(IDLE_SECONDS)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16 * 1024:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host.strip("[]") not in LOOPBACK:
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
