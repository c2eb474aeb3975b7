"""Hostile servers cannot hold, or flood, a build: every fetch ends by its own bound.

Real servers on 127.0.0.1 (support.hostile_http) drip their status line, their headers or
their body, send a new header every 0.2 s, redirect to a server that drips, flood a header
line or a body, or take 1 s to give an honest answer. bin/compile runs as in the other
end-to-end tests (a clean buildpack copy, a pip-less python3, the session's warm dependency
cache), measured (support.measured_build: when each line arrived, the peak memory). For each
failure: the build ends within SMTP_CA_FETCH_TIMEOUT plus a second of the fetch's first
connection, the message says what the server was doing, peak memory stays under 200 MB, and
BUILD_DIR is exactly as it was. A ``file://`` source that is a silent pipe or a
FIFO without a writer is held to the same bound. The AIA caIssuers and OCSP fetches of the
check, behind the same dripping server, end by SMTP_CA_CHECK_TIMEOUT (run in-process, as
tests/unit/check/test_aia.py and tests/unit/check/test_ocsp.py run the check); a CRL server
that drips or sends 50 MB holds a real build's check no longer than SMTP_CA_CHECK_TIMEOUT plus
a second, within the same memory.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from support.certs import Issued
from support.checking import check, check_pki, text
from support.hostile_http import HostileServer
from support.http_server import LocalServer
from support.measured_build import Build, compile_measured
from support.pki import issue, server_context
from support.silent_server import SilentServer
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e

BOUND = 2.0  # SMTP_CA_FETCH_TIMEOUT for the failing downloads
SLACK = 1.0  # what a build may take past its bound before it has ended
MAX_PEAK_MEMORY = 200 * 1024 * 1024
DOWNLOAD_BOUND = f"the {BOUND:g} s the download was given"

root, intermediate, root_file = check_pki("Bounds")


@pytest.fixture(scope="module")
def hostile_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, Path]]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("hostile-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield ca, path


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return trustme.CA().cert_pem.bytes()


def bundle_vars(url: str, body: bytes, seconds: float = BOUND) -> dict[str, str]:
    return {
        "SMTP_CA_BUNDLE_URL": url,
        "SMTP_CA_BUNDLE_SHA256": hashlib.sha256(body).hexdigest(),
        "SMTP_CA_FETCH_TIMEOUT": f"{seconds:g}",
    }


def assert_failed_cleanly(build: Build, message: str) -> None:
    assert build.returncode != 0, build.output
    assert message in build.stderr, build.output
    assert "Traceback" not in build.output
    assert 0 < build.peak_memory < MAX_PEAK_MEMORY, f"peak memory {build.peak_memory} bytes"
    assert build.app_unchanged, "the failed build changed BUILD_DIR"
    assert not build.export_written


def assert_within(started: float | None, build: Build, bound: float = BOUND) -> None:
    assert started is not None, f"the build never connected:\n{build.output}"
    held = build.ended - started
    assert held <= bound + SLACK, (
        f"the build ended {held:.2f} s after the fetch began, more than {bound:g} s + "
        f"{SLACK:g} s:\n{build.output}"
    )


# --- the bundle download (SMTP_CA_BUNDLE_URL) -------------------------------------------------


@pytest.mark.parametrize(
    ("script", "path", "reason"),
    [
        (
            "drip-status",
            "/bundle.pem",
            f"the server sent its status line too slowly: no whole answer within {DOWNLOAD_BOUND}",
        ),
        (
            "drip-header",
            "/bundle.pem",
            f"the server sent its headers too slowly: no whole answer within {DOWNLOAD_BOUND}",
        ),
        (
            "endless-headers",
            "/bundle.pem",
            f"the server sent its headers too slowly: no whole answer within {DOWNLOAD_BOUND}",
        ),
        (
            "drip-body",
            "/bundle.pem",
            f"the server sent the body too slowly: no whole answer within {DOWNLOAD_BOUND}",
        ),
        (
            "redirects",
            "/hop/0",
            "after 2 redirects, the server sent its headers too slowly: no whole answer within "
            f"{DOWNLOAD_BOUND}",
        ),
    ],
)
def test_a_dripping_bundle_server_holds_the_build_no_longer_than_the_fetch_timeout(
    world: World,
    tmp_path: Path,
    hostile_ca: tuple[trustme.CA, Path],
    bundle: bytes,
    script: str,
    path: str,
    reason: str,
) -> None:
    ca, ca_file = hostile_ca
    with HostileServer(script, tls=ca, delay=0.2, body=bundle) as server:
        url = server.url(path)
        build = compile_measured(world, tmp_path, bundle_vars(url, bundle), requests_ca=ca_file)
    assert_failed_cleanly(
        build, f"Could not download the CA bundle from SMTP_CA_BUNDLE_URL ({url}): {reason}."
    )
    assert_within(server.first_accept, build)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("flood-header-line", "got more than 65536 bytes when reading header line"),
        ("flood-headers", "got more than 100 headers"),
        ("flood-body", "is larger than 2 MiB"),
    ],
)
def test_a_flooding_bundle_server_is_cut_off_by_the_caps(
    world: World,
    tmp_path: Path,
    hostile_ca: tuple[trustme.CA, Path],
    bundle: bytes,
    script: str,
    reason: str,
) -> None:
    ca, ca_file = hostile_ca
    with HostileServer(script, tls=ca) as server:
        build = compile_measured(
            world, tmp_path, bundle_vars(server.url(), bundle), requests_ca=ca_file
        )
    assert_failed_cleanly(build, reason)
    assert_within(server.first_accept, build)


def test_a_stalled_tls_handshake_ends_by_the_fetch_timeout(
    world: World, tmp_path: Path, bundle: bytes
) -> None:
    with SilentServer() as silent:
        url = f"https://127.0.0.1:{silent.port}/bundle.pem"
        build = compile_measured(world, tmp_path, bundle_vars(url, bundle))
    assert_failed_cleanly(
        build,
        f"Could not download the CA bundle from SMTP_CA_BUNDLE_URL ({url}): the TLS "
        f"handshake did not finish within {DOWNLOAD_BOUND}.",
    )
    held = build.ended - build.arrived("-----> Preparing the SMTP CA bundle")
    assert held <= BOUND + SLACK, build.output


@pytest.mark.parametrize("seconds", [5, 3])
def test_an_honest_server_that_takes_a_second_succeeds(
    world: World,
    tmp_path: Path,
    hostile_ca: tuple[trustme.CA, Path],
    bundle: bytes,
    seconds: int,
) -> None:
    ca, ca_file = hostile_ca
    with HostileServer("slow", tls=ca, delay=1.0, body=bundle) as server:
        build = compile_measured(
            world, tmp_path, bundle_vars(server.url(), bundle, seconds), requests_ca=ca_file
        )
    assert build.returncode == 0, build.output
    assert len(server.paths) == 1, "one attempt was enough"
    assert "Attempt 1 of" not in build.output
    assert 0 < build.peak_memory < MAX_PEAK_MEMORY


# --- file:// sources ----------------------------------------------------------------------


def test_a_silent_stdin_pipe_is_read_within_the_fetch_timeout(
    world: World, tmp_path: Path, bundle: bytes
) -> None:
    reader, writer = os.pipe()  # the write end stays open, and silent
    try:
        build = compile_measured(
            world, tmp_path, bundle_vars("file:///dev/stdin", bundle), stdin=reader
        )
    finally:
        os.close(reader)
        os.close(writer)
    assert_failed_cleanly(
        build,
        "Could not read /dev/stdin, named by SMTP_CA_BUNDLE_URL: it is a pipe, and nothing "
        f"arrived within the {BOUND:g} s the read was given.",
    )
    held = build.ended - build.arrived("-----> Preparing the SMTP CA bundle")
    assert held <= BOUND + SLACK, build.output


def test_a_fifo_without_a_writer_is_read_within_the_fetch_timeout(
    world: World, tmp_path: Path, bundle: bytes
) -> None:
    fifo = tmp_path / "bundle.fifo"
    os.mkfifo(fifo)
    build = compile_measured(world, tmp_path / "build", bundle_vars(fifo.as_uri(), bundle))
    assert_failed_cleanly(
        build,
        f"Could not read {fifo}, named by SMTP_CA_BUNDLE_URL: it is a pipe, and nothing "
        f"arrived within the {BOUND:g} s the read was given.",
    )
    held = build.ended - build.arrived("-----> Preparing the SMTP CA bundle")
    assert held <= BOUND + SLACK, build.output


# --- the check's AIA and OCSP fetches (SMTP_CA_CHECK_TIMEOUT) --------------------------------

CHECK_BOUND = 3.0


def test_a_dripping_aia_server_holds_the_check_no_longer_than_its_timeout(
    intermediate: Issued, root_file: Path
) -> None:
    with HostileServer("drip-header", delay=0.2) as hostile:
        leaf = issue(
            "localhost", intermediate, hostnames=("localhost",), ca_issuers=hostile.url("/ca")
        )
        with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
            started = time.monotonic()
            outcome = check(server.port, root_file, timeout=CHECK_BOUND)
            took = time.monotonic() - started
    assert hostile.paths == ["/ca"]
    assert not outcome.verified
    assert took <= CHECK_BOUND + SLACK, f"the check took {took:.2f} s"
    (note,) = [line for line in outcome.details if line.startswith("Could not fetch")]
    assert note.startswith(
        f"Could not fetch the issuer from {hostile.url('/ca')}: the server sent its headers too "
        "slowly: no whole answer within the "
    ), text(outcome)
    assert note.endswith(" s left of the check."), note


def test_a_dripping_ocsp_responder_holds_the_check_no_longer_than_its_timeout(
    intermediate: Issued, root_file: Path
) -> None:
    with HostileServer("drip-status", delay=0.2) as hostile:
        leaf = issue("localhost", intermediate, hostnames=("localhost",), ocsp=hostile.url("/"))
        context = server_context(leaf, intermediate)
        with SMTPTestServer(mode="starttls", ssl_context=context) as server:
            started = time.monotonic()
            outcome = check(server.port, root_file, timeout=CHECK_BOUND)
            took = time.monotonic() - started
    assert hostile.paths == ["/"]
    assert outcome.verified  # an open question about revocation is a note, not a failure
    assert took <= CHECK_BOUND + SLACK, f"the check took {took:.2f} s"
    (line,) = [line for line in outcome.details if line.startswith("Revocation:")]
    assert "the server sent its status line too slowly" in line, line


# --- the check's CRL fetch: a dripping or flooding CRL server, in a real build ---------------

FIFTY_MB = 50 * 1024 * 1024


def crl_build(world: World, where: Path, root: Issued, intermediate: Issued, crl_url: str) -> Build:
    """A real build whose SMTP server presents a leaf naming ``crl_url`` as its CRL."""
    leaf = issue("localhost", intermediate, hostnames=("localhost",), crl=crl_url)
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as smtp:
        config_vars = {
            **world.bundle_vars("/bounds-crl-root.pem", root.pem),
            "SMTP_SERVER": "localhost",
            "SMTP_PORT": str(smtp.port),
            "SMTP_OPENSSL_VERIFY_MODE": "peer",
            "SMTP_CA_CHECK_TIMEOUT": f"{CHECK_BOUND:g}",
        }
        return compile_measured(world, where, config_vars)


def assert_check_ended_in_time(build: Build) -> None:
    """The check's step ends, and the build with it, within SMTP_CA_CHECK_TIMEOUT plus a
    second; an open question about revocation is a note, so the build passes."""
    assert build.returncode == 0, build.output
    held = build.ended - build.arrived("-----> Checking localhost:")
    assert held <= CHECK_BOUND + SLACK, f"the check held the build {held:.2f} s:\n{build.output}"
    assert 0 < build.peak_memory < MAX_PEAK_MEMORY, f"peak memory {build.peak_memory} bytes"


def test_a_dripping_crl_server_holds_the_check_no_longer_than_its_timeout(
    world: World, tmp_path: Path, root: Issued, intermediate: Issued
) -> None:
    with HostileServer("drip-body", delay=0.2, body=b"0" * 4096) as hostile:
        build = crl_build(world, tmp_path, root, intermediate, hostile.url("/issuing.crl"))
    assert hostile.paths == ["/issuing.crl"]
    assert_check_ended_in_time(build)
    assert (
        f"Revocation: not checked, the CRL at {hostile.url('/issuing.crl')} could not be "
        "fetched: the server sent the body too slowly: no whole answer within the "
    ) in build.output


@pytest.mark.parametrize("says_its_length", [False, True], ids=["no-length", "honest-length"])
def test_a_crl_server_that_sends_50_mb_is_cut_off_at_the_cap(
    world: World, tmp_path: Path, root: Issued, intermediate: Issued, says_its_length: bool
) -> None:
    from smtp_ca.check.crl import MAX_CRL_BYTES

    with LocalServer() as http:
        http.serve("/issuing.crl", b"\x30" * FIFTY_MB, content_length=says_its_length)
        build = crl_build(world, tmp_path, root, intermediate, http.url("/issuing.crl"))
    assert http.count("/issuing.crl") == 1
    assert_check_ended_in_time(build)
    assert (
        f"Revocation: not checked, the CRL at {http.url('/issuing.crl')} could not be fetched: "
        f"{http.url('/issuing.crl')} is larger than {MAX_CRL_BYTES} bytes."
    ) in build.output
    leftovers = [path for path in (tmp_path / "cache").rglob("*.tmp")]
    assert leftovers == [], "the refused CRL was left in the cache"
