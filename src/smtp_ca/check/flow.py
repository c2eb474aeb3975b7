"""The check's flow: a real SMTP handshake that trusts only the bundle, and which handshakes
follow when it fails.

The build checks the bundle it is about to write (``check_bundle`` puts it in a scratch file
first), so nothing reaches the app until the check has spoken; ``bin/check`` checks a bundle it
makes the same way, or a file the user names (``run_check``).

It models the strictest Ruby client (old net/smtp, whose ``ca_file`` is its only trust): the
TLS context trusts nothing but ``ca_file`` and checks the host name against SMTP_SERVER, as the
mail gem does. Every step shares one deadline, so a silent server cannot hold the build longer
than the timeout.

When the handshake fails, the check names the cause instead of repeating OpenSSL's one-line
verdict: it handshakes again without verification to read what the server presents, and looks
at that chain (``chain``, ``diagnosis``). A server that forgets its intermediate is completed
through the AIA caIssuers URL of its certificate (``aia``); a chain that verifies is then
checked for revocation, each certificate but the anchor through the CRL and the OCSP
responder it names (``revocation``).

This module is the flow: which handshakes, in which order. What a failure means, in words, is
``diagnosis``; what the server's chain holds, ``chain``.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import fingerprint_sha256, readable_name, to_pem
from smtp_ca.check import causes, connection_failure, diagnosis
from smtp_ca.check.chain import (
    Store,
    describe_chain,
    presented_chain,
    presented_path,
    proven_self_signed,
    short_sha256,
    verified_chain,
)
from smtp_ca.check.context import Context, TrustStores
from smtp_ca.check.outcome import CheckOutcome, where_of
from smtp_ca.check.smtp_session import (
    CheckTarget,
    Progress,
    SmtpProtocolError,
    open_tls,
    quit_politely,
    reading_context,
    tls_context,
)
from smtp_ca.net.deadline import Deadline

if TYPE_CHECKING:
    from cryptography import x509

    from smtp_ca.check.aia import Completion
    from smtp_ca.check.revocation import Finding


@dataclass(frozen=True)
class _Handshake:
    version: str | None
    presented: list[x509.Certificate]
    verified: list[x509.Certificate]


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
        return causes.generic_verify_failure(target, error)
    except ssl.SSLError as error:
        return connection_failure.tls_failure(target, error, check.deadline)
    except (OSError, SmtpProtocolError) as error:
        return connection_failure.transport_failure(target, error, check.progress.stage)


def check_bundle(
    target: CheckTarget,
    pem: bytes,
    *,
    scratch_dir: Path,
    cache_dir: Path | None = None,
    outside_mozilla: Sequence[str] | None = None,
) -> CheckOutcome:
    """run_check against a bundle not yet written anywhere (a build checks before it writes).
    ``outside_mozilla``: what the bundle stage found of its certificates (``PreparedBundle``)."""
    stores = TrustStores(
        outside_mozilla=frozenset(outside_mozilla) if outside_mozilla is not None else None
    )
    with tempfile.TemporaryDirectory(dir=scratch_dir) as scratch:
        bundle_file = Path(scratch) / "ca-bundle.pem"
        bundle_file.write_bytes(pem)
        return run_check(target, bundle_file, stores=stores, cache_dir=cache_dir)


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
        self.where = where_of(target)
        self._bundle: Store | None = None
        self.cache_dir = cache_dir

    @property
    def bundle(self) -> Store:
        if self._bundle is None:
            self._bundle = (
                Store.load(self.ca_file, "the bundle") if self.ca_file else Store((), "the bundle")
            )
        return self._bundle

    def run(self) -> CheckOutcome:
        try:
            context = tls_context(self.ca_file)
        except (ssl.SSLError, OSError) as error:
            reason = error.reason if isinstance(error, ssl.SSLError) else error.strerror
            return CheckOutcome(
                cause="bundle",
                summary=(
                    f"{self.where}: not checked: OpenSSL cannot load the bundle {self.ca_file} "
                    f"({reason or error.__class__.__name__})."
                ),
                hint="The bundle must be a file of PEM certificates.",
            )
        try:
            handshake = self._handshake(context)
        except ssl.SSLCertVerificationError as error:
            return self._refused(error)
        return self._verified(handshake, None)

    def _handshake(self, context: ssl.SSLContext) -> _Handshake:
        tls = open_tls(self.target, context, self.deadline, self.progress)
        with tls:
            verified = verified_chain(tls) if context.verify_mode != ssl.CERT_NONE else []
            result = _Handshake(tls.version(), presented_chain(tls), verified)
            quit_politely(tls, self.deadline)
        return result

    # --- verified ------------------------------------------------------------------------------

    def _verified(self, handshake: _Handshake, completion: Completion | None) -> CheckOutcome:
        from smtp_ca.check.aia import render_fetched

        chain_lines = tuple(describe_chain(handshake.presented))
        details = ["The server presented:", *chain_lines]
        anchor_name = None
        if handshake.verified:
            anchor_name, anchor_lines = self._anchor(handshake.verified[-1])
            details.extend(anchor_lines)
        notices: list[str] = []
        extras: tuple[bytes, ...] = ()
        if completion is not None:
            notices.append(self._fetched_notice(completion))
            extras = (render_fetched(completion.fetched, self.where),)

        findings = self._revocation(handshake.verified)
        revoked = next((finding for finding in findings if finding.status == "revoked"), None)
        leaf_status = findings[0].status if findings else None
        version = handshake.version
        if revoked is not None:
            whose = (
                f"the server's certificate has been revoked ({revoked.name})"
                if revoked.is_leaf
                else f"the intermediate certificate {revoked.name} has been revoked"
            )
            others = [finding.line for finding in findings if finding is not revoked]
            return CheckOutcome(
                cause="revoked",
                summary=f"{self.where}: {whose}.",
                details=(revoked.line, *details, *others),
                hint="Only the mail provider can fix this: ask them to replace the certificate. "
                "Do not switch SMTP_OPENSSL_VERIFY_MODE to none: a revoked certificate's key "
                "may be in someone else's hands.",
                tls_version=version,
                chain=chain_lines,
                notices=tuple(notices),
                extra_certificates=extras,
                anchor=anchor_name,
                revocation=leaf_status,
                revocations=findings,
            )
        details.extend(finding.line for finding in findings)
        summary = f"{self.where}: verified, {version}."
        if completion is not None:
            summary = (
                f"{self.where}: verified, {version}, once the bundle holds the intermediate "
                "certificate the server does not send."
            )
        return CheckOutcome(
            cause="missing-intermediate" if completion is not None else "verified",
            summary=summary,
            details=tuple(details),
            tls_version=version,
            chain=chain_lines,
            notices=tuple(notices),
            extra_certificates=extras,
            anchor=anchor_name,
            revocation=leaf_status,
            revocations=findings,
        )

    def _anchor(self, anchor_cert: x509.Certificate) -> tuple[str, list[str]]:
        """The name of the bundle certificate that anchored the chain, the line that says which
        part of the bundle it came from, and, when Mozilla's list (certifi) does not hold that
        root, a line that says so: trust never silently wider than Mozilla's list."""
        anchor = self.bundle.find(anchor_cert)
        name = readable_name(anchor_cert.subject)
        origin = anchor.describe_origin() if anchor else "from the bundle"
        fingerprint = f" (SHA-256 {short_sha256(anchor.sha256)})" if anchor else ""
        # The origin names the input the anchor came from (the bundle's "# From:" lines): the
        # URL or path, SMTP_CA_CERTS, or certifi's public roots. It reads last, after the hash.
        lines = [f"Anchored by {name}{fingerprint}, {origin}."]
        if (anchor is None or anchor.origin != "certifi") and self._outside_mozilla(anchor_cert):
            lines.append(
                f"The chain is anchored by a root that Mozilla's list does not hold: {name}."
            )
        return name, lines

    def _outside_mozilla(self, anchor_cert: x509.Certificate) -> bool:
        """Whether Mozilla's list (certifi) lacks this root: as the build that made the bundle
        found, or, for a bundle it did not make, by reading certifi."""
        known = self.stores.outside_mozilla
        if known is not None:
            return fingerprint_sha256(anchor_cert) in known
        mozilla = diagnosis.public_roots(self.stores)
        return mozilla is not None and not mozilla.holds_root(anchor_cert)

    def _fetched_notice(self, completion: Completion) -> str:
        """The warning a verified check gives when it needed an intermediate AIA fetched."""
        fetched = ", ".join(readable_name(item.cert.subject) for item in completion.fetched)
        urls = ", ".join(dict.fromkeys(item.url for item in completion.fetched))
        anchor_of = completion.anchor.name if completion.anchor else "the bundle"
        return (
            f"{self.where} does not send the intermediate certificate {fetched}. The build "
            f"fetched it from {urls} (the AIA caIssuers URL of the server's certificate), "
            f"checked that it signed that certificate and chains to {anchor_of}, and adds "
            "it to the bundle, because the app's SMTP client does not fetch missing "
            "intermediates. Ask the provider to send its full chain."
        )

    def _revocation(self, verified: Sequence[x509.Certificate]) -> tuple[Finding, ...]:
        from smtp_ca.check.revocation import check_chain

        # A certificate trusted as itself (a chain of one) has no issuer to ask about it.
        return check_chain(verified, self.deadline, self.now, self.cache_dir)

    # --- refused ---------------------------------------------------------------------------------

    def _refused(self, error: ssl.SSLCertVerificationError) -> CheckOutcome:
        """OpenSSL refused the chain: complete it through AIA when its issuer is missing, and
        check again; otherwise, or when that does not reach the bundle, say why."""
        presented, notes = self._read_presented()
        if not presented or not diagnosis.is_unknown_issuer(error):
            return diagnosis.diagnose(self._diagnosis(), error, presented, notes)
        top = presented_path(presented)[-1]
        completion = None
        if not proven_self_signed(top):
            from smtp_ca.check.aia import complete_chain

            completion = complete_chain(top, self.bundle, self.deadline, self.cache_dir)
            if completion.complete:
                return self._with_fetched(completion)
        return diagnosis.unknown_issuer(self._diagnosis(), error, presented, notes, completion)

    def _with_fetched(self, completion: Completion) -> CheckOutcome:
        """The check again, trusting the intermediates AIA fetched as well as the bundle."""
        extra_pem = b"".join(to_pem(item.cert) for item in completion.fetched)
        try:
            handshake = self._handshake(tls_context(self.ca_file, extra_pem))
        except ssl.SSLCertVerificationError as again:
            presented, notes = self._read_presented()
            return diagnosis.diagnose(
                self._diagnosis(), again, presented, notes, fetched=completion
            )
        return self._verified(handshake, completion)

    def _read_presented(self) -> tuple[list[x509.Certificate], list[str]]:
        """A second handshake that verifies nothing, to see the chain OpenSSL refused; when
        it fails, no chain and a note that says why."""
        try:
            return self._handshake(reading_context()).presented, []
        except (OSError, SmtpProtocolError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            if isinstance(error, TimeoutError):
                reason = f"the check's time ({self.target.naming.timeout}) ran out"
            return [], [
                "Could not read the chain the server presents in a second handshake "
                f"({reason or error.__class__.__name__})."
            ]

    def _diagnosis(self) -> Context:
        return Context(self.target, self.bundle, self.stores, self.now)
