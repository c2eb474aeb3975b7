"""Why a check failed, in words that say what to change: the check's diagnosis of a refused chain.

OpenSSL's verdict names one error code. Given the chain the server presented (read in a second
handshake that verifies nothing), this module says which certificate is at fault, whether
certifi's roots or the system store would anchor the chain, and what else is wrong that the
next build would otherwise reveal.

The check's flow (handshakes, AIA completion, revocation) is ``flow``; everything here works
on what the flow hands it, through a ``Context``. Each cause but the unknown issuer is explained
in ``causes``, the fixes more than one cause shares are in ``hints``, and failures that never
got as far as certificates (TLS, the connection, SMTP) are ``connection_failure``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from smtp_ca import SYSTEM_STORE
from smtp_ca.bundle.certificates import readable_name
from smtp_ca.check.causes import (
    EXPIRED,
    NAME_MISMATCH_CODES,
    NOT_YET_VALID,
    SELF_SIGNED,
    SELF_SIGNED_IN_CHAIN,
    UNKNOWN_ISSUER_CODES,
    bad_dates,
    generic_verify_failure,
    name_mismatch,
    openssl_message,
    self_signed,
)
from smtp_ca.check.chain import (
    Store,
    Trusted,
    day,
    describe_chain,
    host_names,
    is_ip_address,
    load_store,
    presented_path,
    proven_self_signed,
)
from smtp_ca.check.context import Context, TrustStores
from smtp_ca.check.hints import unknown_issuer_fix
from smtp_ca.check.outcome import Cause, CheckOutcome
from smtp_ca.untrusted import shown

if TYPE_CHECKING:
    from cryptography import x509

    from smtp_ca.check.aia import Completion


# --- a chain OpenSSL refused --------------------------------------------------------------------


def is_unknown_issuer(error: ssl.SSLCertVerificationError) -> bool:
    """Whether OpenSSL found no issuer for the chain in the bundle: the one failure that
    fetching the server's missing intermediate through AIA may fix."""
    return error.verify_code in UNKNOWN_ISSUER_CODES or error.verify_code == SELF_SIGNED_IN_CHAIN


def diagnose(
    context: Context,
    error: ssl.SSLCertVerificationError,
    presented: list[x509.Certificate],
    notes: list[str],
    *,
    fetched: Completion | None = None,
) -> CheckOutcome:
    """Names why OpenSSL refused the chain ``presented`` (empty when it could not be read;
    ``notes`` then say why). ``fetched``: the intermediates fetched through AIA, when the chain
    reached the bundle with them and ``error`` is what failed then."""
    code = error.verify_code
    if not presented:
        outcome = generic_verify_failure(context.target, error)
        return _with(outcome, details=(*notes, *outcome.details))
    if is_unknown_issuer(error):
        return unknown_issuer(context, error, presented, notes, None)
    if fetched is not None:
        names = ", ".join(readable_name(item.cert.subject) for item in fetched.fetched)
        notes = [
            *notes,
            f"The server does not send its intermediate {names}. With it, fetched through "
            "AIA, the chain reaches the bundle; what is left is the failure above.",
        ]
    if code == SELF_SIGNED:
        outcome = self_signed(context, error, presented)
    elif code in (EXPIRED, NOT_YET_VALID):
        outcome = bad_dates(context, error, presented, expired=code == EXPIRED)
    elif code in NAME_MISMATCH_CODES:
        outcome = name_mismatch(context, error, presented)
    else:
        outcome = generic_verify_failure(context.target, error)
    chain_lines = tuple(describe_chain(presented))
    others = _other_problems(context, presented, outcome.cause)
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


def unknown_issuer(
    context: Context,
    error: ssl.SSLCertVerificationError,
    presented: list[x509.Certificate],
    notes: list[str],
    completion: Completion | None,
) -> CheckOutcome:
    """No certificate of the bundle anchors ``presented``. ``completion``: what fetching the
    missing issuers through AIA found, when the check tried and it did not reach the bundle."""
    path = presented_path(presented)
    top = path[-1]
    reach, completion_notes = _reach(path, completion)
    details: list[str] = []
    notes = [*notes, *completion_notes]

    missing = readable_name(reach.issuer)
    if proven_self_signed(top):
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
    public, system = _other_stores(context, reach)
    system_label = str(context.stores.system or SYSTEM_STORE)
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
    details.extend(_other_problems(context, presented, "unknown-issuer"))
    details.extend(["The server presented:", *chain_lines])

    return CheckOutcome(
        cause="unknown-issuer",
        summary=(
            f"{context.where}: certificate verify failed: no certificate in the bundle anchors the "
            f"server's chain ({openssl_message(error)})."
        ),
        details=tuple(details),
        hint=unknown_issuer_fix(
            public, system, missing, leaf_alone=len(path) == 1 and not proven_self_signed(top)
        ),
        chain=chain_lines,
    )


def _reach(
    path: list[x509.Certificate], completion: Completion | None
) -> tuple[x509.Certificate, list[str]]:
    """How far the chain reaches: the top of what the server sent, or of what AIA fetched on
    top of it; and what fetching noted on the way."""
    if completion is None:
        return path[-1], []
    # That a CA certificate names no caIssuers URL is normal; worth saying only when the
    # server sent its leaf alone, where the URL was the way to the intermediate.
    notes = [
        note
        for note in completion.notes
        if len(path) == 1 or "names no http:// caIssuers URL" not in note
    ]
    reach = completion.fetched[-1].cert if completion.fetched else path[-1]
    return reach, notes


def public_roots(stores: TrustStores) -> Store | None:
    """certifi's roots (Mozilla's list), or None when there are none to read."""
    public_path = stores.public_roots
    if public_path is None:
        try:
            import certifi

            public_path = Path(certifi.where())
        except ImportError:
            public_path = None
    return load_store(public_path, "certifi")


def _other_stores(context: Context, top: x509.Certificate) -> tuple[Trusted | None, Trusted | None]:
    """The certificate of certifi's roots, and of the system store, that anchors ``top``."""
    public = public_roots(context.stores)
    system = load_store(context.stores.system, "the system store")
    return (
        public.anchor_for(top) if public else None,
        system.anchor_for(top) if system else None,
    )


def _other_problems(context: Context, presented: list[x509.Certificate], cause: Cause) -> list[str]:
    """What else is wrong with the server's certificate: OpenSSL stops at the first error,
    and fixing one cause should not reveal the next only at the next build."""
    leaf = presented[0]
    problems: list[str] = []
    if cause != "expired" and leaf.not_valid_after_utc < context.now:
        problems.append(
            f"Also: the server's certificate expired on {day(leaf.not_valid_after_utc)}."
        )
    if cause != "not-yet-valid" and leaf.not_valid_before_utc > context.now:
        problems.append(
            f"Also: the server's certificate is not valid until {day(leaf.not_valid_before_utc)}."
        )
    if cause not in ("hostname-mismatch", "self-signed") and not _covers(leaf, context.target.host):
        names = shown(", ".join(host_names(leaf))) or "no names"
        problems.append(
            f"Also: the certificate's names ({names}) do not cover "
            f"{context.target.naming.server_set_to(context.target.host)}."
        )
    return problems


# --- helpers ------------------------------------------------------------------------------------


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
