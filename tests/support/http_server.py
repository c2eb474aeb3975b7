"""A real HTTP/HTTPS server on the loopback, for code that downloads things.

Each path has a list of replies, used in order; the last one repeats. A reply can serve bytes
(with an ETag and Last-Modified, answering a matching conditional GET with 304), answer any
status, redirect, hang, close the connection without a word, or drip the body slowly. Every
request is recorded with its headers::

    ca = trustme.CA()
    with LocalServer(tls=ca) as server:
        server.serve("/bundle.pem", pem, etag='"v1"')
        server.script("/flaky", Reply(status=500), Reply(body=pem))
        url = server.url("/bundle.pem")          # https://127.0.0.1:PORT/bundle.pem
        ...
        assert server.requests_for("/bundle.pem")[-1].headers["if-none-match"] == '"v1"'

With ``tls=ca`` the server presents a certificate from that trustme CA for 127.0.0.1 and
localhost; trust it on the client side with ``ca.cert_pem.write_to_path(...)``.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import trustme

Action = Literal["reply", "hang", "close", "drip"]

# A hanging reply gives up after this long at most, so a test that forgets it cannot stall.
MAX_HANG_SECONDS = 30.0


@dataclass(frozen=True)
class Reply:
    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None  # an HTTP date, e.g. "Tue, 01 Apr 2025 10:00:00 GMT"
    action: Action = "reply"
    # hang: seconds to hold the connection open before closing it without an answer.
    # drip: seconds between chunks of the body.
    delay: float = 0.0
    chunk_size: int = 1024
    # False: no Content-Length header; the body ends when the connection closes.
    # An int: send that Content-Length whatever the body's size (to lie about it).
    content_length: bool | int = True


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query: what replies are looked up by
    target: str  # as the client sent it, query included
    headers: dict[str, str]  # lower-case names


class LocalServer:
    """A threaded HTTP(S) server on 127.0.0.1 and a free port, for one test."""

    def __init__(self, *, tls: trustme.CA | None = None, host: str = "127.0.0.1") -> None:
        self._routes: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self._tls_context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            self._tls_context = context
        self._httpd = _Server((host, 0), _Handler, self)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def scheme(self) -> str:
        return "https" if self._tls_context else "http"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():  # shutdown() waits for serve_forever, forever if never run
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what to answer ---

    def serve(self, path: str, body: bytes, **options: Any) -> None:
        """From now on, ``path`` answers ``body`` (options as in ``Reply``)."""
        self.script(path, Reply(body=body, **options))

    def script(self, path: str, *replies: Reply) -> None:
        """``path`` answers these replies in order, then repeats the last."""
        if not replies:
            raise ValueError("script needs at least one reply")
        with self._lock:
            self._routes[path] = list(replies)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.script(path, Reply(status=status, headers={"Location": location}))

    # --- what was asked ---

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def count(self, path: str) -> int:
        return len(self.requests_for(path))

    # --- used by the handler ---

    def _next_reply(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            replies = self._routes.get(request.path)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type, owner: LocalServer) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # http.server writes headers and body separately; without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every TLS reply, which no real web server does.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.owner._tls_context
        if context is not None:
            # The handshake runs in the handler's thread, so that a client that never
            # completes one cannot block the accept loop.
            sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up mid-answer (a timeout test) is expected: record, stay quiet.
        import sys

        error = sys.exc_info()[1]
        if error is not None:
            self.owner.errors.append(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(10)
            self.connection.do_handshake()
            self.connection.settimeout(None)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        owner = self.server.owner
        request = RecordedRequest(
            self.command,
            self.path.partition("?")[0],
            self.path,
            {name.lower(): value for name, value in self.headers.items()},
        )
        reply = owner._next_reply(request)
        if reply is None:
            self._send(Reply(status=404, body=b"not found\n"), send_body)
            return
        if reply.action == "hang":
            owner.stopping.wait(min(reply.delay or MAX_HANG_SECONDS, MAX_HANG_SECONDS))
            self.close_connection = True
            return
        if reply.action == "close":
            self.close_connection = True
            return
        if reply.status == 200 and _not_modified(reply, request.headers):
            self._send(Reply(status=304, etag=reply.etag, last_modified=reply.last_modified), False)
            return
        self._send(reply, send_body)

    def _send(self, reply: Reply, send_body: bool) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.etag:
            self.send_header("ETag", reply.etag)
        if reply.last_modified:
            self.send_header("Last-Modified", reply.last_modified)
        if reply.status != 304:
            if reply.content_length is True:
                self.send_header("Content-Length", str(len(reply.body)))
            elif reply.content_length is not False:
                self.send_header("Content-Length", str(reply.content_length))
            else:
                self.close_connection = True
                self.send_header("Connection", "close")
        self.end_headers()
        if not send_body or reply.status == 304:
            return
        if reply.action == "drip":
            for start in range(0, len(reply.body), reply.chunk_size):
                if self.server.owner.stopping.wait(reply.delay):
                    return
                self.wfile.write(reply.body[start : start + reply.chunk_size])
                self.wfile.flush()
        else:
            self.wfile.write(reply.body)


def _not_modified(reply: Reply, headers: Mapping[str, str]) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if reply.etag is None:
            return False
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or reply.etag.removeprefix("W/") in tags
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None and reply.last_modified is not None:
        try:
            return parsedate_to_datetime(reply.last_modified) <= parsedate_to_datetime(
                if_modified_since
            )
        except (TypeError, ValueError):
            return False
    return False


def unreachable_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
