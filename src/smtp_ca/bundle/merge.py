"""Each input of the bundle parsed and checked, then merged with certifi's public roots.

An input (the source's file, SMTP_CA_CERTS) keeps its CA certificates that are valid now, each
once; what is left out, and why, goes into its ``Part`` for the report. The merged output is
rendered with a comment block per certificate, and the same inputs give the same bytes.

Trust is never silently wider than Mozilla's list (certifi): a self-signed root of the
downloaded bundle that certifi does not hold is named in the report, one line each, and one
that the bundle carries only to reach an intermediate certifi already anchors (GoDaddy's bundle
carries its Class 2 root, which Mozilla removed in 2025, above the G2 root's cross-sign, and
certifi holds the G2 root itself) is left out of the merged bundle, with a note. The
intermediates stay: they rescue servers that forget to send theirs. SMTP_CA_CERTS is the user's
own choice, kept as it is (the report names each of its certificates already).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca.bundle.certificates import (
    CertificateError,
    CertificateSummary,
    PemBlock,
    basic_constraints_ca,
    guess_format,
    load_certificate,
    load_pem_certificates,
    signature_verifies,
    split_pem,
    summarize,
    to_pem,
)
from smtp_ca.bundle.report import plural
from smtp_ca.bundle.settings import CERTS_VARIABLE, PUBLIC_ROOTS_VARIABLE, URL_VARIABLE
from smtp_ca.bundle.source import Source
from smtp_ca.bundle.store import FORMAT_VERSION, LeftOut, Merged, Part
from smtp_ca.errors import BuildError
from smtp_ca.untrusted import at_most, escaped

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class _Kept:
    summary: CertificateSummary
    pem: bytes


@dataclass(frozen=True)
class _Content:
    """One input's certificates, parsed and checked: what it puts in the bundle, and why not
    the rest."""

    kept: tuple[_Kept, ...]
    part: Part
    display: str = ""  # the source's URL or path, as the "# From:" lines name it
    part_sha256: str = ""  # the source's SHA-256, for the header


def keep_source_certificates(source: Source, now: datetime) -> _Content:
    what = f"The CA bundle at {URL_VARIABLE} ({source.display})"
    blocks = _pem_blocks(source.data, what)
    content = _keep_ca_certificates(blocks, what, now, _BAD_FILE_HINT)
    return replace(content, display=source.display, part_sha256=source.sha256)


def keep_added_certificates(data: bytes, source: _Content | None, now: datetime) -> _Content:
    """SMTP_CA_CERTS, checked like a downloaded bundle; but a block that is not a certificate
    fails the build, naming the block: the app's owner typed this value and can fix it."""
    blocks = _pem_blocks(data, CERTS_VARIABLE, _CERTS_HINT)
    for block in blocks:
        if block.is_certificate:
            continue
        message = f"{CERTS_VARIABLE}: {block.where} is a {block.label}, not a certificate."
        if "PRIVATE KEY" in block.label:
            message += (
                " A private key has no place there, and every collaborator on the app can read "
                "config vars: if it is a real key, treat it as leaked and replace it."
            )
        raise BuildError(message, hint=f"Remove that block. {_CERTS_HINT}")
    already = {item.summary.sha256 for item in source.kept} if source else set()
    return _keep_ca_certificates(blocks, CERTS_VARIABLE, now, _CERTS_HINT, already)


def _keep_ca_certificates(
    blocks: list[PemBlock],
    what: str,
    now: datetime,
    hint: str,
    already: set[str] | frozenset[str] = frozenset(),
) -> _Content:
    """The CA certificates of ``blocks`` that are valid now, each once; what is left out,
    and why. ``already``: fingerprints an earlier input put in the bundle. ``BuildError``
    when nothing can be used."""
    kept: list[_Kept] = []
    left_out: list[LeftOut] = []
    notices: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()
    # Copies left out, by fingerprint: counted in one line each, not one line per copy.
    copies: dict[str, tuple[CertificateSummary, int]] = {}
    certificate_blocks = [block for block in blocks if block.is_certificate]
    for block in blocks:
        if not block.is_certificate:
            warning = (
                f"Left out {block.where} of the bundle: it is a {block.label}, not a certificate."
            )
            if "PRIVATE KEY" in block.label:
                warning += " A private key has no place in a CA bundle; if it is real, it leaked."
            warnings.append(warning)
            continue
        try:
            cert = load_certificate(block)
        except CertificateError as error:
            raise BuildError(f"{what}: {error}.", hint=hint) from None
        summary = summarize(cert)
        if summary.sha256 in seen:
            copies[summary.sha256] = (summary, copies.get(summary.sha256, (summary, 0))[1] + 1)
            continue
        seen.add(summary.sha256)
        if summary.sha256 in already:
            notices.append(
                f"{summary.describe()} from {what} is in the bundle from {URL_VARIABLE} already."
            )
            continue
        if not summary.is_ca:
            flag = basic_constraints_ca(cert)
            why = (
                "its basicConstraints say CA:FALSE"
                if flag is False
                else "it has no basicConstraints"
            )
            left_out.append(
                LeftOut(
                    summary,
                    f"it is not a CA certificate ({why}): a CA bundle holds roots and "
                    "intermediates, not servers' certificates",
                )
            )
        elif summary.is_expired(now):
            left_out.append(LeftOut(summary, "it has expired"))
        else:
            kept.append(_Kept(summary, to_pem(cert)))
    notices += [_copies_left_out(summary, count) for summary, count in copies.values()]
    if not certificate_blocks:
        labels = ", ".join(sorted({block.label for block in blocks}))
        raise BuildError(f"{what} has no certificate, only {labels}.", hint=hint)
    if not kept and not already.intersection(seen):
        reasons = [f"{item.certificate.describe()}: {item.reason}" for item in left_out]
        lines = "".join(f"\n  {line}" for line in at_most(reasons))
        raise BuildError(
            f"{what} has no CA certificate that can be used:{lines}",
            hint=(
                "Use the bundle of the CA that issued your SMTP server's certificate (its "
                "intermediate and root certificates), not the server's own certificate."
            ),
        )
    part = Part(
        tuple(item.summary for item in kept),
        tuple(left_out),
        len(certificate_blocks),
        tuple(notices),
        tuple(warnings),
    )
    return _Content(tuple(kept), part)


def _copies_left_out(summary: CertificateSummary, count: int) -> str:
    if count == 1:
        return f"Left out a second copy of {summary.describe()}."
    return f"Left out {count:,} more copies of {summary.describe()}."


_CERTS_HINT = (
    f"{CERTS_VARIABLE} holds PEM CA certificates (-----BEGIN CERTIFICATE----- blocks): "
    f'heroku config:set {CERTS_VARIABLE}="$(cat relay-ca.pem)"'
)
_BAD_FILE_HINT = (
    f"Check that {URL_VARIABLE} points at a PEM file of CA certificates "
    "(-----BEGIN CERTIFICATE----- blocks), and that the file is complete."
)


def _pem_blocks(data: bytes, what: str, hint: str = _BAD_FILE_HINT) -> list[PemBlock]:
    kind = guess_format(data)
    if kind == "empty":
        raise BuildError(f"{what} is empty.", hint=hint)
    if kind == "html":
        raise BuildError(
            f"{what} looks like an HTML page, not PEM certificates: the server sent a web page "
            "(an error, login or download page) instead of the file.",
            hint=hint,
        )
    if kind == "der":
        raise BuildError(
            f"{what} looks like a binary (DER) certificate; the bundle must be PEM.",
            hint="Convert it with: openssl x509 -inform der -in cert.der -out cert.pem",
        )
    if kind != "pem":
        raise BuildError(
            f"{what} is not PEM: it has no -----BEGIN CERTIFICATE----- line.",
            hint=hint,
        )
    try:
        blocks = split_pem(data)
    except CertificateError as error:
        raise BuildError(f"{what}: {error}.", hint=hint) from None
    if not blocks:
        # "-----BEGIN CERTIFICATE-----\\nMIIB...": pasted with its line breaks as \\n.
        one_line = b"\n" not in data.strip() and b"\\n" in data
        raise BuildError(
            f"{what} has no complete PEM block"
            + (
                ", and it is one line with \\n where its line breaks should be."
                if one_line
                else "."
            ),
            hint=hint,
        )
    return blocks


_CERTIFI_HINT = (
    f"Reinstall the buildpack's dependencies, or set {PUBLIC_ROOTS_VARIABLE}=false to go without."
)


@dataclass(frozen=True)
class PublicRoots:
    data: bytes
    sha256: str
    version: str


def read_certifi_quietly() -> PublicRoots | None:
    """certifi's roots to compare the bundle with when they are not merged into it
    (SMTP_CA_PUBLIC_ROOTS=false): None when they cannot be read, which then fails nothing."""
    try:
        return read_certifi()
    except BuildError:
        return None


def read_certifi() -> PublicRoots:
    import certifi

    path = Path(certifi.where())
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BuildError(
            f"Could not read certifi's roots ({path}): {error.strerror or error}.",
            hint=_CERTIFI_HINT,
        ) from None
    return PublicRoots(data, hashlib.sha256(data).hexdigest(), str(certifi.__version__))


def merge_key(
    source: Source | None,
    certs: bytes | None,
    public: PublicRoots | None,
    reference: PublicRoots | None = None,
) -> str:
    """What the merged output depends on. ``reference``: certifi's roots when they are only
    compared with the bundle, not merged into it (their version is in the report)."""
    # The source's display URL is in the output (its "# From:" lines), so it is in the key.
    parts: list[object] = [FORMAT_VERSION, None, None, None, None, None, public is not None]
    if source is not None:
        parts[1:3] = [source.sha256, source.display]
    if certs is not None:
        parts[3] = hashlib.sha256(certs).hexdigest()
    compared = public or reference
    if compared is not None:
        parts[4:6] = [compared.sha256, compared.version]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def merge(
    content: _Content | None,
    added_content: _Content | None,
    public: PublicRoots | None,
    now: datetime,
    *,
    reference: PublicRoots | None = None,
) -> Merged:
    """Source certificates first, in source order, then SMTP_CA_CERTS's, then certifi's roots
    in certifi's order.

    Both orders are already stable, and keeping them makes the output easy to diff against the
    source and keeps a certifi upgrade to a small diff; sorting by fingerprint would do neither.
    A root that is in both stays in the source's place. The source's self-signed roots are
    compared with certifi's (``public``, or ``reference`` when certifi is not merged): see the
    module's docstring.
    """
    compared = public or reference
    anchors = _anchors(compared) if compared is not None else None
    if content is not None and anchors is not None and compared is not None:
        content = _judge_source_roots(content, anchors, compared, merged=public is not None)
    kept = (*(content.kept if content else ()), *(added_content.kept if added_content else ()))
    # What the check needs to say when a chain is anchored outside Mozilla's list, without
    # reading certifi again on every build.
    outside = (
        tuple(
            item.summary.sha256
            for item in kept
            if _identity(load_pem_certificates(item.pem)[0]) not in anchors
        )
        if anchors is not None
        else None
    )
    seen = {item.summary.sha256 for item in kept}
    added: list[_Kept] = []
    duplicates = 0
    notices: list[str] = []
    if public is not None:
        expired = 0
        try:
            blocks = [block for block in split_pem(public.data) if block.is_certificate]
            certificates = [load_certificate(block) for block in blocks]
        except CertificateError as error:
            raise BuildError(
                f"certifi's roots are damaged: {error}.",
                hint=_CERTIFI_HINT,
            ) from None
        for cert in certificates:
            summary = summarize(cert)
            if summary.sha256 in seen:
                duplicates += 1
                continue
            seen.add(summary.sha256)
            if summary.is_expired(now):
                expired += 1
                continue
            added.append(_Kept(summary, to_pem(cert)))
        if expired:
            notices.append(f"Left out {plural(expired, 'expired public root')} of certifi.")
    written = [item.summary.not_after for item in (*kept, *added)]
    if not written:
        # refuse_empty_bundle ruled out a build with no input, and each other input keeps a
        # certificate or fails: what is left is a certifi with no root valid now.
        raise BuildError(
            "certifi's roots hold no certificate that is valid now.", hint=_CERTIFI_HINT
        )
    return Merged(
        pem=_render(content, added_content, added, public),
        source=content.part if content else None,
        added=added_content.part if added_content else None,
        public_root_count=len(added),
        public_duplicates=duplicates,
        certifi_version=public.version if public else None,
        expires=min(written),
        notices=tuple(notices),
        outside_mozilla=outside,
    )


def _anchors(certifi: PublicRoots) -> set[tuple[bytes, bytes]]:
    """certifi's roots as trust anchors: name and key."""
    try:
        return {_identity(cert) for cert in load_pem_certificates(certifi.data)}
    except CertificateError as error:
        raise BuildError(f"certifi's roots are damaged: {error}.", hint=_CERTIFI_HINT) from None


def _judge_source_roots(
    content: _Content,
    anchors: set[tuple[bytes, bytes]],
    certifi: PublicRoots,
    *,
    merged: bool,
) -> _Content:
    """``content`` without the self-signed roots it carries only to reach roots certifi holds
    itself (when certifi's roots are ``merged``), and with a note on each of its other
    self-signed roots that certifi does not hold.

    Such a root goes with the cross-signatures it made of certifi's roots: without their issuer
    they lead nowhere, and OpenSSL may still pick one, fail to find its issuer and refuse a
    chain that certifi's own copy of the root would anchor ("unable to get issuer
    certificate"). The intermediates under those roots stay."""
    mozilla = f"Mozilla's list (certifi {certifi.version})"
    pairs = [(item, load_pem_certificates(item.pem)[0]) for item in content.kept]
    left_out: set[str] = set()
    notes: list[str] = []
    for item, cert in pairs:
        # certifi holds this root (or the same name and key in another certificate): fine.
        if not item.summary.self_signed or _identity(cert) in anchors:
            continue
        reached = [
            (other, other_cert)
            for other, other_cert in pairs
            if other is not item and _signed_by(other_cert, cert)
        ]
        if (
            merged
            and reached
            and all(_identity(other_cert) in anchors for _, other_cert in reached)
        ):
            names = ", ".join(other.summary.display_name for other, _ in reached)
            left_out.update(other.summary.sha256 for other, _ in [(item, cert), *reached])
            notes.append(
                f"Left out {item.summary.describe()}, a self-signed root that {mozilla} does "
                f"not hold, and its cross-signature of {names}: the bundle carries them only to "
                "reach that root, which certifi holds itself. The app trusts no root that "
                "Mozilla's list does not."
            )
        else:
            notes.append(
                f"{item.summary.describe()} is a self-signed root that {mozilla} does not "
                f"hold: the app trusts it because the bundle at {URL_VARIABLE} holds it."
            )
    if not notes:
        return content
    kept = tuple(item for item in content.kept if item.summary.sha256 not in left_out)
    part = replace(
        content.part,
        kept=tuple(item.summary for item in kept),
        notices=(*content.part.notices, *notes),
    )
    return replace(content, kept=kept, part=part)


def _identity(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """A CA as a trust anchor: its name and its key, whoever signed this certificate of it."""
    from cryptography.hazmat.primitives import serialization

    key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert.subject.public_bytes(), key


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    return child.issuer == parent.subject and signature_verifies(child, parent) is True


def _render(
    content: _Content | None,
    added_content: _Content | None,
    added: list[_Kept],
    public: PublicRoots | None,
) -> bytes:
    # No dates: the same inputs must give the same bytes on every build.
    lines = [
        "# CA certificates for SMTP clients, written by heroku-buildpack-smtp-ca on every build.",
        "# Edits are overwritten: change the buildpack's config vars instead.",
    ]
    if content is not None:
        lines.append(
            f"# {plural(len(content.kept), 'certificate')} from the bundle at {URL_VARIABLE}, "
            f"whose SHA-256 is {_comment(content.part_sha256)},"
        )
    else:
        lines.append(f"# Nothing from {URL_VARIABLE}.")
    if added_content is not None:
        lines.append(f"# {plural(len(added_content.kept), 'certificate')} from {CERTS_VARIABLE},")
    if public is not None:
        lines.append(
            f"# then {plural(len(added), 'public root')} from certifi {public.version} "
            "(Mozilla's CA certificates)."
        )
    else:
        lines.append(f"# No public roots ({PUBLIC_ROOTS_VARIABLE}=false).")
    out = ["\n".join(lines) + "\n"]
    origin = f"{_comment(content.display)} ({URL_VARIABLE})" if content else ""
    for item in content.kept if content else ():
        out.append(_block(item, origin))
    for item in added_content.kept if added_content else ():
        out.append(_block(item, CERTS_VARIABLE))
    for item in added:
        out.append(_block(item, "certifi"))
    return "".join(out).encode("utf-8")


def _block(item: _Kept, origin: str) -> str:
    s = item.summary
    return (
        f"\n# {s.display_name}\n"
        f"# Subject: {s.subject}\n"
        f"# Issuer: {s.issuer}\n"
        f"# Valid: {s.not_before:%Y-%m-%d} to {s.not_after:%Y-%m-%d}\n"
        f"# SHA-256: {s.sha256}\n"
        f"# From: {origin}\n" + item.pem.decode("ascii")
    )


def _comment(text: str) -> str:
    """Text fit for a comment line of the bundle: one printable line with no run of five
    dashes, so that no PEM reader can take it for a BEGIN line."""
    return re.sub("-{5,}", "----", escaped(text))
