"""Getting bytes from a URL, within limits: https:// (and http:// where the caller allows it) and
file://.

Every fetch has a deadline, a size cap and a redirect limit, and the first two have no default:
each caller says how much it is prepared to wait for and to read. The deadline covers every
byte (connect, TLS, status line, headers, body, redirects, retries): ``net.connection`` keeps it
in the sockets under requests, and a ``file://`` source that is a pipe or device is polled
with what is left of it.
Nothing here knows which config var or certificate a URL came from: failures are ``FetchError``
subclasses whose ``reason`` is a phrase with no credentials or query in it, and the caller turns
them into a message that names the variable or the certificate.

Two entry points:

* ``fetch_url(url, Limits(...), redactor, ...)``: the bundle stage's download of
  SMTP_CA_BUNDLE_URL (https:// only, retries, conditional GET, the caller's redactor).
* ``fetch(url, deadline, max_bytes=..., accept=...)``: the check's AIA (caIssuers), OCSP and
  CRL fetches, http:// or https:// (what they fetch is signed, so how it travels does not
  matter), no retries, bounded by what is left of the check's one deadline. Their URLs come
  from a certificate anyone could have written: they are fetched without credentials of any
  kind (``net.credentials``). A CRL can be megabytes: its body goes to a ``sink`` (a file) as
  it arrives, never whole into memory.

Both go through the proxy the environment names (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY),
except a SOCKS proxy, which is refused in so many words before anything is sent
(``net.proxy``): what cannot be fetched is ``Unavailable``, so a cached copy stands in.

``requests`` is imported inside the functions that use it: a build from a file:// source, or
from the bundle cache, never loads it.
"""

from __future__ import annotations

import math
import os
import select
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from smtp_ca.output import Redactor
from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    import requests

    from smtp_ca.net.connection import DownloadClock
    from smtp_ca.net.credentials import Credentials
    from smtp_ca.net.retry import RetryNote

MAX_REDIRECTS = 3
# The n-th retry waits f * 2**(n-1) seconds: 0.5 s, 1 s, 2 s for three retries.
BACKOFF_FACTOR = 0.5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A retry is made only if, after its wait, this much time is left for it (or a quarter of the
# bound, when that is less): an attempt squeezed into the last 50 ms could not succeed.
MIN_ATTEMPT_SECONDS = 1.0
USER_AGENT = "heroku-buildpack-smtp-ca"


@dataclass(frozen=True)
class Limits:
    """What one fetch may cost. No defaults for the first two, on purpose."""

    max_bytes: int  # the body is refused past this many bytes, whatever Content-Length says
    # Seconds for the whole fetch: connect, TLS, status line, headers, body, redirects, and
    # every retry with the waits before it. The first attempt may use all of it.
    timeout: float
    retries: int = 3  # for connection errors and 429/5xx answers, while time is left
    max_redirects: int = MAX_REDIRECTS
    # The time.monotonic() the fetch ends by, when the caller's clock started earlier;
    # without it, ``timeout`` seconds from the call.
    ends_at: float | None = None
    # How messages name the bound: "the 5 s the download was given" by default.
    bound: str | None = None


@dataclass(frozen=True)
class Validators:
    """An earlier answer's ETag / Last-Modified, which make the request conditional."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    data: bytes  # empty when not_modified
    not_modified: bool  # a 304 answer to a conditional request
    etag: str | None
    last_modified: str | None
    url: str  # after redirects


class FetchError(Exception):
    """The URL could not be read. ``reason`` is safe to print; ``hint`` says what may help."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class Unavailable(FetchError):
    """It could not be read this time (network, server, timeout): a cached copy may stand in."""

    def __init__(self, reason: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(reason, hint)
        self.status = status  # the HTTP status of a final non-200 answer, if there was one


class TooLarge(FetchError):
    def __init__(self, where: str, limit: int) -> None:
        super().__init__(f"{where} is larger than {limit} bytes")
        self.where = where  # display URL or path
        self.limit = limit


class InvalidUrl(FetchError):
    """The URL itself is malformed; ``reason`` is the library's words, already redacted."""


class SchemeRefused(FetchError):
    """A redirect left the allowed schemes (https:// to http://, for example)."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"{source} redirects to {target}")
        self.source = source  # display URLs
        self.target = target


class NotLocal(FetchError):
    """A file:// URL that names a host other than this machine."""

    def __init__(self, host: str) -> None:
        super().__init__(f"names a file on another host ({host})")
        self.host = host


class NotAbsolute(FetchError):
    """A file:// URL whose path is relative."""


class FileMissing(FetchError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} does not exist")
        self.path = path


class FileUnreadable(FetchError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"could not read {path}: {detail}")
        self.path = path
        self.detail = detail


# --- file:// ----------------------------------------------------------------------------------


def read_file_url(url: str, max_bytes: int, timeout: float) -> tuple[bytes, Path]:
    """The bytes of a ``file://`` URL on this machine, at most ``max_bytes`` of them.

    A regular file is read as it is. Anything else (a pipe such as /dev/stdin, a FIFO, a
    device) is opened without blocking and read as it becomes readable, for at most
    ``timeout`` seconds: a FIFO with no writer, or a pipe that stays silent, would otherwise
    block the build in open() or read() until the platform killed it.
    """
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise NotLocal(parts.netloc.rpartition("@")[2])
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise NotAbsolute(f"{url} is not an absolute file:// path")
    ends_at = time.monotonic() + timeout
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileMissing(path) from None
    except OSError as error:
        raise FileUnreadable(path, str(error.strerror or error)) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISREG(mode):
            with os.fdopen(descriptor, "rb", closefd=False) as stream:
                data = stream.read(max_bytes + 1)
        else:
            data = _read_when_ready(descriptor, max_bytes + 1, ends_at, path, mode, timeout)
    except OSError as error:
        raise FileUnreadable(path, str(error.strerror or error)) from None
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise TooLarge(str(path), max_bytes)
    return data, path


def _read_when_ready(
    descriptor: int, limit: int, ends_at: float, path: Path, mode: int, timeout: float
) -> bytes:
    """Up to ``limit`` bytes of a pipe or device, until its end or ``ends_at``."""
    chunks: list[bytes] = []
    size = 0
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    while size < limit:
        left = ends_at - time.monotonic()
        if left <= 0 or not poller.poll(max(1, math.ceil(left * 1000))):
            kind = "a pipe" if stat.S_ISFIFO(mode) else "not a regular file"
            nothing = "nothing more" if chunks else "nothing"
            raise FileUnreadable(
                path,
                f"it is {kind}, and {nothing} arrived within the {seconds(timeout)} s the "
                "read was given",
            )
        try:
            chunk = os.read(descriptor, min(64 * 1024, limit - size))
        except BlockingIOError:
            continue
        if not chunk:  # the writer closed its end
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


# --- http(s):// -------------------------------------------------------------------------------


class Budget(Protocol):
    """What is left of a deadline (``smtp_ca.net.deadline.Deadline``)."""

    def remaining(self) -> float:
        """Seconds left; raises ``TimeoutError`` when there are none."""
        ...


def is_fetchable(url: str) -> bool:
    """Whether ``url`` is one ``fetch`` may read: http:// or https://, with a host."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def fetch(
    url: str,
    deadline: Budget,
    *,
    max_bytes: int,
    accept: str = "*/*",
    body: bytes | None = None,
    content_type: str | None = None,
    sink: Callable[[bytes], object] | None = None,
) -> bytes:
    """The body of an http(s):// URL from a certificate (AIA, OCSP, CRL), within what is left
    of ``deadline``, sent without credentials: no ``.netrc`` login, no user info from the URL,
    no cookies.

    With ``sink``, each piece of the body is handed to it as it arrives (the cap still holds)
    and the return value is empty. No retries: the check's deadline is shared by every step,
    and a second try would only take time from them. Raises a ``FetchError`` (``TimeoutError``
    never escapes).
    """
    if not is_fetchable(url):
        raise InvalidUrl(f"{display_url(url)} is not an http:// or https:// URL")
    try:
        left = deadline.remaining()
    except TimeoutError:
        raise Unavailable("no time was left for it") from None
    fetched = fetch_url(
        url,
        Limits(
            max_bytes=max_bytes,
            timeout=left,
            retries=0,
            ends_at=time.monotonic() + left,
            bound=f"the {seconds(left)} s left of the check",
        ),
        Redactor(),
        schemes=("http", "https"),
        body=body,
        content_type=content_type,
        accept=accept,
        credentials="none",
        sink=sink,
    )
    return fetched.data


def fetch_url(
    url: str,
    limits: Limits,
    redactor: Redactor,
    *,
    validators: Validators | None = None,
    schemes: Sequence[str] = ("https",),
    body: bytes | None = None,
    content_type: str | None = None,
    accept: str = "*/*",
    on_retry: Callable[[RetryNote], None] | None = None,
    credentials: Credentials = "none",
    sink: Callable[[bytes], object] | None = None,
) -> Fetched:
    """GETs ``url`` (POSTs ``body`` when given), following redirects within ``schemes``.

    ``credentials``: "none" sends no ``Authorization`` and no cookies; "url" sends the user and
    password written in a URL to that URL (SMTP_CA_BUNDLE_URL). ``.netrc`` is never read
    (``net.credentials``). The body is returned, or, with ``sink``, handed to it piece by
    piece as it arrives.

    Each failed attempt that is tried again is handed to ``on_retry``, which says so in the
    build's own words: urllib3's own log lines are kept out of the build log.

    The URL and every redirect target must be in ``schemes``. Secrets in
    ``url`` and in redirect targets are added to ``redactor``, which also redacts any library
    text this function puts in an error. Trust comes from requests' default (REQUESTS_CA_BUNDLE
    or CURL_CA_BUNDLE when the build environment sets one, such as a TLS-intercepting proxy's
    CA; else certifi).
    """
    import requests

    from smtp_ca.net.connection import (
        DeadlineAdapter,
        DownloadClock,
        describe_network_error,
        urllib3_quiet,
    )
    from smtp_ca.net.credentials import auth_for, refuse_cookies
    from smtp_ca.net.proxy import proxy_for
    from smtp_ca.net.retry import ReportingRetry

    redactor.add_url_secrets(url)
    if urlsplit(url).scheme.lower() not in schemes:
        raise InvalidUrl(f"{display_url(url)} is not a {' or '.join(schemes)} URL")
    # The one deadline of the whole fetch: every attempt, wait, redirect and byte.
    ends_at = limits.ends_at if limits.ends_at is not None else time.monotonic() + limits.timeout
    bound = limits.bound or f"the {seconds(limits.timeout)} s the download was given"
    clock = DownloadClock(ends_at, bound)
    method = "GET" if body is None else "POST"
    retry = ReportingRetry(
        total=limits.retries,
        connect=limits.retries,
        read=limits.retries,
        status=limits.retries,
        other=0,
        allowed_methods=frozenset({method}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,  # read now, so tests can make it fast
        # A Retry-After of an hour would stall the build: back off on our own schedule.
        respect_retry_after_header=False,
        # After the last retry, hand back the 5xx answer so the message can show its status.
        raise_on_status=False,
        on_retry=on_retry,
        describe=lambda error: describe_network_error(error, clock)[0],
        clock=clock,
        # A retry needs time for a real attempt after its wait, not a sliver of one.
        min_attempt=min(MIN_ATTEMPT_SECONDS, limits.timeout / 4),
        attempts=limits.retries + 1,
    )
    headers = {"User-Agent": USER_AGENT, "Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    if validators is not None:
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
    conditional = "If-None-Match" in headers or "If-Modified-Since" in headers

    with requests.Session() as session, urllib3_quiet():
        adapter = DeadlineAdapter(clock, max_retries=retry)
        for scheme in schemes:
            session.mount(f"{scheme}://", adapter)
        if credentials == "none":
            refuse_cookies(session)
        for hop in range(limits.max_redirects + 1):
            clock.redirects = hop
            # The proxy requests is about to use for this URL (each redirect's may differ):
            # a SOCKS one is refused here, and a failure is blamed on the proxy by its name.
            clock.proxy = proxy_for(url)
            if clock.proxy is not None:
                redactor.add_url_secrets(clock.proxy.url)  # a library's words may quote it
                if clock.proxy.is_socks:
                    raise Unavailable(clock.proxy.socks_refusal())
            try:
                # The sockets keep to the clock; this timeout only keeps urllib3's own
                # defaults out of the way.
                timeout = clock.left()
                response = session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=(timeout, timeout),
                    stream=True,
                    # Redirects are followed below, so that each target's scheme is checked.
                    allow_redirects=False,
                    auth=auth_for(url, credentials),
                )
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as error:
                raise InvalidUrl(shown(redactor(str(error)))) from None
            except (requests.RequestException, TimeoutError) as error:
                raise Unavailable(*describe_network_error(error, clock)) from None
            with response:
                if response.is_redirect:
                    url = _redirect_target(url, response, schemes, redactor)
                    if method == "POST" and response.status_code in (301, 302, 303):
                        method, body = "GET", None
                    continue
                return _read_response(response, conditional, limits, clock, sink)
    raise Unavailable(f"more than {limits.max_redirects} redirects")


def seconds(value: float) -> str:
    """A duration as messages print it: 30, 7.5, 0.05."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _redirect_target(
    url: str, response: requests.Response, schemes: Sequence[str], redactor: Redactor
) -> str:
    target = urljoin(url, response.headers["location"])
    # Signed download links (S3, GitHub releases) carry their token in the query.
    redactor.add_url_secrets(target)
    if urlsplit(target).scheme.lower() not in schemes:
        raise SchemeRefused(display_url(url), display_url(target))
    return target


def _read_response(
    response: requests.Response,
    conditional: bool,
    limits: Limits,
    clock: DownloadClock,
    sink: Callable[[bytes], object] | None = None,
) -> Fetched:
    import requests
    import urllib3

    from smtp_ca.net.connection import body_chunks, describe_network_error

    status = response.status_code
    etag = response.headers.get("ETag")
    last_modified = response.headers.get("Last-Modified")
    if status == 304 and conditional:
        return Fetched(b"", True, etag, last_modified, response.url)
    if status != 200:
        reason = shown((response.reason or "").strip())
        raise Unavailable(
            f"the server answered HTTP {status}{' ' + reason if reason else ''}", status=status
        )
    length = response.headers.get("Content-Length", "")
    if length.isascii() and length.isdigit() and int(length) > limits.max_bytes:
        raise TooLarge(display_url(response.url), limits.max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        # Content-Length can lie or be absent: the cap is enforced on what arrives. The
        # clock's socket ends a body that drips past the deadline.
        for chunk in body_chunks(response):
            size += len(chunk)
            if size > limits.max_bytes:
                raise TooLarge(display_url(response.url), limits.max_bytes)
            if sink is None:
                chunks.append(chunk)
            else:
                sink(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        raise Unavailable(*describe_network_error(error, clock)) from None
    return Fetched(b"".join(chunks), False, etag, last_modified, response.url)


# --- secrets in URLs --------------------------------------------------------------------------


def display_url(url: str) -> str:
    """``url`` without its user info and query, which may hold credentials or tokens."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = "[REDACTED]@" if "@" in parts.netloc else ""
    query = "?[REDACTED]" if parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{parts.path}{query}"
