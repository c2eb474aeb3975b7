"""The build-time proof: a real SMTP handshake that trusts only the bundle the build wrote.

It models the strictest Ruby client (old net/smtp, whose ``ca_file`` is its only trust): the
TLS context trusts nothing but ``ca_file`` and checks the host name against SMTP_SERVER, as the
mail gem does. Every step shares one deadline, so a silent server cannot hold the build longer
than the timeout.

When the handshake fails, the check names the cause instead of repeating OpenSSL's one-line
verdict: it handshakes again without verification to read what the server presents, and looks
at that chain (``chain``). A server that forgets its intermediate is completed through the AIA
caIssuers URL of its certificate (``aia``); a chain that verifies is then checked for
revocation with the OCSP responder its certificate names (``ocsp``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.certificates import fingerprint_sha256, readable_name, to_pem
from smtp_ca.chain import (
    SYSTEM_STORE,
    Store,
    Trusted,
    day,
    describe,
    describe_chain,
    host_names,
    is_ip_address,
    is_self_issued,
    load_store,
    presented_chain,
    presented_path,
    short_sha256,
    verified_chain,
)
from smtp_ca.deadline import Deadline

# CheckTarget is part of this module's API (run_check takes one): re-exported.
from smtp_ca.smtp_session import CheckTarget as CheckTarget
from smtp_ca.smtp_session import (
    NoStartTlsError,
    Progress,
    SmtpProtocolError,
    legacy_probe_context,
    open_tls,
    quit_politely,
    reading_context,
    tls_context,
)

if TYPE_CHECKING:
    from cryptography import x509

    from smtp_ca.aia import Completion
    from smtp_ca.ocsp import Revocation

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code reports them.
_UNKNOWN_ISSUER_CODES = {2, 20, 21}
_EXPIRED = 10
_NOT_YET_VALID = 9
_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19  # the server sent a root the bundle does not hold: an unknown issuer
_REVOKED = 23
_NAME_MISMATCH_CODES = {62, 64}

# OpenSSL's reasons for a server that speaks only TLS older than the client's minimum.
_OLD_TLS_REASONS = {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL"}
# ... and for bytes that are not TLS at all (an SMTP greeting where a ServerHello should be).
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
# What the legacy probe may learn; anything else means the probe taught nothing.
_LEGACY_VERSIONS = ("TLSv1", "TLSv1.1", "SSLv3")


@dataclass(frozen=True)
class TrustStores:
    """The stores a failed check compares the bundle with. They are never trusted by the check
    itself; they only let the report say which setting would fix an unknown issuer."""

    public_roots: Path | None = None  # None: certifi's cacert.pem, when certifi is installed
    system: Path | None = SYSTEM_STORE


@dataclass(frozen=True)
class CheckOutcome:
    """What the check found. ``cause`` is a short stable name the tests and report key on:
    verified, missing-intermediate (verified once the build adds the fetched intermediate),
    unknown-issuer, expired, not-yet-valid, hostname-mismatch, self-signed, revoked,
    verify-failed, no-starttls, old-tls, tls, smtp, refused, dns, timeout, network, and bundle
    (the CA file itself cannot be loaded)."""

    verified: bool
    cause: str
    summary: str
    details: tuple[str, ...] = ()
    hint: str | None = None
    tls_version: str | None = None
    chain: tuple[str, ...] = field(default=())  # the chain the server presented, one line each
    notices: tuple[str, ...] = ()  # worth a warning even when verified
    extra_certificates: tuple[bytes, ...] = ()  # PEM the written bundle must add to verify
    anchor: str | None = None  # the bundle certificate that anchored the chain
    revocation: str | None = None  # good, revoked, unknown or unchecked; None: not asked


@dataclass(frozen=True)
class _Handshake:
    version: str | None
    presented: list[x509.Certificate]
    verified: list[x509.Certificate]


def _where(target: CheckTarget) -> str:
    mode = "TLS" if target.implicit_tls else "STARTTLS"
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port} ({mode})"


def run_check(
    target: CheckTarget,
    ca_file: Path | None,
    *,
    stores: TrustStores | None = None,
    now: datetime | None = None,
    cache_dir: Path | None = None,
) -> CheckOutcome:
    """Handshakes with the SMTP server trusting only ``ca_file`` and says what happened.

    ``cache_dir`` keeps OCSP answers between builds, so a warm build asks no responder.
    """
    check = _Check(
        target, ca_file, stores or TrustStores(), now or datetime.now(timezone.utc), cache_dir
    )
    try:
        return check.run()
    except ssl.SSLCertVerificationError as error:  # a check again after AIA, unexpected
        return _generic_verify_failure(target, error)
    except ssl.SSLError as error:
        return check.tls_failure(error)
    except (OSError, SmtpProtocolError) as error:
        return _transport_failure(target, error, check.progress.stage)


def check_bundle(
    target: CheckTarget, pem: bytes, *, scratch_dir: Path, cache_dir: Path | None = None
) -> CheckOutcome:
    """run_check against a bundle not yet written anywhere (a build checks before it writes)."""
    with tempfile.TemporaryDirectory(dir=scratch_dir) as scratch:
        bundle_file = Path(scratch) / "ca-bundle.pem"
        bundle_file.write_bytes(pem)
        return run_check(target, bundle_file, cache_dir=cache_dir)


class _Check:
    def __init__(
        self,
        target: CheckTarget,
        ca_file: Path | None,
        stores: TrustStores,
        now: datetime,
        cache_dir: Path | None,
    ) -> None:
        self.target = target
        self.ca_file = ca_file
        self.stores = stores
        self.now = now
        self.deadline = Deadline(target.timeout)
        self.progress = Progress()
        self.where = _where(target)
        self._bundle: Store | None = None
        self.cache_dir = cache_dir

    @property
    def bundle(self) -> Store:
        if self._bundle is None:
            self._bundle = (
                Store.load(self.ca_file, "the bundle") if self.ca_file else Store((), "the bundle")
            )
        return self._bundle

    def _handshake(self, context: ssl.SSLContext) -> _Handshake:
        tls = open_tls(self.target, context, self.deadline, self.progress)
        with tls:
            verified = verified_chain(tls) if context.verify_mode != ssl.CERT_NONE else []
            result = _Handshake(tls.version(), presented_chain(tls), verified)
            quit_politely(tls, self.deadline)
        return result

    def run(self) -> CheckOutcome:
        try:
            context = tls_context(self.ca_file)
        except (ssl.SSLError, OSError) as error:
            reason = error.reason if isinstance(error, ssl.SSLError) else error.strerror
            return CheckOutcome(
                False,
                "bundle",
                f"{self.where}: not checked: OpenSSL cannot load the bundle {self.ca_file} "
                f"({reason or error.__class__.__name__}).",
                hint="The bundle must be a file of PEM certificates.",
            )
        try:
            handshake = self._handshake(context)
        except ssl.SSLCertVerificationError as error:
            return self._diagnose(error, allow_aia=True)
        return self._verified(handshake, None)

    # --- verified ------------------------------------------------------------------------------

    def _verified(self, handshake: _Handshake, completion: Completion | None) -> CheckOutcome:
        from smtp_ca.aia import render_fetched

        chain_lines = tuple(describe_chain(handshake.presented))
        details = ["The server presented:", *chain_lines]
        anchor_name = None
        if handshake.verified:
            anchor_cert = handshake.verified[-1]
            anchor = self.bundle.find(anchor_cert)
            anchor_name = readable_name(anchor_cert.subject)
            origin = anchor.describe_origin() if anchor else "from the bundle"
            fingerprint = f" (SHA-256 {short_sha256(anchor.sha256)})" if anchor else ""
            details.append(f"Anchored by {anchor_name}, {origin}{fingerprint}.")
        notices: list[str] = []
        extras: tuple[bytes, ...] = ()
        if completion is not None:
            fetched = ", ".join(readable_name(item.cert.subject) for item in completion.fetched)
            urls = ", ".join(dict.fromkeys(item.url for item in completion.fetched))
            anchor_of = completion.anchor.name if completion.anchor else "the bundle"
            notices.append(
                f"{self.where} does not send the intermediate certificate {fetched}. The build "
                f"fetched it from {urls} (the AIA caIssuers URL of the server's certificate), "
                f"checked that it signed that certificate and chains to {anchor_of}, and adds "
                "it to the bundle, because the app's SMTP client does not fetch missing "
                "intermediates. Ask the provider to send its full chain."
            )
            extras = (render_fetched(completion.fetched, self.where),)

        revocation = self._revocation(handshake.verified)
        version = handshake.version
        if revocation is not None and revocation.status == "revoked":
            return CheckOutcome(
                False,
                "revoked",
                f"{self.where}: the server's certificate has been revoked "
                f"({readable_name(handshake.verified[0].subject)}).",
                details=(revocation.detail, *details),
                hint="Only the mail provider can fix this: ask them to replace the certificate. "
                "Do not switch SMTP_OPENSSL_VERIFY_MODE to none: a revoked certificate's key "
                "may be in someone else's hands.",
                tls_version=version,
                chain=chain_lines,
                notices=tuple(notices),
                extra_certificates=extras,
                anchor=anchor_name,
                revocation="revoked",
            )
        if revocation is not None:
            details.append(revocation.detail)
        summary = f"{self.where}: verified, {version}."
        if completion is not None:
            summary = (
                f"{self.where}: verified, {version}, once the bundle holds the intermediate "
                "certificate the server does not send."
            )
        return CheckOutcome(
            True,
            "missing-intermediate" if completion is not None else "verified",
            summary,
            details=tuple(details),
            tls_version=version,
            chain=chain_lines,
            notices=tuple(notices),
            extra_certificates=extras,
            anchor=anchor_name,
            revocation=revocation.status if revocation else None,
        )

    def _revocation(self, verified: Sequence[x509.Certificate]) -> Revocation | None:
        from smtp_ca import ocsp

        if len(verified) < 2:
            return None  # a certificate trusted as itself has no issuer to ask about it
        return ocsp.check_revocation(
            verified[0], verified[1], self.deadline, self.now, self.cache_dir
        )

    # --- failed ----------------------------------------------------------------------------------

    def _read_presented(self) -> tuple[list[x509.Certificate], str | None]:
        """A second handshake that verifies nothing, to see the chain OpenSSL refused."""
        try:
            return self._handshake(reading_context()).presented, None
        except (OSError, SmtpProtocolError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            if isinstance(error, TimeoutError):
                reason = "the check's time (SMTP_CA_CHECK_TIMEOUT) ran out"
            return [], (
                "Could not read the chain the server presents in a second handshake "
                f"({reason or error.__class__.__name__})."
            )

    def _diagnose(
        self,
        error: ssl.SSLCertVerificationError,
        *,
        allow_aia: bool,
        extra: Completion | None = None,
    ) -> CheckOutcome:
        presented, problem = self._read_presented()
        notes = [problem] if problem else []
        code = error.verify_code
        if not presented:
            outcome = _generic_verify_failure(self.target, error)
            return _with(outcome, details=(*notes, *outcome.details))
        if code in _UNKNOWN_ISSUER_CODES or code == _SELF_SIGNED_IN_CHAIN:
            return self._unknown_issuer(error, presented, allow_aia=allow_aia, notes=notes)
        if extra is not None:
            fetched = ", ".join(readable_name(item.cert.subject) for item in extra.fetched)
            notes.append(
                f"The server does not send its intermediate {fetched}. With it, fetched through "
                "AIA, the chain reaches the bundle; what is left is the failure above."
            )
        if code == _SELF_SIGNED:
            outcome = self._self_signed(error, presented)
        elif code in (_EXPIRED, _NOT_YET_VALID):
            outcome = self._dates(error, presented, expired=code == _EXPIRED)
        elif code in _NAME_MISMATCH_CODES:
            outcome = self._name_mismatch(error, presented)
        else:
            outcome = _generic_verify_failure(self.target, error)
        chain_lines = tuple(describe_chain(presented))
        others = self._other_problems(presented, outcome.cause)
        return _with(
            outcome,
            details=(
                *outcome.details,
                *notes,
                *others,
                "The server presented:",
                *chain_lines,
            ),
            chain=chain_lines,
        )

    def _unknown_issuer(
        self,
        error: ssl.SSLCertVerificationError,
        presented: list[x509.Certificate],
        *,
        allow_aia: bool,
        notes: list[str],
    ) -> CheckOutcome:
        from smtp_ca.aia import complete_chain

        path = presented_path(presented)
        top = path[-1]
        reach = top
        details: list[str] = []
        if not is_self_issued(top) and allow_aia:
            completion = complete_chain(top, self.bundle, self.deadline, self.cache_dir)
            if completion.complete:
                extra_pem = b"".join(to_pem(item.cert) for item in completion.fetched)
                try:
                    handshake = self._handshake(tls_context(self.ca_file, extra_pem))
                except ssl.SSLCertVerificationError as again:
                    return self._diagnose(again, allow_aia=False, extra=completion)
                return self._verified(handshake, completion)
            # That a CA certificate names no caIssuers URL is normal; worth saying only when
            # the server sent its leaf alone, where the URL was the way to the intermediate.
            notes.extend(
                note
                for note in completion.notes
                if len(path) == 1 or "names no http:// caIssuers URL" not in note
            )
            if completion.fetched:
                reach = completion.fetched[-1].cert

        missing = readable_name(reach.issuer)
        if is_self_issued(top):
            details.append(
                f"The server's chain ends at the root {readable_name(top.subject)}, which the "
                "bundle does not hold."
            )
        else:
            details.append(
                f"The chain the server sent ends at {readable_name(top.subject)}, issued by "
                f"{missing}: the bundle holds no {missing}."
            )
            if len(path) == 1:
                details.append(
                    "The server sent only its own certificate: it may be missing its "
                    "intermediate certificate."
                )
        details.extend(notes)
        public, system = self._other_stores(reach)
        system_label = str(self.stores.system or SYSTEM_STORE)
        if public is not None:
            details.append(f"certifi's public roots would verify it: they hold {public.name}.")
        if system is not None:
            details.append(
                f"The system store ({system_label}) would verify it: it holds {system.name}."
            )
        if public is None and system is None:
            details.append(
                f"Neither certifi's public roots nor the system store ({system_label}) "
                f"would verify it either: neither holds {missing}."
            )
        chain_lines = tuple(describe_chain(presented))
        details.extend(self._other_problems(presented, "unknown-issuer"))
        details.extend(["The server presented:", *chain_lines])

        if public is not None:
            hint = (
                "Set SMTP_CA_PUBLIC_ROOTS=true (heroku config:set SMTP_CA_PUBLIC_ROOTS=true) so "
                f"the bundle holds certifi's public roots, {public.name} among them; or point "
                f"SMTP_CA_BUNDLE_URL at a bundle that holds {public.name}."
            )
        elif system is not None:
            hint = (
                f"The app does not use the system store once SMTP_CA_FILE names the bundle: put "
                f"{system.name} in a PEM file, point SMTP_CA_BUNDLE_URL at it and set "
                "SMTP_CA_BUNDLE_SHA256 (sha256sum FILE)."
            )
        else:
            hint = (
                f"Ask the mail provider for its CA bundle (the one that holds {missing}), point "
                "SMTP_CA_BUNDLE_URL at it and set SMTP_CA_BUNDLE_SHA256 (sha256sum FILE)."
            )
            if len(path) == 1 and not is_self_issued(top):
                hint += " Or ask the provider to send its intermediate certificate."
        return CheckOutcome(
            False,
            "unknown-issuer",
            f"{self.where}: certificate verify failed: no certificate in the bundle anchors the "
            f"server's chain ({_message(error)}).",
            details=tuple(details),
            hint=hint,
            chain=chain_lines,
        )

    def _other_stores(self, top: x509.Certificate) -> tuple[Trusted | None, Trusted | None]:
        """The certificate of certifi's roots, and of the system store, that anchors ``top``."""
        public_path = self.stores.public_roots
        if public_path is None:
            try:
                import certifi

                public_path = Path(certifi.where())
            except ImportError:
                public_path = None
        public = load_store(public_path, "certifi")
        system = load_store(self.stores.system, "the system store")
        return (
            public.anchor_for(top) if public else None,
            system.anchor_for(top) if system else None,
        )

    def _self_signed(
        self, error: ssl.SSLCertVerificationError, presented: list[x509.Certificate]
    ) -> CheckOutcome:
        leaf = presented[0]
        return CheckOutcome(
            False,
            "self-signed",
            f"{self.where}: the server presents a self-signed certificate, "
            f"{readable_name(leaf.subject)} ({_message(error)}).",
            details=(
                f"It signed itself: {describe(leaf)}; SHA-256 "
                f"{short_sha256(fingerprint_sha256(leaf))}. No CA vouches for it.",
            ),
            hint="Put that server's own certificate (or its CA's) in a bundle, point "
            "SMTP_CA_BUNDLE_URL at it and set SMTP_CA_BUNDLE_SHA256. Better: ask the provider "
            "for a certificate from a public CA.",
        )

    def _dates(
        self,
        error: ssl.SSLCertVerificationError,
        presented: list[x509.Certificate],
        *,
        expired: bool,
    ) -> CheckOutcome:
        path = presented_path(presented)
        anchor = self.bundle.anchor_for(path[-1])
        candidates: list[tuple[x509.Certificate, str]] = [
            (cert, "the server's certificate" if number == 0 else "the intermediate")
            for number, cert in enumerate(path)
        ]
        if anchor is not None and anchor.cert is not None:
            candidates.append((anchor.cert, "the bundle's anchor"))

        def out_of_date(cert: x509.Certificate) -> bool:
            if expired:
                return cert.not_valid_after_utc < self.now
            return cert.not_valid_before_utc > self.now

        found = [(cert, role) for cert, role in candidates if out_of_date(cert)]
        cert, role = found[0] if found else (path[0], "the server's certificate")
        name = readable_name(cert.subject)
        if expired:
            summary = (
                f"{self.where}: {role}, {name}, expired on {day(cert.not_valid_after_utc)} "
                f"({_message(error)})."
            )
            hint = (
                "Only the mail provider can fix this: ask them to renew the certificate. Do not "
                "switch SMTP_OPENSSL_VERIFY_MODE to none."
            )
            if role == "the bundle's anchor":
                hint = (
                    f"{name} in the bundle has expired: point SMTP_CA_BUNDLE_URL at the "
                    "provider's current CA bundle and update SMTP_CA_BUNDLE_SHA256."
                )
            return CheckOutcome(
                False,
                "expired",
                summary,
                details=(
                    f"It was valid from {day(cert.not_valid_before_utc)} to "
                    f"{day(cert.not_valid_after_utc)}; it is now {day(self.now)}.",
                ),
                hint=hint,
            )
        return CheckOutcome(
            False,
            "not-yet-valid",
            f"{self.where}: {role}, {name}, is not valid until "
            f"{day(cert.not_valid_before_utc)} ({_message(error)}).",
            details=(f"The build machine's clock says it is {day(self.now)}.",),
            hint="Check the clock of the build machine, or ask the provider: the certificate was "
            "installed before its start date.",
        )

    def _name_mismatch(
        self, error: ssl.SSLCertVerificationError, presented: list[x509.Certificate]
    ) -> CheckOutcome:
        names = host_names(presented[0])
        host = self.target.host
        details = [f"The certificate holds: {', '.join(names) if names else 'no names at all'}."]
        if is_ip_address(host):
            details.append(
                "SMTP_SERVER is an IP address: the mail gem checks it against the IP "
                "addresses the certificate holds, not against its host names."
            )
        suggestion = next((name for name in names if not name.startswith("*")), None)
        hint = "Set SMTP_SERVER to a name the certificate holds (the host name the provider "
        hint += "documents), not an alias or an IP address"
        hint += f": heroku config:set SMTP_SERVER={suggestion}" if suggestion else "."
        return CheckOutcome(
            False,
            "hostname-mismatch",
            f"{self.where}: the certificate's names do not cover SMTP_SERVER={host} "
            f"({_message(error)}).",
            details=tuple(details),
            hint=hint,
        )

    def _other_problems(self, presented: list[x509.Certificate], cause: str) -> list[str]:
        """What else is wrong with the server's certificate: OpenSSL stops at the first error,
        and fixing one cause should not reveal the next only at the next build."""
        leaf = presented[0]
        problems: list[str] = []
        if cause != "expired" and leaf.not_valid_after_utc < self.now:
            problems.append(
                f"Also: the server's certificate expired on {day(leaf.not_valid_after_utc)}."
            )
        if cause != "not-yet-valid" and leaf.not_valid_before_utc > self.now:
            problems.append(
                "Also: the server's certificate is not valid until "
                f"{day(leaf.not_valid_before_utc)}."
            )
        if cause not in ("hostname-mismatch", "self-signed") and not _covers(
            leaf, self.target.host
        ):
            names = ", ".join(host_names(leaf)) or "no names"
            problems.append(
                f"Also: the certificate's names ({names}) do not cover "
                f"SMTP_SERVER={self.target.host}."
            )
        return problems

    # --- TLS that never got to certificates --------------------------------------------------

    def tls_failure(self, error: ssl.SSLError) -> CheckOutcome:
        reason = error.reason or error.__class__.__name__
        closed = isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError)
        if closed or reason in _OLD_TLS_REASONS:
            # Some servers refuse a TLS 1.2+ hello by hanging up instead of with an alert: a
            # handshake that accepts old versions tells which one they speak.
            version = self._probe_legacy_version()
            if version is not None or not closed:
                return self._old_tls(version, None if closed else reason)
        if closed:
            return CheckOutcome(
                False,
                "tls",
                f"{self.where}: the server closed the connection during the TLS handshake.",
                hint=_mode_hint(self.target),
            )
        if reason in _NOT_TLS_REASONS:
            if self.target.implicit_tls:
                return CheckOutcome(
                    False,
                    "tls",
                    f"{self.where}: the server did not answer in TLS ({reason}): this port "
                    "speaks plain SMTP first, and wants STARTTLS.",
                    hint="Unset SMTP_TLS and SMTP_SSL to use STARTTLS on this port, or set "
                    "SMTP_PORT=465 for TLS from the first byte.",
                )
            return CheckOutcome(
                False,
                "tls",
                f"{self.where}: the server answered STARTTLS but then did not speak TLS "
                f"({reason}).",
                hint=_mode_hint(self.target),
            )
        return CheckOutcome(
            False,
            "tls",
            f"{self.where}: the TLS handshake failed ({reason}).",
            hint=_mode_hint(self.target),
        )

    def _old_tls(self, version: str | None, reason: str | None) -> CheckOutcome:
        spoken = f"only {version}" if version else "only TLS older than 1.2"
        return CheckOutcome(
            False,
            "old-tls",
            f"{self.where}: the server speaks {spoken}; the check and the app's OpenSSL "
            f"require TLS 1.2 or later{f' ({reason})' if reason else ''}.",
            hint="Only the mail provider can fix this: ask them for TLS 1.2 or 1.3, or use "
            "the host and port they document for it. Do not work around it: TLS 1.0 and 1.1 "
            "are broken.",
            tls_version=version,
        )

    def _probe_legacy_version(self) -> str | None:
        try:
            tls = open_tls(self.target, legacy_probe_context(), self.deadline, Progress())
        except (OSError, SmtpProtocolError):
            return None
        with tls:
            version = tls.version()
        return version if version in _LEGACY_VERSIONS else None


def _covers(cert: x509.Certificate, host: str) -> bool:
    """Whether ``cert`` names ``host``, the way OpenSSL's host check (and the mail gem) does."""
    names = host_names(cert)
    host = host.lower().rstrip(".")
    if is_ip_address(host):
        wanted = ipaddress.ip_address(host)
        return any(is_ip_address(name) and ipaddress.ip_address(name) == wanted for name in names)
    for name in (name.lower().rstrip(".") for name in names):
        if name == host:
            return True
        # A wildcard covers exactly one leftmost label.
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _with(
    outcome: CheckOutcome, *, details: tuple[str, ...], chain: tuple[str, ...] | None = None
) -> CheckOutcome:
    return dataclasses.replace(
        outcome, details=details, chain=outcome.chain if chain is None else chain
    )


def _message(error: ssl.SSLCertVerificationError) -> str:
    """OpenSSL's words, to quote in parentheses: "Hostname mismatch, ... for 'x'." ends in a
    period of its own."""
    return str(error.verify_message or "").rstrip(".")


def _mode_hint(target: CheckTarget) -> str:
    if target.implicit_tls:
        return "Check SMTP_PORT: TLS from the first byte (SMTP_TLS=true) is usually port 465."
    return "Check SMTP_PORT and SMTP_TLS: port 465 usually wants SMTP_TLS=true."


def _generic_verify_failure(
    target: CheckTarget, error: ssl.SSLCertVerificationError
) -> CheckOutcome:
    """OpenSSL's verdict alone, named as well as it names itself: when nothing more is known."""
    code = error.verify_code
    message = _message(error)
    where = _where(target)
    if code in _UNKNOWN_ISSUER_CODES or code == _SELF_SIGNED_IN_CHAIN:
        return CheckOutcome(
            False,
            "unknown-issuer",
            f"{where}: certificate verify failed: no certificate in the bundle anchors the "
            f"server's chain ({message}).",
            hint="Point SMTP_CA_BUNDLE_URL at your provider's CA bundle (and set "
            "SMTP_CA_BUNDLE_SHA256), or keep SMTP_CA_PUBLIC_ROOTS=true if you turned it off.",
        )
    if code == _EXPIRED:
        return CheckOutcome(
            False,
            "expired",
            f"{where}: a certificate in the server's chain has expired ({message}).",
            hint="Only the mail provider can fix this: ask them to renew the certificate. "
            "Do not switch SMTP_OPENSSL_VERIFY_MODE to none.",
        )
    if code == _NOT_YET_VALID:
        return CheckOutcome(
            False,
            "not-yet-valid",
            f"{where}: the server's certificate is not valid yet ({message}).",
            hint="Check the clock of the build machine, or ask the provider.",
        )
    if code == _SELF_SIGNED:
        return CheckOutcome(
            False,
            "self-signed",
            f"{where}: the server presents a self-signed certificate ({message}).",
            hint="Put that server's own CA certificate in a bundle and set SMTP_CA_BUNDLE_URL "
            "to it, with its SMTP_CA_BUNDLE_SHA256.",
        )
    if code == _REVOKED:
        return CheckOutcome(
            False,
            "revoked",
            f"{where}: the server's certificate has been revoked ({message}).",
            hint="Only the mail provider can fix this: ask them to replace the certificate.",
        )
    if code in _NAME_MISMATCH_CODES:
        return CheckOutcome(
            False,
            "hostname-mismatch",
            f"{where}: the certificate's names do not cover SMTP_SERVER={target.host} ({message}).",
            hint="Set SMTP_SERVER to the host name the provider documents, not an alias.",
        )
    return CheckOutcome(
        False,
        "verify-failed",
        f"{where}: certificate verify failed ({message}, OpenSSL code {code}).",
        hint="Run bin/check HOST:PORT from this buildpack for the full chain, and ask the "
        "provider about this error.",
    )


def _transport_failure(
    target: CheckTarget, error: OSError | SmtpProtocolError, stage: str
) -> CheckOutcome:
    where = _where(target)
    if isinstance(error, NoStartTlsError):
        return CheckOutcome(
            False,
            "no-starttls",
            f"{where}: the server does not offer STARTTLS, so mail would go unencrypted and "
            "nothing can be verified.",
            hint="Check SMTP_SERVER and SMTP_PORT (587 is the usual STARTTLS port); for TLS from "
            "the first byte (port 465) set SMTP_TLS=true.",
        )
    if isinstance(error, SmtpProtocolError):
        return CheckOutcome(
            False,
            "smtp",
            f"{where}: {error}.",
            hint="Check SMTP_SERVER and SMTP_PORT, and SMTP_TLS for port 465.",
        )
    if isinstance(error, TimeoutError):
        hint = "Check SMTP_SERVER and SMTP_PORT (a firewall may drop the connection), or raise "
        hint += "SMTP_CA_CHECK_TIMEOUT."
        if stage == "waiting for the SMTP greeting" and not target.implicit_tls:
            hint = (
                "A server that says nothing after the connection may expect TLS from the first "
                "byte (port 465 usually does): set SMTP_TLS=true. Otherwise " + hint[0].lower()
            ) + hint[1:]
        return CheckOutcome(
            False,
            "timeout",
            f"{where}: no answer within {target.timeout:g} s ({stage}).",
            hint=hint,
        )
    if isinstance(error, ConnectionRefusedError):
        return CheckOutcome(
            False,
            "refused",
            f"{where}: connection refused.",
            hint="Check SMTP_PORT: SendGrid and most providers take 587 (STARTTLS) or 465 (TLS).",
        )
    if isinstance(error, socket.gaierror):
        return CheckOutcome(
            False,
            "dns",
            f"{where}: the host name does not resolve ({error.strerror}).",
            hint="Check SMTP_SERVER for a typo.",
        )
    return CheckOutcome(
        False,
        "network",
        f"{where}: {error.strerror or error.__class__.__name__} ({stage}).",
        hint="Check SMTP_SERVER and SMTP_PORT.",
    )
