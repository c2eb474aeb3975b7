"""A real SMTP server on loopback for end-to-end tests (aiosmtpd + a throwaway CA from trustme).

Three modes:

* ``"starttls"``: plain TCP, STARTTLS offered and (by default) required before MAIL/AUTH;
* ``"implicit-tls"``: TLS from the first byte (SMTPS, what Mastodon's ``SMTP_TLS=true`` speaks);
* ``"plain"``: no TLS offered at all.

Hostname choice, made explicit: the server listens on ``127.0.0.1`` (:data:`LOOPBACK`) and, unless
told otherwise, presents a leaf issued by its own throwaway CA for both ``localhost`` and
``127.0.0.1`` (:data:`DEFAULT_CERT_NAMES`), so a client may use either as its SMTP_SERVER and
verify the name. Any other chain (leaf from an intermediate, wrong name, expired, ...) can be
presented by passing an :class:`ssl.SSLContext` or cert-chain/key files.

Usage::

    with SMTPTestServer(mode="starttls", credentials=("apikey", "s3cret")) as server:
        server.write_ca_pem(tmp_path / "ca.pem")
        ...  # point a client at server.host:server.port
        assert server.messages[0].tls

Every delivered message is recorded (:class:`ReceivedMessage`), and so is every AUTH attempt:
:attr:`SMTPTestServer.auth_commands` holds every AUTH command received, even one refused before
TLS or for an unknown mechanism; :attr:`SMTPTestServer.auth_attempts` the ones checked against
the credentials.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Mode = Literal["starttls", "implicit-tls", "plain"]
MODES: tuple[Mode, ...] = ("starttls", "implicit-tls", "plain")

#: The address every test server binds to. Only loopback is ever used.
LOOPBACK = "127.0.0.1"
#: Names the default leaf certificate is valid for (a DNS name and an IP SAN).
DEFAULT_CERT_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1")
#: The name the server announces in its banner and EHLO reply.
SERVER_HOSTNAME = "localhost"

# aiosmtpd logs a traceback on "mail.log" for every failed client handshake; tests that expect
# "certificate verify failed" would drown in them. Quieted while at least one server runs.
_MAIL_LOG = logging.getLogger("mail.log")
_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_level = logging.NOTSET


def _quiet_mail_log() -> None:
    global _quiet_depth, _saved_level
    with _quiet_lock:
        if _quiet_depth == 0:
            _saved_level = _MAIL_LOG.level
            _MAIL_LOG.setLevel(logging.CRITICAL)
        _quiet_depth += 1


def _restore_mail_log() -> None:
    global _quiet_depth
    with _quiet_lock:
        _quiet_depth -= 1
        if _quiet_depth == 0:
            _MAIL_LOG.setLevel(_saved_level)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (aiosmtpd's ``Controller(port=0)`` does not work)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def write_ca_pem(ca: trustme.CA, path: Path) -> Path:
    """Write ``ca``'s certificate (PEM) to ``path`` (parents created); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ca.cert_pem.bytes())
    return path


def server_ssl_context(ca: trustme.CA, names: Sequence[str] = DEFAULT_CERT_NAMES) -> ssl.SSLContext:
    """A server-side context presenting a fresh leaf for ``names`` issued by ``ca`` (plus chain)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def server_ssl_context_from_files(cert_chain: Path, key: Path) -> ssl.SSLContext:
    """A server-side context presenting exactly the PEM chain in ``cert_chain`` (leaf first)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile=str(cert_chain), keyfile=str(key))
    return ctx


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted (after the final ``250`` to DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    #: True when the session carrying the message was TLS (after STARTTLS or implicit TLS).
    tls: bool
    #: e.g. "TLSv1.3"; None without TLS.
    tls_version: str | None
    #: The login that authenticated the session, None when the session did not authenticate.
    authenticated_as: str | None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str
    success: bool
    tls: bool


class _RecordingHandler:
    def __init__(self, owner: SMTPTestServer) -> None:
        self._owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        ssl_object = _ssl_object(server)
        auth_data = session.auth_data if session.authenticated else None
        content = envelope.original_content or b""
        if not isinstance(content, bytes):  # pragma: no cover - decode_data is False
            content = str(content).encode()
        self._owner._record_message(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=content,
                tls=ssl_object is not None,
                tls_version=ssl_object.version() if ssl_object is not None else None,
                authenticated_as=str(auth_data) if auth_data is not None else None,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


def _ssl_object(server: SMTP) -> ssl.SSLObject | ssl.SSLSocket | None:
    transport = server.transport
    if transport is None:
        return None
    obj: Any = transport.get_extra_info("ssl_object")
    return obj if isinstance(obj, ssl.SSLObject | ssl.SSLSocket) else None


class _Controller(Controller):
    """aiosmtpd's Controller, plus: under implicit TLS, AUTH counts as "over TLS".

    aiosmtpd only counts STARTTLS as TLS for ``auth_require_tls``, so on an SMTPS port it would
    never offer AUTH. Every byte of an implicit-TLS session is encrypted, so lift that check
    there (setting ``auth_require_tls=False`` up front would warn on every connection).
    """

    def __init__(
        self, *args: Any, implicit_tls: bool, owner: SMTPTestServer, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._implicit_tls = implicit_tls
        self._owner = owner

    def factory(self) -> SMTP:
        smtpd: SMTP = super().factory()  # type: ignore[no-untyped-call]
        if self._implicit_tls:
            smtpd._auth_require_tls = False
        # Every AUTH command, before aiosmtpd decides anything: one refused before TLS or for
        # an unknown mechanism never reaches the authenticator, but it is still a login try.
        handle_auth = smtpd._smtp_methods["AUTH"]
        owner = self._owner

        async def recording_auth(arg: str) -> None:
            owner._record_auth_command(arg.split()[0].upper() if arg and arg.split() else "")
            await handle_auth(arg)

        smtpd._smtp_methods["AUTH"] = recording_auth
        return smtpd


class SMTPTestServer:
    """A threaded aiosmtpd server on ``127.0.0.1:<free port>``; a context manager.

    TLS material, first match wins: ``ssl_context``; ``cert_chain_file`` + ``key_file``; else a
    fresh leaf for ``cert_names`` issued by ``ca`` (a new throwaway CA when not given).
    :attr:`ca` is always the throwaway/given CA, even when a custom context is presented.

    ``credentials=(login, password)`` turns on AUTH PLAIN/LOGIN with exactly that pair, and (by
    default) requires it before MAIL. Without credentials no AUTH is offered at all. As aiosmtpd
    does, AUTH is refused before TLS unless ``auth_require_tls=False``.
    """

    def __init__(
        self,
        *,
        mode: Mode = "starttls",
        ca: trustme.CA | None = None,
        cert_names: Sequence[str] = DEFAULT_CERT_NAMES,
        ssl_context: ssl.SSLContext | None = None,
        cert_chain_file: Path | None = None,
        key_file: Path | None = None,
        credentials: tuple[str, str] | None = None,
        auth_required: bool | None = None,
        auth_require_tls: bool = True,
        require_starttls: bool = True,
        host: str = LOOPBACK,
        server_hostname: str = SERVER_HOSTNAME,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        if (cert_chain_file is None) != (key_file is None):
            raise ValueError("cert_chain_file and key_file go together")
        self.mode: Mode = mode
        self.host = host
        self.server_hostname = server_hostname
        self.ca: trustme.CA = ca if ca is not None else trustme.CA()
        self.credentials = credentials
        self.port = 0
        if ssl_context is not None:
            self.ssl_context: ssl.SSLContext | None = ssl_context
        elif cert_chain_file is not None and key_file is not None:
            self.ssl_context = server_ssl_context_from_files(cert_chain_file, key_file)
        else:
            self.ssl_context = server_ssl_context(self.ca, cert_names)
        if mode == "plain":
            self.ssl_context = None

        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._auth_attempts: list[AuthAttempt] = []
        self._auth_commands: list[str] = []
        self._controller: Controller | None = None

        smtp_kwargs: dict[str, Any] = {
            "auth_require_tls": auth_require_tls,
            "server_hostname": server_hostname,
        }
        if mode == "starttls":
            smtp_kwargs["tls_context"] = self.ssl_context
            smtp_kwargs["require_starttls"] = require_starttls
        elif mode == "implicit-tls":
            smtp_kwargs["ssl_context"] = self.ssl_context
        if credentials is not None:
            smtp_kwargs["authenticator"] = self._authenticate
            smtp_kwargs["auth_required"] = True if auth_required is None else auth_required
        else:
            smtp_kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
        self._smtp_kwargs = smtp_kwargs

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SMTPTestServer:
        if self._controller is not None:
            raise RuntimeError("server already started")
        _quiet_mail_log()
        try:
            # A free port can be taken between probing and binding; retry a few times.
            last_error: Exception | None = None
            for _ in range(5):
                port = free_port(self.host)
                controller = _Controller(
                    _RecordingHandler(self),
                    hostname=self.host,
                    port=port,
                    implicit_tls=self.mode == "implicit-tls",
                    owner=self,
                    **self._smtp_kwargs,
                )
                try:
                    controller.start()
                except OSError as exc:
                    last_error = exc
                    continue
                self._controller, self.port = controller, port
                return self
            raise RuntimeError(f"could not start SMTP test server: {last_error}")
        except BaseException:
            _restore_mail_log()
            raise

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        try:
            controller.stop()
        finally:
            _restore_mail_log()

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what happened ---------------------------------------------------------------------

    @property
    def messages(self) -> tuple[ReceivedMessage, ...]:
        with self._lock:
            return tuple(self._messages)

    @property
    def auth_attempts(self) -> tuple[AuthAttempt, ...]:
        with self._lock:
            return tuple(self._auth_attempts)

    @property
    def auth_commands(self) -> tuple[str, ...]:
        """The mechanism named by every AUTH command received, accepted or refused."""
        with self._lock:
            return tuple(self._auth_commands)

    def wait_for_messages(
        self, count: int = 1, timeout: float = 5.0
    ) -> tuple[ReceivedMessage, ...]:
        """Block until at least ``count`` messages arrived; raise ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} message(s), got {len(self._messages)} in {timeout}s"
                    )
                self._lock.wait(remaining)
            return tuple(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._auth_attempts.clear()
            self._auth_commands.clear()

    # -- helpers ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def write_ca_pem(self, path: Path) -> Path:
        """Write this server's CA certificate (PEM) to ``path``; return ``path``."""
        return write_ca_pem(self.ca, path)

    def _record_message(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)
            self._lock.notify_all()

    def _record_auth_command(self, mechanism: str) -> None:
        with self._lock:
            self._auth_commands.append(mechanism)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", errors="replace")
        password = auth_data.password.decode("utf-8", errors="replace")
        ok = (login, password) == self.credentials
        with self._lock:
            self._auth_attempts.append(
                AuthAttempt(
                    mechanism=mechanism,
                    login=login,
                    success=ok,
                    tls=_ssl_object(server) is not None,
                )
            )
        if ok:
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


class SMTPServerFactory:
    """Makes :class:`SMTPTestServer` instances, started, and stops them all on ``close()``."""

    def __init__(self, ca: trustme.CA | None = None) -> None:
        #: Shared by every server made without an explicit ``ca``, so one PEM trusts them all.
        self.ca: trustme.CA = ca if ca is not None else trustme.CA()
        self._servers: list[SMTPTestServer] = []

    def __call__(self, **kwargs: Any) -> SMTPTestServer:
        kwargs.setdefault("ca", self.ca)
        server = SMTPTestServer(**kwargs).start()
        self._servers.append(server)
        return server

    def close(self) -> None:
        while self._servers:
            self._servers.pop().stop()

    def __enter__(self) -> SMTPServerFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@pytest.fixture
def smtp_server_factory() -> Iterator[SMTPServerFactory]:
    """Pytest fixture: ``smtp_server_factory(mode=..., credentials=...)`` -> a started server.

    Register it from a conftest.py or test module with
    ``from support.smtp_server import smtp_server_factory  # noqa: F401``,
    or wrap :class:`SMTPServerFactory` in a fixture of your own.
    """
    with SMTPServerFactory() as factory:
        yield factory


@contextlib.contextmanager
def running_server(**kwargs: Any) -> Iterator[SMTPTestServer]:
    """``with running_server(mode="plain") as server:`` -- same arguments as SMTPTestServer."""
    with SMTPTestServer(**kwargs) as server:
        yield server
