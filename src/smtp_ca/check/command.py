"""``bin/check HOST[:PORT]``: the build's handshake check, from a laptop or a one-off dyno.

It runs the same check and diagnosis as the build (``check.run_check``) and exits 0 only when
the server verifies against the bundle. Without ``--ca-file`` it makes the bundle a build would
make: from SMTP_CA_BUNDLE_URL, SMTP_CA_BUNDLE_SHA256, SMTP_CA_CERTS, SMTP_CA_PUBLIC_ROOTS and
SMTP_CA_FETCH_TIMEOUT when they are in the environment (a one-off dyno has the app's config vars
there), else from the defaults. Like a build, it goes on with certifi's roots when the default
bundle cannot be downloaded and no earlier run cached it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from smtp_ca.bundle.prepare import prepare_bundle
from smtp_ca.bundle.settings import BundleSettings
from smtp_ca.cache.layout import SCRATCH
from smtp_ca.check.flow import check_bundle, run_check
from smtp_ca.check.naming import command_line
from smtp_ca.check.outcome import CheckOutcome, report_verified, where_of
from smtp_ca.check.smtp_session import CheckTarget
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.settings.load import SUPPORTED_STACKS, load_settings
from smtp_ca.settings.smtp import DEFAULT_SMTP_PORT, odd_ipv4_spelling

# The config vars that decide which bundle a build makes; nothing else of the environment is
# read, so an unrelated variable on a laptop cannot fail the check.
BUNDLE_VARIABLES = (
    "SMTP_CA_BUNDLE_URL",
    "SMTP_CA_BUNDLE_SHA256",
    "SMTP_CA_CERTS",
    "SMTP_CA_PUBLIC_ROOTS",
    "SMTP_CA_FETCH_TIMEOUT",
)


def parse_address(address: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; a bare IPv6 address takes the default port."""
    port_text: str | None = None  # None: no port given; "" would be "HOST:" with none after
    if address.startswith("["):
        host, closed, rest = address[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise BuildError(
                f"{address!r} is not [IPv6] or [IPv6]:PORT.",
                hint="For example: bin/check [2001:db8::25]:587",
            )
        if rest:
            port_text = rest[1:]
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    else:
        host = address
    if not host:
        raise BuildError(f"{address!r} has no host name.", hint="Use HOST[:PORT].")
    usual = odd_ipv4_spelling(host)
    if usual is not None:
        # The app's Ruby would not verify what the check would: see settings.smtp.smtp_host.
        raise BuildError(
            f"{host!r} is the IPv4 address {usual} to this machine, but not to Ruby, which "
            "checks the server's certificate for that text as a host name: the app would fail "
            "where the check passes. Write the address the usual way.",
            hint=f"For example: bin/check {usual}" + (f":{port_text}" if port_text else ""),
        )
    if port_text is None:
        return host, DEFAULT_SMTP_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise BuildError(
            f"The port in {address!r} must be a whole number from 1 to 65535.",
            hint="For example: bin/check smtp.sendgrid.net:587",
        )
    return host, int(port_text)


def run_command(arguments: argparse.Namespace, cache_dir: Path, log: Log) -> int:
    address: str = arguments.address
    host, port = parse_address(address)
    ca_file: Path | None = arguments.ca_file
    # The hints name what was typed here: no config var is in play.
    naming = command_line(host, port, port_given=address not in (host, f"[{host}]"))
    target = CheckTarget(
        host, port, implicit_tls=arguments.tls, timeout=arguments.timeout, naming=naming
    )
    where = where_of(target)
    if ca_file is not None:
        if not ca_file.is_file():
            raise BuildError(f"--ca-file {ca_file} is not a readable file.")
        log.step(f"Checking {where} against {ca_file}")
        return _report(run_check(target, ca_file), log, ca_file=ca_file)

    log.step("Preparing the CA bundle, as a build would")
    settings = load_settings(
        {name: os.environ[name] for name in BUNDLE_VARIABLES if name in os.environ},
        SUPPORTED_STACKS[0],  # the stack does not change the bundle
    )
    prepared = prepare_bundle(
        BundleSettings.from_settings(settings),
        cache_dir,
        log,
    )
    log.step(f"Checking {where} against that bundle")
    scratch = cache_dir / SCRATCH  # as the build's: no temporary at the cache's top
    scratch.mkdir(exist_ok=True)
    outcome = check_bundle(
        target, prepared.pem, scratch_dir=scratch, outside_mozilla=prepared.outside_mozilla
    )
    return _report(outcome, log, ca_file=None)


def _report(outcome: CheckOutcome, log: Log, *, ca_file: Path | None) -> int:
    if report_verified(outcome, log):
        if not outcome.extra_certificates:
            return 0
        if ca_file is None:
            # A build completes the bundle it writes, so the app verifies: that is a pass.
            log.info("A build adds the intermediate certificate above to the bundle it writes.")
            return 0
        # Nothing adds it to a file of the user's own: a client trusting only it would fail.
        log.error(
            f"A client that trusts only {ca_file} fails: it lacks the intermediate certificate "
            "the server does not send. Append the certificate printed below (BEGIN to END "
            "lines) to that file."
        )
        # Unprefixed on stdout, so it can be appended to the bundle as printed.
        for pem in outcome.extra_certificates:
            log.verbatim(pem.decode("ascii", "replace").strip("\n"))
        return 1
    log.error(
        outcome.summary, *outcome.details, *([f"Fix: {outcome.hint}"] if outcome.hint else [])
    )
    return 1
