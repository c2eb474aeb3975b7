"""One deadline shared by every step of the check (connect, SMTP, handshakes, AIA, OCSP, CRLs)
and a host name lookup that ends by it.

Each step asks for what is left instead of taking its own timeout, so SMTP_CA_CHECK_TIMEOUT
bounds the whole check however many steps a diagnosis takes.

``socket.getaddrinfo`` takes no timeout, and a socket's timeout does not cover it: a resolver
that retries a silent name server can take far longer than any bound the build sets (glibc's
default is 5 s a try, twice, per server). So ``resolve_within`` runs the lookup in a daemon
thread and the caller waits for it only as long as it has; a lookup still running then is
abandoned, as curl's threaded resolver abandons one at ``--max-time``.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` once there are none, so callers cannot wait on zero."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end


# socket.getaddrinfo's entries: (family, type, proto, canonname, sockaddr).
AddressInfo = tuple[Any, Any, int, str, Any]


def resolve_within(host: str, port: int, seconds: float) -> list[AddressInfo]:
    """The TCP addresses of ``host``; ``TimeoutError`` when the lookup takes over ``seconds``,
    ``socket.gaierror`` when the name does not resolve (or is no valid host name)."""
    found: list[AddressInfo] = []
    failed: list[BaseException] = []

    def resolve() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except UnicodeError:
            # The IDNA codec refuses a label longer than 63 characters before any lookup.
            failed.append(socket.gaierror(socket.EAI_NONAME, "not a valid host name"))
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=resolve, name="smtp-ca-resolve", daemon=True)
    thread.start()
    thread.join(max(seconds, 0.0))
    if thread.is_alive():
        raise TimeoutError(f"looking up {host} took over {seconds:g} s")
    if failed:
        raise failed[0]
    return found
