"""``bin/check HOST[:PORT]``: the build's handshake check, from a laptop or a one-off dyno."""

from __future__ import annotations

import argparse
from pathlib import Path

from smtp_ca.bundle import BundleSettings, prepare_bundle
from smtp_ca.check import CheckTarget, run_check
from smtp_ca.errors import BuildError
from smtp_ca.output import Log
from smtp_ca.settings import DEFAULT_BUNDLE_SHA256, DEFAULT_BUNDLE_URL, DEFAULT_SMTP_PORT


def parse_address(address: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPv6] or [IPv6]:PORT."""
    host, port_text = address, ""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    if not host:
        raise BuildError(f"{address!r} has no host name.", hint="Use HOST[:PORT].")
    if not port_text:
        return host, DEFAULT_SMTP_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise BuildError(
            f"The port in {address!r} must be a whole number from 1 to 65535.",
            hint="For example: bin/check smtp.sendgrid.net:587",
        )
    return host, int(port_text)


def run(arguments: argparse.Namespace, cache_dir: Path, log: Log) -> int:
    host, port = parse_address(arguments.address)
    ca_file: Path | None = arguments.ca_file
    if ca_file is None:
        log.step("Preparing the default CA bundle, as a build would")
        prepared = prepare_bundle(
            BundleSettings(
                url=DEFAULT_BUNDLE_URL,
                sha256=DEFAULT_BUNDLE_SHA256,
                public_roots=True,
                timeout=arguments.timeout,
            ),
            cache_dir / "smtp-ca",
            log,
        )
        ca_file = cache_dir / "smtp-ca" / "check-bundle.pem"
        ca_file.write_bytes(prepared.pem)
    elif not ca_file.is_file():
        raise BuildError(f"--ca-file {ca_file} is not a readable file.")
    target = CheckTarget(host, port, implicit_tls=arguments.tls, timeout=arguments.timeout)
    log.step(f"Checking {host}:{port} ({'TLS' if arguments.tls else 'STARTTLS'}) against {ca_file}")
    outcome = run_check(target, ca_file)
    if outcome.verified:
        log.info(outcome.summary)
        for line in outcome.details:
            log.info(line)
        return 0
    log.error(outcome.summary)
    for line in outcome.details:
        log.alert(line)
    if outcome.hint:
        log.alert(outcome.hint)
    return 1
