"""One deadline for a whole HTTP fetch, enforced on every byte, under requests and urllib3.

Why this exists: requests and urllib3 have only per-operation timeouts (one for the connect,
one for each read). A server that sends one byte of its status line or of its headers every
0.2 s, or a new header every 0.2 s, never trips a 5 s read timeout; and http.client reads the
status line and the headers itself, through ``sock.makefile("rb")``, before urllib3 or the
fetch see a byte, so no check between reads can stop it. Here the socket itself keeps the time:

* the host name lookup gets what is left (``net.deadline``: ``getaddrinfo`` takes no timeout of
  its own), then the TCP connect to each address it found gets what is left as its timeout;
* the TLS handshake runs with the socket's timeout set to what is left: CPython bounds the whole
  handshake call by the socket timeout, not each step of it;
* after that, every ``recv``/``recv_into``/``send``/``sendall`` of the connection's socket, and
  of the file ``makefile`` makes from it (what http.client reads the answer through), first sets
  the timeout to what is left, and fails at once when nothing is left.

``DownloadClock`` holds the deadline and what the peer was doing when it ran out (connecting,
the TLS handshake, taking the request, the status line, the headers, the body; after which
redirect), so the message can say it. An HTTP proxy's answer to ``CONNECT`` is read through
the same socket. ``DeadlineAdapter`` installs all of it into a requests ``Session`` through
urllib3's pool and connection classes.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError, ProxyError
from urllib3.poolmanager import ProxyManager

from smtp_ca.net.deadline import resolve_within
from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    import requests

    from smtp_ca.net.proxy import Proxy

# What the peer was doing, as the message says it. "answer": waiting for the first byte.
_TOO_SLOW = {
    "request": "the server took the request too slowly",
    "status": "the server sent its status line too slowly",
    "headers": "the server sent its headers too slowly",
    "body": "the server sent the body too slowly",
}
# Less than this left counts as none: a socket timeout set to what was left may fire a hair
# before the deadline itself.
_EPSILON = 0.01


_socket_makefile: Any = socket.socket.makefile


class DeadlineExceeded(TimeoutError):
    """The fetch's deadline passed; ``str()`` says what the peer was doing."""


class DownloadClock:
    """The deadline of one fetch (all attempts, waits and redirects) and where it stands."""

    def __init__(self, ends_at: float, bound: str) -> None:
        self.ends_at = ends_at
        self.bound = bound  # "the 5 s the download was given": what the messages end with
        self.stage = "connect"
        self.redirects = 0  # how many redirects were followed before this request
        # The proxy this request goes through (None: straight to the server): until the
        # tunnel is open, the peer being looked up and connected to is the proxy.
        self.proxy: Proxy | None = None
        self._ran_out_as: str | None = None  # the description when the deadline first hit

    def enter(self, stage: str) -> None:
        self.stage = stage

    def left(self) -> float:
        """Seconds left; raises ``DeadlineExceeded`` when none are."""
        left = self.ends_at - time.monotonic()
        if left <= _EPSILON:
            raise self.ran_out()
        return left

    def has(self, seconds: float) -> bool:
        """Whether ``seconds`` from now are still before the deadline."""
        return time.monotonic() + seconds < self.ends_at

    def ran_out(self) -> DeadlineExceeded:
        """Records (once) what the peer was doing as the deadline passed."""
        if self._ran_out_as is None:
            self._ran_out_as = self.describe()
        return DeadlineExceeded(self._ran_out_as)

    def timeout_reason(self) -> str | None:
        """What ran out, if the deadline did: for the message of a failed fetch."""
        if self._ran_out_as is None and self.ends_at - time.monotonic() <= _EPSILON:
            self.ran_out()
        return self._ran_out_as

    def describe(self) -> str:
        proxy = self.proxy
        if self.stage == "resolve" and proxy is not None:
            what = (
                f"the proxy's host name ({proxy.address}, {proxy.variable}) was not looked up "
                f"within {self.bound}"
            )
        elif self.stage == "resolve":
            what = f"the host name was not looked up within {self.bound}"
        elif self.stage == "connect" and proxy is not None:
            what = (
                f"could not connect to the proxy at {proxy.address} ({proxy.variable}) "
                f"within {self.bound}"
            )
        elif self.stage == "proxy":
            what = f"the proxy did not open the tunnel within {self.bound}"
        elif self.stage == "connect":
            what = f"could not connect within {self.bound}"
        elif self.stage == "tls":
            what = f"the TLS handshake did not finish within {self.bound}"
        elif self.stage == "answer":
            what = f"no answer within {self.bound}"
        else:
            what = f"{_TOO_SLOW[self.stage]}: no whole answer within {self.bound}"
        if self.redirects:
            plural = "s" if self.redirects > 1 else ""
            return f"after {self.redirects} redirect{plural}, {what}"
        return what

    def saw(self, data: bytes | memoryview) -> None:
        """Bytes of the answer arrived: the status line has begun, or ended."""
        if self.stage == "answer" and len(data):
            self.stage = "status"
        if self.stage == "status" and b"\n" in data:
            self.stage = "headers"


class DeadlineSocket:
    """A connected socket (plain or TLS) whose every operation keeps to ``clock``.

    ``settimeout`` from urllib3 and http.client is ignored: the timeout of each operation is
    what is left. Everything else (``fileno``, ``shutdown``, ``getpeercert``, ...) is the
    wrapped socket's.
    """

    def __init__(self, sock: socket.socket, clock: DownloadClock) -> None:
        self._sock = sock
        self._clock = clock
        # socket.socket's own bookkeeping for makefile(), which this class reuses.
        self._io_refs = 0
        self._closed = False

    def _arm(self) -> None:
        self._sock.settimeout(self._clock.left())

    def recv(self, bufsize: int, *args: Any) -> bytes:
        self._arm()
        try:
            data = self._sock.recv(bufsize, *args)
        except TimeoutError:
            raise self._clock.ran_out() from None
        self._clock.saw(data)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, *args: Any) -> int:
        self._arm()
        try:
            count = self._sock.recv_into(buffer, nbytes, *args)
        except TimeoutError:
            raise self._clock.ran_out() from None
        if self._clock.stage in ("answer", "status"):
            self._clock.saw(memoryview(buffer)[:count].tobytes())
        return count

    def send(self, data: Any, *args: Any) -> int:
        self._arm()
        try:
            return self._sock.send(data, *args)
        except TimeoutError:
            raise self._clock.ran_out() from None

    def sendall(self, data: Any, *args: Any) -> None:
        # One send at a time: SSLSocket.sendall gives each of its sends the whole timeout.
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view, *args) :]

    def settimeout(self, value: float | None) -> None:
        pass

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        # socket.socket.makefile builds its file on this object's recv_into and send.
        return _socket_makefile(self, *args, **kwargs)

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _connection_classes(
    clock: DownloadClock,
) -> tuple[type[HTTPConnection], type[HTTPSConnection]]:
    class DeadlineHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            # urllib3 would look the name up inside its connect, where no timeout reaches:
            # the lookup is done here within the deadline, and urllib3 is handed each address.
            clock.enter("resolve")
            try:
                addresses = resolve_within(self._dns_host, self.port, clock.left())
            except TimeoutError:
                raise clock.ran_out() from None
            except socket.gaierror as error:
                raise NameResolutionError(self.host, self, error) from error
            clock.enter("connect")
            name = self._dns_host
            failure: Exception = NewConnectionError(self, "the name has no address")
            try:
                for *_, address in addresses:
                    self._dns_host = address[0]
                    self.timeout = clock.left()
                    try:
                        return super()._new_conn()
                    except NewConnectionError as error:
                        failure = error  # the next address (IPv4 after IPv6) may answer
            finally:
                self._dns_host = name
            raise failure

        def connect(self) -> None:
            super().connect()
            self.sock = DeadlineSocket(self.sock, clock)
            clock.enter("request")

        def _tunnel(self) -> None:
            # An HTTP proxy's answer to CONNECT is read before connect() returns: the tunnel
            # is set up through a deadline socket too, and the bare socket is put back for
            # the TLS handshake with the server, which the socket's timeout bounds.
            clock.enter("proxy")
            bare = self.sock
            self.sock = DeadlineSocket(bare, clock)
            try:
                super()._tunnel()
            finally:
                if self.sock is not None:  # a refused tunnel closes the connection
                    self.sock = bare
            clock.enter("tls")
            bare.settimeout(clock.left())

        def request(self, *args: Any, **kwargs: Any) -> None:
            clock.enter("request")
            super().request(*args, **kwargs)

        def getresponse(self) -> Any:
            clock.enter("answer")
            response = super().getresponse()
            clock.enter("body")
            return response

    # The TLS class takes the plain one's bounds (its MRO puts them before HTTPSConnection, so
    # their super() calls reach the TLS connect) and adds the handshake's.
    class DeadlineHTTPSConnection(DeadlineHTTPConnection, HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            # The handshake that follows is bounded, as a whole, by the socket's timeout.
            clock.enter("tls")
            sock.settimeout(clock.left())
            return sock

    return DeadlineHTTPConnection, DeadlineHTTPSConnection


def _pool_classes(clock: DownloadClock) -> dict[str, type[HTTPConnectionPool]]:
    plain, tls = _connection_classes(clock)

    class DeadlineHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = plain

    class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = tls

    return {"http": DeadlineHTTPConnectionPool, "https": DeadlineHTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections, direct or through an HTTP(S) proxy, keep to
    ``clock``. (A SOCKS proxy never gets here: ``fetch`` refuses it first.)"""

    def __init__(self, clock: DownloadClock, **kwargs: Any) -> None:
        self._pools = _pool_classes(clock)  # before super().__init__, which makes the pools
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):
            manager.pool_classes_by_scheme = self._pools
        return manager


# --- reading through requests ------------------------------------------------------------


@contextmanager
def urllib3_quiet() -> Iterator[None]:
    """Keeps urllib3's log lines ("Retrying (Retry(total=2, ...)) after connection broken by
    ...") out of the build log while a fetch runs: what they say, the fetch says itself, in
    the build's words (``on_retry``, ``Unavailable``). urllib3 gives its logger a NullHandler,
    so with propagation off its records go nowhere."""
    logger = logging.getLogger("urllib3")
    previous = logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = previous


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, decoded.

    urllib3's ``read1`` (2.3 and later) returns after one read, so the size cap is checked as
    the bytes arrive; ``iter_content`` waits for whole chunks.
    """
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(4 * 1024)
        return
    while chunk := raw.read1(64 * 1024, decode_content=True):
        yield chunk


# --- what went wrong, in words -----------------------------------------------------------------


def describe_network_error(error: BaseException, clock: DownloadClock) -> tuple[str, str | None]:
    """A short reason for a failed request, and a hint; no URL, so nothing secret.

    Past the deadline, the clock says what the peer was doing. Otherwise: requests wraps
    urllib3 wraps socket errors; the useful words are at the bottom of the chain
    ("Connection refused", "certificate verify failed: unable to get local issuer").
    """
    ran_out = clock.timeout_reason()
    if ran_out is not None:
        return ran_out, None
    chain = _exception_chain(error)
    if clock.proxy is not None and any(isinstance(item, ProxyError) for item in chain):
        return _proxy_failure(clock.proxy, chain)
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return (
                f"its TLS certificate could not be verified ({item.verify_message})",
                "If the build reaches the internet through a TLS-intercepting proxy, set "
                "REQUESTS_CA_BUNDLE to a file with that proxy's CA certificate in the build's "
                "environment (a config var does not reach it during the build).",
            )
    for item in reversed(chain):
        if isinstance(item, ssl.SSLError):
            return f"the TLS handshake failed ({item.reason or item})", None
    for item in reversed(chain):
        if isinstance(item, OSError) and item.strerror:
            return item.strerror, None
    innermost = chain[-1]
    return shown(str(innermost) or type(innermost).__name__), None


def _proxy_failure(proxy: Proxy, chain: list[BaseException]) -> tuple[str, str | None]:
    """urllib3 could not get through the proxy: the proxy is named, by its variable, as what
    failed, not the server behind it (which was never reached)."""
    name, where = proxy.variable, proxy.address
    hint = (
        f"Check {name}: the build reaches the network through the proxy it names. Unset it "
        "if this machine needs no proxy."
    )
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return f"the proxy at {where} ({name}) refused the connection", hint
    if any(isinstance(item, (NameResolutionError, socket.gaierror)) for item in chain):
        return f"the proxy's host name in {name} ({where}) does not resolve", hint
    for item in reversed(chain):
        if isinstance(item, OSError) and item.strerror:
            return f"the proxy at {where} ({name}) could not be reached: {item.strerror}", hint
    innermost = chain[-1]
    detail = shown(str(innermost) or type(innermost).__name__)
    return f"the proxy at {where} ({name}) failed: {detail}", hint


def _exception_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    queue: list[BaseException] = [error]
    while queue:
        item = queue.pop(0)
        if any(item is seen for seen in chain):
            continue
        chain.append(item)
        # urllib3's MaxRetryError keeps its cause in .reason, ProtocolError in its args. Not
        # __context__: a fetch made while the caller handles an error (the check fetches a
        # missing issuer after the handshake failed) would blame the fetch for that error.
        queue.extend(
            e
            for e in (getattr(item, "reason", None), item.__cause__, *item.args)
            if isinstance(e, BaseException)
        )
    return chain
