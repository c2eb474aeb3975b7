"""Getting bytes from a URL, within limits: https:// (and http:// where the caller allows it) and
file://.

Every request has a timeout, a size cap, a redirect limit and a deadline for the whole body, and
the first two have no default: each caller says how much it is prepared to wait for and to read.
Nothing here knows which config var or certificate a URL came from: failures are ``FetchError``
subclasses whose ``reason`` is a phrase with no credentials or query in it, and the caller turns
them into a message that names the variable or the certificate.

Two entry points:

* ``fetch_url(url, Limits(...), redactor, ...)``: the bundle stage's download of
  SMTP_CA_BUNDLE_URL (https:// only, retries, conditional GET, the caller's redactor).
* ``fetch(url, deadline, max_bytes=..., accept=...)``: the check's AIA (caIssuers) and OCSP
  fetches, http:// or https:// (what they fetch is signed, so how it travels does not matter),
  no retries, bounded by what is left of the check's one deadline.

``requests`` is imported inside the functions that use it: a build from a file:// source, or
from the bundle cache, never loads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from smtp_ca.certificates import printable
from smtp_ca.output import Redactor
from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    import requests

    from smtp_ca.retry import RetryNote

MAX_REDIRECTS = 3
# The n-th retry waits f * 2**(n-1) seconds: 0.5 s, 1 s, 2 s for three retries.
BACKOFF_FACTOR = 0.5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# The body must arrive within this many read timeouts: a server that drips one byte per
# second never trips the read timeout, and must not hold the build for an hour.
BODY_DEADLINE_FACTOR = 3
USER_AGENT = "heroku-buildpack-smtp-ca"


@dataclass(frozen=True)
class Limits:
    """What one fetch may cost. No defaults for the first two, on purpose."""

    max_bytes: int  # the body is refused past this many bytes, whatever Content-Length says
    timeout: float  # seconds, for the connect and for each read; the body gets 3x this in all
    retries: int = 3  # for connection errors, timeouts and 429/5xx answers
    max_redirects: int = MAX_REDIRECTS
    # A time.monotonic() past which the body is abandoned (a shared deadline); without it the
    # body gets BODY_DEADLINE_FACTOR timeouts from the start of the answer.
    ends_at: float | None = None


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


def read_file_url(url: str, max_bytes: int) -> tuple[bytes, Path]:
    """The bytes of a ``file://`` URL on this machine, at most ``max_bytes`` of them."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise NotLocal(parts.netloc.rpartition("@")[2])
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise NotAbsolute(f"{url} is not an absolute file:// path")
    try:
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise FileMissing(path) from None
    except OSError as error:
        raise FileUnreadable(path, str(error.strerror or error)) from None
    if len(data) > max_bytes:
        raise TooLarge(str(path), max_bytes)
    return data, path


# --- http(s):// -------------------------------------------------------------------------------


class Budget(Protocol):
    """What is left of a deadline (``smtp_ca.deadline.Deadline``)."""

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
) -> bytes:
    """The body of an http(s):// URL (AIA, OCSP), within what is left of ``deadline``.

    No retries: the check's deadline is shared by every step, and a second try would only
    take time from them. Raises a ``FetchError`` (``TimeoutError`` never escapes).
    """
    if not is_fetchable(url):
        raise InvalidUrl(f"{display_url(url)} is not an http:// or https:// URL")
    try:
        seconds = deadline.remaining()
    except TimeoutError:
        raise Unavailable("no time was left for it") from None
    fetched = fetch_url(
        url,
        Limits(
            max_bytes=max_bytes,
            timeout=seconds,
            retries=0,
            ends_at=time.monotonic() + seconds,
        ),
        Redactor(),
        schemes=("http", "https"),
        body=body,
        content_type=content_type,
        accept=accept,
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
) -> Fetched:
    """GETs ``url`` (POSTs ``body`` when given), following redirects within ``schemes``.

    Each failed attempt that is tried again is handed to ``on_retry``, which says so in the
    build's own words: urllib3's own log lines are kept out of the build log.

    The URL and every redirect target must be in ``schemes``. Secrets in
    ``url`` and in redirect targets are added to ``redactor``, which also redacts any library
    text this function puts in an error. Trust comes from requests' default (REQUESTS_CA_BUNDLE
    or CURL_CA_BUNDLE when the build environment sets one, such as a TLS-intercepting proxy's
    CA; else certifi).
    """
    import requests
    from requests.adapters import HTTPAdapter

    from smtp_ca.retry import ReportingRetry

    redactor.add_url_secrets(url)
    if urlsplit(url).scheme.lower() not in schemes:
        raise InvalidUrl(f"{display_url(url)} is not a {' or '.join(schemes)} URL")
    method = "GET" if body is None else "POST"
    backoff_factor = BACKOFF_FACTOR  # read now, so tests can make it fast
    timeout = _attempt_timeout(limits, backoff_factor)
    retry = ReportingRetry(
        total=limits.retries,
        connect=limits.retries,
        read=limits.retries,
        status=limits.retries,
        other=0,
        allowed_methods=frozenset({method}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        # A Retry-After of an hour would stall the build: back off on our own schedule.
        respect_retry_after_header=False,
        # After the last retry, hand back the 5xx answer so the message can show its status.
        raise_on_status=False,
        on_retry=on_retry,
        describe=lambda error: describe_network_error(error, timeout)[0],
        ends_at=limits.ends_at,
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

    with requests.Session() as session, _urllib3_quiet():
        adapter = HTTPAdapter(max_retries=retry)
        for scheme in schemes:
            session.mount(f"{scheme}://", adapter)
        for _hop in range(limits.max_redirects + 1):
            timeout = _attempt_timeout(limits, backoff_factor)
            try:
                response = session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=(timeout, timeout),
                    stream=True,
                    # Redirects are followed below, so that each target's scheme is checked.
                    allow_redirects=False,
                )
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as error:
                raise InvalidUrl(redactor(printable(str(error)))) from None
            except requests.RequestException as error:
                raise Unavailable(*describe_network_error(error, timeout)) from None
            with response:
                if response.is_redirect:
                    url = _redirect_target(url, response, schemes, redactor)
                    if method == "POST" and response.status_code in (301, 302, 303):
                        method, body = "GET", None
                    continue
                return _read_response(response, conditional, limits)
    raise Unavailable(f"more than {limits.max_redirects} redirects")


@contextmanager
def _urllib3_quiet() -> Iterator[None]:
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


def _attempt_timeout(limits: Limits, backoff_factor: float) -> float:
    """The connect and read timeout of one attempt. With ``ends_at``, the attempts of a hop
    (the first and its retries) share what is left after the waits between them, so that
    retries and redirects together cannot outlast it; without, each attempt gets
    ``limits.timeout``."""
    if limits.ends_at is None:
        return limits.timeout
    from smtp_ca.retry import total_backoff

    left = limits.ends_at - time.monotonic()
    if left <= 0:
        raise Unavailable(
            f"no answer within the {seconds(limits.timeout)} s the download was given"
        )
    waits = total_backoff(limits.retries, backoff_factor)
    return max(0.05, min(limits.timeout, (left - waits) / (limits.retries + 1)))


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


def _read_response(response: requests.Response, conditional: bool, limits: Limits) -> Fetched:
    import requests
    import urllib3

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
    allowed = BODY_DEADLINE_FACTOR * limits.timeout
    too_slow = f"the download took more than {seconds(allowed)} s"
    if limits.ends_at is not None:
        allowed = max(0.0, min(allowed, limits.ends_at - time.monotonic()))
        too_slow = f"no whole answer within the {seconds(limits.timeout)} s the download was given"
    deadline = time.monotonic() + allowed
    chunks: list[bytes] = []
    size = 0
    try:
        # Content-Length can lie or be absent: the cap is enforced on what arrives.
        for chunk in _body_chunks(response):
            size += len(chunk)
            if size > limits.max_bytes:
                raise TooLarge(display_url(response.url), limits.max_bytes)
            if time.monotonic() > deadline:
                raise Unavailable(too_slow)
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        raise Unavailable(*describe_network_error(error, limits.timeout)) from None
    return Fetched(b"".join(chunks), False, etag, last_modified, response.url)


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, decoded.

    ``iter_content`` waits until a whole chunk has arrived, so a server dripping bytes would
    never reach the deadline check; urllib3's ``read1`` (2.3 and later) returns after one read.
    """
    raw = response.raw
    if not hasattr(raw, "read1"):
        yield from response.iter_content(4 * 1024)
        return
    while chunk := raw.read1(64 * 1024, decode_content=True):
        yield chunk


def describe_network_error(error: BaseException, timeout: float) -> tuple[str, str | None]:
    """A short reason for a failed request, and a hint; no URL, so nothing secret.

    requests wraps urllib3 wraps socket errors; the useful words are at the bottom of the
    chain ("Connection refused", "certificate verify failed: unable to get local issuer").
    """
    import ssl

    chain = _exception_chain(error)
    names = {type(e).__name__ for e in chain}
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return (
                f"its TLS certificate could not be verified ({item.verify_message})",
                "If the build reaches the internet through a TLS-intercepting proxy, set "
                "REQUESTS_CA_BUNDLE to a file with that proxy's CA certificate in the build's "
                "environment (a config var does not reach it during the build).",
            )
    if "ConnectTimeoutError" in names or "ConnectTimeout" in names:
        return f"could not connect within {seconds(timeout)} s", None
    if "ReadTimeoutError" in names or any(isinstance(e, TimeoutError) for e in chain):
        return f"no answer within {seconds(timeout)} s", None
    for item in reversed(chain):
        if isinstance(item, ssl.SSLError):
            return f"the TLS handshake failed ({item.reason or item})", None
    for item in reversed(chain):
        if isinstance(item, OSError) and item.strerror:
            return item.strerror, None
    innermost = chain[-1]
    return printable(str(innermost) or type(innermost).__name__), None


def _exception_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    queue: list[BaseException] = [error]
    while queue:
        item = queue.pop(0)
        if any(item is seen for seen in chain):
            continue
        chain.append(item)
        # urllib3's MaxRetryError keeps its cause in .reason, ProtocolError in its args.
        queue.extend(
            e
            for e in (getattr(item, "reason", None), item.__cause__, item.__context__, *item.args)
            if isinstance(e, BaseException)
        )
    return chain


# --- secrets in URLs --------------------------------------------------------------------------


def display_url(url: str) -> str:
    """``url`` without its user info and query, which may hold credentials or tokens."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = "[REDACTED]@" if "@" in parts.netloc else ""
    query = "?[REDACTED]" if parts.query else ""
    return f"{parts.scheme}://{userinfo}{host}{parts.path}{query}"
