"""smtp_ca.net.http on its own: limits, schemes, and the AIA/OCSP entry point. Loopback only.

The bundle stage's use of it (retries, conditional GET, redirects to http://, size caps,
credentials in URLs) is tested through ``prepare_bundle`` in test_prepare_bundle.py.
"""

from __future__ import annotations

import base64
import http.server as http_server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import trustme

from smtp_ca.net import http as fetch
from smtp_ca.net.deadline import Deadline
from smtp_ca.net.retry import RetryNote
from smtp_ca.output import Redactor
from support.connect_proxy import ConnectProxy
from support.hostile_http import HostileServer
from support.http_server import LocalServer, Reply
from support.silent_server import SilentServer
from support.smtp_server import free_port


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(fetch, "BACKOFF_FACTOR", 0.01)


@pytest.fixture
def http() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


def test_http_is_refused_unless_the_caller_allows_it(http: LocalServer) -> None:
    http.serve("/issuer.cer", b"DER")
    limits = fetch.Limits(max_bytes=100, timeout=2, retries=0)
    # https:// only, as for the bundle: nothing is sent.
    with pytest.raises(fetch.InvalidUrl, match="is not a https URL"):
        fetch.fetch_url(http.url("/issuer.cer"), limits, Redactor())
    assert http.count("/issuer.cer") == 0
    fetched = fetch.fetch_url(
        http.url("/issuer.cer"), limits, Redactor(), schemes=("http", "https")
    )
    assert fetched.data == b"DER"


def test_a_redirect_must_stay_within_the_allowed_schemes(http: LocalServer) -> None:
    http.redirect("/a", "ftp://127.0.0.1/x")
    limits = fetch.Limits(max_bytes=100, timeout=2, retries=0)
    with pytest.raises(fetch.SchemeRefused) as error:
        fetch.fetch_url(http.url("/a"), limits, Redactor(), schemes=("http",))
    assert error.value.target == "ftp://127.0.0.1/x"


def test_the_size_cap_holds_without_a_content_length(http: LocalServer) -> None:
    http.serve("/big", b"x" * 5000, content_length=False)
    with pytest.raises(fetch.TooLarge) as error:
        fetch.fetch_url(
            http.url("/big"),
            fetch.Limits(max_bytes=1000, timeout=2, retries=0),
            Redactor(),
            schemes=("http",),
        )
    assert error.value.limit == 1000


def test_a_shared_deadline_cuts_a_dripping_body_short(http: LocalServer) -> None:
    http.script("/drip", Reply(body=b"x" * 50, action="drip", delay=0.2, chunk_size=1))
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable, match="no whole answer within the 1 s"):
        fetch.fetch(http.url("/drip"), Deadline(1.0), max_bytes=1000)
    assert time.monotonic() - started < 3


def test_the_aia_entry_point(http: LocalServer) -> None:
    http.serve("/ca.cer", b"\x30\x82DER")
    assert fetch.fetch(http.url("/ca.cer"), Deadline(5), max_bytes=100) == b"\x30\x82DER"
    assert http.requests_for("/ca.cer")[0].headers["accept"] == "*/*"
    assert fetch.is_fetchable("http://x.test/ca.cer")
    assert not fetch.is_fetchable("ldap://x.test/cn=ca")
    assert not fetch.is_fetchable("http://[::1/ca.cer")
    assert fetch.display_url("http://u:p@x.test/c?t=1") == "http://[REDACTED]@x.test/c?[REDACTED]"


def test_the_aia_entry_point_never_waits_past_the_deadline(http: LocalServer) -> None:
    http.script("/hang", Reply(action="hang", delay=5))
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable):
        fetch.fetch(http.url("/hang"), Deadline(0.5), max_bytes=100)
    assert time.monotonic() - started < 2
    expired = Deadline(0)
    with pytest.raises(fetch.Unavailable, match="no time was left"):
        fetch.fetch(http.url("/hang"), expired, max_bytes=100)
    with pytest.raises(fetch.InvalidUrl):
        fetch.fetch("ldap://x.test/cn=ca", Deadline(5), max_bytes=100)


class _PostHandler(http_server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b"response")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_body_is_posted_as_ocsp_requests_are() -> None:
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _PostHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ocsp"
        data = fetch.fetch(
            url,
            Deadline(5),
            max_bytes=100,
            body=b"request",
            content_type="application/ocsp-request",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert data == b"response"
    assert _PostHandler.received == [("application/ocsp-request", b"request")]


def test_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "b.pem"
    path.write_bytes(b"pem")
    assert fetch.read_file_url(path.as_uri(), 10, 5) == (b"pem", path)
    with pytest.raises(fetch.TooLarge):
        fetch.read_file_url(path.as_uri(), 2, 5)
    with pytest.raises(fetch.FileMissing):
        fetch.read_file_url((tmp_path / "gone").as_uri(), 10, 5)
    with pytest.raises(fetch.FileUnreadable):
        fetch.read_file_url(tmp_path.as_uri(), 10, 5)  # a directory
    with pytest.raises(fetch.NotLocal):
        fetch.read_file_url("file://other.host/b.pem", 10, 5)
    with pytest.raises(fetch.NotAbsolute):
        fetch.read_file_url("file:b.pem", 10, 5)


def test_retries_and_redirects_share_the_overall_deadline(http: LocalServer) -> None:
    """A hanging server may hold the first attempt for the whole bound, and then no retry
    follows: the tries and the redirects before them all end by the one deadline."""
    http.script("/hang", Reply(action="hang", delay=10))
    http.redirect("/start", http.url("/hang"))
    limits = fetch.Limits(max_bytes=100, timeout=2.0, retries=3, ends_at=time.monotonic() + 2.0)
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable) as error:
        fetch.fetch_url(http.url("/start"), limits, Redactor(), schemes=("http",))
    assert time.monotonic() - started < 3.0
    assert error.value.reason == (
        "after 1 redirect, no answer within the 2 s the download was given"
    )
    assert http.count("/hang") == 1


# --- one deadline over every byte (support.hostile_http) ------------------------------------


def _fails_within(url: str, seconds: float, *, retries: int = 0) -> str:
    limits = fetch.Limits(max_bytes=10_000, timeout=seconds, retries=retries)
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable) as error:
        fetch.fetch_url(url, limits, Redactor(), schemes=("http",))
    took = time.monotonic() - started
    assert took < seconds + 0.5, f"took {took:.2f} s for a {seconds} s bound"
    return error.value.reason


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("drip-status", "the server sent its status line too slowly"),
        ("drip-header", "the server sent its headers too slowly"),
        ("endless-headers", "the server sent its headers too slowly"),
        ("drip-body", "the server sent the body too slowly"),
    ],
)
def test_a_dripping_server_is_cut_off_at_the_deadline_saying_what_it_was_doing(
    script: str, reason: str
) -> None:
    with HostileServer(script, delay=0.05, body=b"x" * 1000) as server:
        said = _fails_within(server.url(), 1.0, retries=3)
    assert said == f"{reason}: no whole answer within the 1 s the download was given"
    assert len(server.paths) == 1  # no retry squeezed into what was left


def test_a_dripping_redirect_target_says_which_redirect() -> None:
    with HostileServer("redirects", delay=0.05, hops=2) as server:
        said = _fails_within(server.url("/hop/0"), 1.0)
    assert said == (
        "after 2 redirects, the server sent its headers too slowly: no whole answer within "
        "the 1 s the download was given"
    )
    assert server.paths == ["/hop/0", "/hop/1", "/hop/2"]


def test_a_stalled_tls_handshake_ends_at_the_deadline() -> None:
    with SilentServer() as silent:
        limits = fetch.Limits(max_bytes=100, timeout=0.5, retries=2)
        started = time.monotonic()
        with pytest.raises(fetch.Unavailable) as error:
            fetch.fetch_url(f"https://127.0.0.1:{silent.port}/b.pem", limits, Redactor())
    assert time.monotonic() - started < 1.0
    assert error.value.reason == (
        "the TLS handshake did not finish within the 0.5 s the download was given"
    )


# --- the name lookup: no name server is asked; the resolver's answers are made up here ------

NAME = "bundle.example.invalid"


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """``socket.getaddrinfo`` for NAME answers what the test puts in ``answers[NAME]``: a list
    of addresses, an exception, or "hang" (a name server that never answers); other names
    resolve as usual."""
    answers: dict[str, object] = {}
    released = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> object:
        if host != NAME:
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        answer = answers[NAME]
        if answer == "hang":
            released.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield answers
    released.set()


def _tcp(host: str, port: int) -> tuple[object, ...]:
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))


def test_a_name_server_that_never_answers_ends_at_the_deadline(
    resolver: dict[str, object],
) -> None:
    resolver[NAME] = "hang"
    said = _fails_within(f"http://{NAME}:8/bundle.pem", 1.0, retries=3)
    assert said == "the host name was not looked up within the 1 s the download was given"


def test_a_name_that_does_not_resolve_is_named_in_the_resolvers_words(
    resolver: dict[str, object],
) -> None:
    resolver[NAME] = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert _fails_within(f"http://{NAME}:8/bundle.pem", 1.0) == "Name or service not known"


def test_each_address_the_lookup_found_is_tried_in_turn(resolver: dict[str, object]) -> None:
    # The first address refuses (nothing listens on 127.0.0.2), the second answers.
    with HostileServer("slow", delay=0.0, body=b"pem") as server:
        resolver[NAME] = [_tcp("127.0.0.2", server.port), _tcp("127.0.0.1", server.port)]
        limits = fetch.Limits(max_bytes=100, timeout=3, retries=0)
        url = f"http://{NAME}:{server.port}/bundle.pem"
        fetched = fetch.fetch_url(url, limits, Redactor(), schemes=("http",))
    assert fetched.data == b"pem"
    assert server.paths == ["/bundle.pem"]


# --- through an HTTP proxy (HTTPS_PROXY): the tunnel is inside the deadline too -------------


@pytest.fixture
def trusted_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A throwaway CA the fetch trusts, as a build trusts its machine's (REQUESTS_CA_BUNDLE)."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    return ca


def _through(proxy_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "")


def test_a_download_through_an_honest_proxy_works(
    trusted_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        HostileServer("slow", tls=trusted_ca, delay=0.0, body=b"pem") as server,
        ConnectProxy() as proxy,
    ):
        _through(proxy.url, monkeypatch)
        limits = fetch.Limits(max_bytes=100, timeout=3, retries=0)
        fetched = fetch.fetch_url(server.url(), limits, Redactor())
    assert fetched.data == b"pem"
    assert proxy.tunnels == [f"127.0.0.1:{server.port}"]


def test_a_proxy_that_drips_its_answer_to_connect_ends_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a proxy, the hostile server reads the CONNECT request and drips its answer's header.
    with HostileServer("drip-header", delay=0.05) as proxy:
        _through(f"http://127.0.0.1:{proxy.port}", monkeypatch)
        limits = fetch.Limits(max_bytes=100, timeout=1.0, retries=3)
        started = time.monotonic()
        with pytest.raises(fetch.Unavailable) as error:
            fetch.fetch_url(f"https://{NAME}/bundle.pem", limits, Redactor())
        took = time.monotonic() - started
    assert took < 1.5, f"took {took:.2f} s for a 1 s bound"
    assert error.value.reason == (
        "the proxy did not open the tunnel within the 1 s the download was given"
    )
    assert proxy.paths == [f"{NAME}:443"]


def test_a_slow_honest_answer_may_take_most_of_the_bound() -> None:
    # The old split gave each of four attempts (3 s - 3.5 s of waits) / 4: 0.05 s.
    with HostileServer("slow", delay=1.0, body=b"pem") as server:
        limits = fetch.Limits(max_bytes=100, timeout=3, retries=3)
        fetched = fetch.fetch_url(server.url(), limits, Redactor(), schemes=("http",))
    assert fetched.data == b"pem"


def test_a_retry_is_made_only_with_time_for_a_real_attempt(
    http: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "BACKOFF_FACTOR", 0.3)
    http.script("/flaky", Reply(status=503), Reply(body=b"pem"))
    notes: list[RetryNote] = []
    limits = fetch.Limits(max_bytes=100, timeout=2, retries=3)
    fetched = fetch.fetch_url(
        http.url("/flaky"), limits, Redactor(), schemes=("http",), on_retry=notes.append
    )
    assert fetched.data == b"pem"
    assert [(note.attempt, note.wait) for note in notes] == [(1, 0.3)]
    # 0.7 s of a 1 s bound gone on a slow 503: a retry after 0.3 s would get a sliver. None.
    notes.clear()
    with HostileServer("slow", delay=0.7, status=503) as slow:
        limits = fetch.Limits(max_bytes=100, timeout=1, retries=3)
        with pytest.raises(fetch.Unavailable) as error:
            fetch.fetch_url(
                slow.url(), limits, Redactor(), schemes=("http",), on_retry=notes.append
            )
    assert error.value.status == 503
    assert notes == []
    assert len(slow.paths) == 1


def test_the_deadline_socket_bounds_makefile_reads_and_says_so() -> None:
    from smtp_ca.net.connection import DeadlineExceeded, DeadlineSocket, DownloadClock

    left, right = socket.socketpair()
    with left, right:
        clock = DownloadClock(time.monotonic() + 0.3, "the 0.3 s")
        clock.enter("answer")
        wrapped = DeadlineSocket(left, clock)
        stream = wrapped.makefile("rb")
        right.sendall(b"HTTP/1.1 200")
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as error:
            stream.readline()
        assert 0.25 < time.monotonic() - started < 0.6
        assert str(error.value) == (
            "the server sent its status line too slowly: no whole answer within the 0.3 s"
        )
        with pytest.raises(DeadlineExceeded):
            wrapped.sendall(b"x")  # nothing is left: fails at once
        stream.close()
        wrapped.close()
        assert left.fileno() == -1  # closed once the file made from it was


def test_a_silent_pipe_or_a_fifo_without_writer_is_read_within_the_bound(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(fetch.FileUnreadable) as error:
        fetch.read_file_url(fifo.as_uri(), 100, 0.5)
    assert time.monotonic() - started < 1.0
    assert error.value.detail == (
        "it is a pipe, and nothing arrived within the 0.5 s the read was given"
    )
    reader, writer = os.pipe()
    try:
        os.write(writer, b"pem")
        with pytest.raises(fetch.FileUnreadable, match=r"nothing more arrived within the 0\.5 s"):
            fetch.read_file_url(f"file:///proc/self/fd/{reader}", 100, 0.5)
        os.close(writer)
        writer = -1
    finally:
        os.close(reader)
        if writer != -1:
            os.close(writer)
    # A pipe whose writer ends is read to its end.
    reader, writer = os.pipe()
    os.write(writer, b"pem")
    os.close(writer)
    try:
        assert fetch.read_file_url(f"file:///proc/self/fd/{reader}", 100, 0.5)[0] == b"pem"
    finally:
        os.close(reader)


# --- credentials: none with a certificate's URLs, only the URL's own with the bundle's -------


@pytest.fixture
def netrc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A HOME whose .netrc logs in to 127.0.0.1, and to any other host by default."""
    secret = "netrc-s3cret-password"
    (tmp_path / ".netrc").write_text(
        f"machine 127.0.0.1 login heroku-user password {secret}\n"
        f"default login anyone password {secret}\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    return secret


def _credential_headers(server: LocalServer) -> list[dict[str, str]]:
    names = ("authorization", "cookie", "proxy-authorization")
    return [
        {name: value for name, value in request.headers.items() if name in names}
        for request in server.requests
    ]


def test_a_certificates_url_is_fetched_without_netrc_url_credentials_or_cookies(
    http: LocalServer, netrc_home: str
) -> None:
    http.script(
        "/ca.crt",
        Reply(status=302, headers={"Location": "/ca.der", "Set-Cookie": "sid=c00kie; Path=/"}),
    )
    http.serve("/ca.der", b"DER")
    url = http.url("/ca.crt").replace("http://", "http://cert-user:cert-pass@")
    assert fetch.fetch(url, Deadline(3), max_bytes=100) == b"DER"
    assert fetch.fetch(http.url("/ca.crt"), Deadline(3), max_bytes=100) == b"DER"
    assert [request.path for request in http.requests] == ["/ca.crt", "/ca.der"] * 2
    assert _credential_headers(http) == [{}] * 4


def test_the_bundle_url_sends_its_own_credentials_and_never_the_netrc(
    http: LocalServer, netrc_home: str
) -> None:
    http.serve("/bundle.pem", b"pem")
    http.redirect("/moved.pem", "/bundle.pem")
    http.redirect("/elsewhere.pem", f"http://localhost:{http.port}/bundle.pem")
    limits = fetch.Limits(max_bytes=100, timeout=3, retries=0)

    def get(path: str, userinfo: str = "") -> None:
        url = http.url(path).replace("http://", f"http://{userinfo}")
        fetch.fetch_url(url, limits, Redactor(), schemes=("http",), credentials="url")

    get("/bundle.pem")
    get("/bundle.pem", "deploy:hunter2@")
    get("/moved.pem", "deploy:hunter2@")
    get("/elsewhere.pem", "deploy:hunter2@")
    basic = "Basic " + base64.b64encode(b"deploy:hunter2").decode()
    assert [request.path for request in http.requests] == [
        "/bundle.pem",
        "/bundle.pem",
        *["/moved.pem", "/bundle.pem"],
        *["/elsewhere.pem", "/bundle.pem"],
    ]
    assert _credential_headers(http) == [
        {},  # no user info: no .netrc login either
        {"authorization": basic},
        *[{"authorization": basic}] * 2,  # a redirect on the same server keeps them, as curl
        *[{"authorization": basic}, {}],  # one to another host does not
    ]


# --- proxies: SOCKS refused in words, a refusing proxy named ---------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("HTTPS_PROXY", "socks5h://user:s3cret@127.0.0.1:1080", "socks5h://127.0.0.1:1080"),
        ("all_proxy", "socks4://127.0.0.1:1081", "socks4://127.0.0.1:1081"),
    ],
)
def test_a_socks_proxy_is_refused_before_anything_is_sent(
    http: LocalServer, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, shown: str
) -> None:
    http.serve("/ca.crt", b"DER")
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("NO_PROXY", "")
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable) as error:
        fetch.fetch(http.url("/ca.crt").replace("http:", "https:"), Deadline(3), max_bytes=100)
    assert time.monotonic() - started < 1
    assert error.value.reason == (
        f"{variable} names a SOCKS proxy ({shown}), and SOCKS proxies are not supported: set "
        f"{variable} to an HTTP proxy (http://HOST:PORT), or unset it"
    )
    assert "s3cret" not in f"{error.value.reason} {error.value.hint}"
    assert http.requests == []


def test_a_proxy_that_refuses_is_named_with_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("https_proxy", f"http://user:s3cret@127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    notes: list[RetryNote] = []
    limits = fetch.Limits(max_bytes=100, timeout=2, retries=1)
    with pytest.raises(fetch.Unavailable) as error:
        fetch.fetch_url(f"https://{NAME}/bundle.pem", limits, Redactor(), on_retry=notes.append)
    refused = f"the proxy at 127.0.0.1:{port} (https_proxy) refused the connection"
    assert error.value.reason == refused
    assert error.value.hint == (
        "Check https_proxy: the build reaches the network through the proxy it names. Unset it "
        "if this machine needs no proxy."
    )
    assert [note.reason for note in notes] == [refused]
