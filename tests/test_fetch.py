"""smtp_ca.fetch on its own: limits, schemes, and the AIA/OCSP entry point. Loopback only.

The bundle stage's use of it (retries, conditional GET, redirects to http://, size caps,
credentials in URLs) is tested through ``prepare_bundle`` in test_bundle.py.
"""

from __future__ import annotations

import http.server as http_server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from smtp_ca import fetch
from smtp_ca.output import Redactor
from support.http_server import LocalServer, Reply


class Budget:
    """A deadline as the check has one (smtp_ca.deadline.Deadline's interface)."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


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
    with pytest.raises(fetch.Unavailable, match="the download took more than"):
        fetch.fetch(http.url("/drip"), Budget(1.0), max_bytes=1000)
    assert time.monotonic() - started < 3


def test_the_aia_entry_point(http: LocalServer) -> None:
    http.serve("/ca.cer", b"\x30\x82DER")
    assert fetch.fetch(http.url("/ca.cer"), Budget(5), max_bytes=100) == b"\x30\x82DER"
    assert http.requests_for("/ca.cer")[0].headers["accept"] == "*/*"
    assert fetch.is_fetchable("http://x.test/ca.cer")
    assert not fetch.is_fetchable("ldap://x.test/cn=ca")
    assert not fetch.is_fetchable("http://[::1/ca.cer")
    assert fetch.display_url("http://u:p@x.test/c?t=1") == "http://[REDACTED]@x.test/c?[REDACTED]"


def test_the_aia_entry_point_never_waits_past_the_deadline(http: LocalServer) -> None:
    http.script("/hang", Reply(action="hang", delay=5))
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable):
        fetch.fetch(http.url("/hang"), Budget(0.5), max_bytes=100)
    assert time.monotonic() - started < 2
    expired = Budget(0)
    with pytest.raises(fetch.Unavailable, match="no time was left"):
        fetch.fetch(http.url("/hang"), expired, max_bytes=100)
    with pytest.raises(fetch.InvalidUrl):
        fetch.fetch("ldap://x.test/cn=ca", Budget(5), max_bytes=100)


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
            Budget(5),
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
    assert fetch.read_file_url(path.as_uri(), 10) == (b"pem", path)
    with pytest.raises(fetch.TooLarge):
        fetch.read_file_url(path.as_uri(), 2)
    with pytest.raises(fetch.FileMissing):
        fetch.read_file_url((tmp_path / "gone").as_uri(), 10)
    with pytest.raises(fetch.FileUnreadable):
        fetch.read_file_url(tmp_path.as_uri(), 10)  # a directory
    with pytest.raises(fetch.NotLocal):
        fetch.read_file_url("file://other.host/b.pem", 10)
    with pytest.raises(fetch.NotAbsolute):
        fetch.read_file_url("file:b.pem", 10)


def test_retries_and_redirects_share_the_overall_deadline(http: LocalServer) -> None:
    """Each try of a hanging server would wait the whole timeout: with ``ends_at`` the tries
    and the redirects before them share what is left, so the download ends near it."""
    http.script("/hang", Reply(action="hang", delay=10))
    http.redirect("/start", http.url("/hang"))
    limits = fetch.Limits(max_bytes=100, timeout=2.0, retries=3, ends_at=time.monotonic() + 2.0)
    started = time.monotonic()
    with pytest.raises(fetch.Unavailable):
        fetch.fetch_url(http.url("/start"), limits, Redactor(), schemes=("http",))
    # Without the shared deadline: 4 tries x 2 s. With it: about 2 s, plus the short backoffs.
    assert time.monotonic() - started < 4.0
    assert http.count("/hang") >= 2  # it did retry, within the deadline
