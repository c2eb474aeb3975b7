"""A TCP listener on 127.0.0.1 that serves each connection in a thread of its own.

The shared part of the tests' hostile and honest servers (support.hostile_http,
support.hostile_smtp, support.connect_proxy, support.silent_server): a subclass says what to do
with one connection in ``_serve``, and waits on ``_stop`` wherever it would otherwise sleep.
Leaving the ``with`` block shuts every connection down, which also ends a ``_serve`` blocked
in a read or a write, then closes them.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from typing import TypeVar

_Server = TypeVar("_Server", bound="ThreadedTcpServer")


class ThreadedTcpServer:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.first_accept: float | None = None  # time.monotonic() of the first connection
        self.accepted: list[socket.socket] = []  # every connection, in the order it came
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self: _Server) -> _Server:
        self._accepting.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        for connection in self.accepted:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()
        self._listener.close()

    def _serve(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.first_accept is None:
                self.first_accept = time.monotonic()
            self.accepted.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()
