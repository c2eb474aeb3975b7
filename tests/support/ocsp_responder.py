"""A real OCSP responder on the loopback: POST application/ocsp-request, signed answers back.

It answers for the certificates of one issuer, signing with the issuer's key (the usual case)
or a delegated responder certificate (sent along in the answer, as RFC 6960 wants). Each
serial number answers ``good`` unless told otherwise, and the responder can misbehave the ways
real ones do::

    with OcspResponder(intermediate) as responder:
        leaf = issue("localhost", intermediate, ocsp=responder.url)
        responder.revoke(leaf)
        ...
        assert responder.requests[0].content_type == "application/ocsp-request"

Behaviours (``responder.behaviour = ...``): ``"sign"`` (normal), ``"hang"`` (never answers),
``"garbage"`` (200 with bytes that are not OCSP), ``"try-later"`` (an unsuccessful OCSP
status), ``"stale"`` (a signed answer whose nextUpdate has passed), ``"wrong-key"`` (claims the
issuer, but the signature is not the issuer's). ``redirect("/old")`` makes POSTs to ``/old``
answer 307 to ``url``.
"""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from support.certs import Issued, utcnow

Behaviour = Literal["sign", "hang", "garbage", "try-later", "stale", "wrong-key"]
Status = Literal["good", "revoked", "unknown"]

MAX_HANG_SECONDS = 30.0


@dataclass(frozen=True)
class OcspRequestRecord:
    method: str
    path: str
    content_type: str
    serial_number: int | None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


class OcspResponder:
    """A threaded HTTP server on 127.0.0.1; the port is bound at construction, so certificates
    can carry ``url`` before the server starts."""

    def __init__(self, issuer: Issued, *, delegate: Issued | None = None) -> None:
        self.issuer = issuer
        self.delegate = delegate  # signs instead of the issuer, and is sent along
        self.behaviour: Behaviour = "sign"
        self.statuses: dict[int, Status] = {}
        self.requests: list[OcspRequestRecord] = []
        self.redirects: dict[str, int] = {}
        self.stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocsp"

    def redirect(self, path: str, status: int = 307) -> str:
        """POSTs to ``path`` are redirected to ``url``; returns the URL of ``path``."""
        self.redirects[path] = status
        return f"http://127.0.0.1:{self.port}{path}"

    def revoke(self, cert: Issued) -> None:
        self.statuses[cert.cert.serial_number] = "revoked"

    def set_status(self, cert: Issued, status: Status) -> None:
        self.statuses[cert.cert.serial_number] = status

    def start(self) -> OcspResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> OcspResponder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def answer(self, request_der: bytes) -> bytes:
        """The DER answer to one request, according to ``behaviour`` and ``statuses``."""
        request = ocsp.load_der_ocsp_request(request_der)
        if self.behaviour == "try-later":
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.TRY_LATER
            ).public_bytes(serialization.Encoding.DER)
        status = self.statuses.get(request.serial_number, "good")
        now = utcnow()
        this_update = now - dt.timedelta(minutes=1)
        next_update = now + dt.timedelta(hours=12)
        if self.behaviour == "stale":
            this_update, next_update = now - dt.timedelta(days=9), now - dt.timedelta(days=2)
        cert_status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[status]
        revoked = status == "revoked"
        signer = self.delegate or self.issuer
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number,
                algorithm=request.hash_algorithm,
                cert_status=cert_status,
                this_update=this_update,
                next_update=next_update,
                revocation_time=now - dt.timedelta(days=1) if revoked else None,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
        )
        if self.delegate is not None:
            builder = builder.certificates([self.delegate.cert])
        der = builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        if self.behaviour == "wrong-key" and self.delegate is None:
            # cryptography will not sign with a key that is not the responder's, so forge the
            # way an attacker would have to: the signature is the last thing in the answer.
            der = der[:-1] + bytes([der[-1] ^ 0x01])
        return der


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type, owner: OcspResponder) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gives up mid-answer (the timeout tests) is expected


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        serial: int | None
        try:
            serial = ocsp.load_der_ocsp_request(body).serial_number
        except ValueError:
            serial = None
        owner.requests.append(
            OcspRequestRecord(
                "POST",
                self.path,
                self.headers.get("Content-Type", ""),
                serial,
                {name.lower(): value for name, value in self.headers.items()},
            )
        )
        if self.path in owner.redirects:
            self.send_response(owner.redirects[self.path])
            self.send_header("Location", owner.url)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if owner.behaviour == "hang":
            owner.stopping.wait(MAX_HANG_SECONDS)
            self.close_connection = True
            return
        if serial is None:
            self._send(400, b"not an OCSP request\n", "text/plain")
            return
        if owner.behaviour == "garbage":
            self._send(200, b"<html>maintenance</html>", "text/html")
            return
        self._send(200, owner.answer(body), "application/ocsp-response")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
