"""Bounded at every edge, the SMTP side: a server that floods, one that injects terminal escapes,
one that sends a hundred certificates, and outside text in general, cannot flood, hang or
subvert a build (issue 19: Memory, What reaches the log, Diagnosis of long chains).

Each build runs as a child process (``_build``): bin/compile's Python, ``smtp_ca compile`` from
a clean copy of the buildpack (where the build writes its export file), against real servers
on 127.0.0.1 (``support.hostile_smtp`` for the raw misbehaving ones,
aiosmtpd for real STARTTLS), with this test environment's dependencies instead of an install.
A small wrapper process waits for the build and reports its peak memory
(``RUSAGE_CHILDREN.ru_maxrss``: the largest process of the build), so that neither the test
process nor other tests' children count.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest

from smtp_ca.check.smtp_session import MAX_REPLY_LINES
from smtp_ca.output import Log
from smtp_ca.untrusted import MAX_LINE, at_most, echoed, escape_controls, shown
from support.certs import Issued, make_root
from support.heroku import clean_buildpack_copy
from support.hostile_smtp import (
    Behaviour,
    HostileSmtpServer,
    endless_ehlo,
    endless_greeting,
    escaping_starttls_refusal,
    long_starttls_refusal,
)
from support.pki import issue, server_context
from support.slices import E2E, require
from support.smtp_server import SMTPTestServer
from support.wrapped_log import LogBuffer, unwrap

CHECK_TIMEOUT = 5.0
# Beyond the check's own bound: Python's start, the bundle step, the report.
SLACK = 2.0
MAX_PEAK_KIB = 200 * 1024
DEPENDENCIES = Path(jinja2.__file__).resolve().parents[1]

# The build, as bin/compile runs it, with the dependencies already on this Python's path.
_BUILD = f"""
import sys
from pathlib import Path
from smtp_ca import cli, pipeline
pipeline.ensure_dependencies = lambda *args, **kwargs: Path({str(DEPENDENCIES)!r})
sys.exit(cli.main(["compile", *sys.argv[1:]]))
"""
# Waits for the build and writes its exit status and peak memory (KiB on Linux) to argv[1].
_MEASURE = """
import json, resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as report:
    json.dump({"status": status, "peak_kib": peak}, report)
"""
# Bytes no log line may hold: C0 controls but the tab, DEL, C1 controls.
_CONTROL_BYTES = [chr(code) for code in [*range(0, 9), *range(11, 32), 127, *range(128, 160)]]


@dataclass(frozen=True)
class Build:
    status: int
    stdout: str
    stderr: str
    seconds: float
    peak_kib: int
    app_before: dict[str, bytes]
    app_after: dict[str, bytes]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="module")
def provider_root() -> Issued:
    return make_root("smtp-ca Bounds Provider Root")


def _app(build_dir: Path) -> dict[str, bytes]:
    (build_dir / "config").mkdir(parents=True)
    (build_dir / "config" / "application.rb").write_text("# the app\n")
    (build_dir / "Gemfile").write_text("source 'https://rubygems.org'\n")
    return _files(build_dir)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def _build(tmp_path: Path, bundle: bytes, port: int, timeout: float = 60, **config: str) -> Build:
    require(E2E, "builds an app with the compile command")
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    bundle_file = tmp_path / "provider-bundle.pem"
    bundle_file.write_bytes(bundle)
    variables = {
        "SMTP_CA_BUNDLE_URL": bundle_file.as_uri(),
        "SMTP_CA_BUNDLE_SHA256": hashlib.sha256(bundle).hexdigest(),
        "SMTP_CA_PUBLIC_ROOTS": "false",
        "SMTP_SERVER": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_OPENSSL_VERIFY_MODE": "peer",
        "SMTP_CA_CHECK": "strict",
        "SMTP_CA_CHECK_TIMEOUT": f"{CHECK_TIMEOUT:g}",
        **config,
    }
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    for name, value in variables.items():
        (env_dir / name).write_text(value)
    build_dir = tmp_path / "build_0123abcd"
    before = _app(build_dir)
    report = tmp_path / "measured.json"
    environment: Mapping[str, str] = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "STACK": "heroku-24",
        "PYTHONPATH": str(buildpack / "src"),
    }
    child = [sys.executable, "-c", _BUILD, str(build_dir), str(tmp_path / "cache"), str(env_dir)]
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(report), *child],
        env=environment,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    seconds = time.monotonic() - started
    measured = json.loads(report.read_text())
    return Build(
        measured["status"],
        unwrap(completed.stdout),
        unwrap(completed.stderr),
        seconds,
        measured["peak_kib"],
        before,
        _files(build_dir),
    )


def _assert_bounded(build: Build) -> None:
    """Within the check's bound plus slack, under the memory cap, no raw control character."""
    assert build.seconds < CHECK_TIMEOUT + SLACK, (build.seconds, build.output)
    assert build.peak_kib < MAX_PEAK_KIB, build.peak_kib
    raw = [repr(character) for character in _CONTROL_BYTES if character in build.output]
    assert not raw, raw
    assert max(len(line) for line in build.output.splitlines()) <= MAX_LINE + 40


def _assert_failed_strictly(build: Build) -> None:
    """strict fails the build and leaves the app as it was: nothing written into it."""
    assert build.status == 1, build.output
    assert "SMTP_CA_CHECK=strict fails the build on a failed check" in build.stderr
    assert build.app_after == build.app_before
    assert "Traceback" not in build.output


# --- floods --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "what"),
    [
        (endless_ehlo, "reply to EHLO"),
        (endless_greeting, "greeting"),
        (long_starttls_refusal(15_000), "reply to STARTTLS"),
    ],
    ids=["endless-ehlo", "endless-greeting", "15000-line-454"],
)
@pytest.mark.e2e
def test_a_reply_that_does_not_end_is_cut_at_its_line_cap_and_named(
    tmp_path: Path, provider_root: Issued, behaviour: Behaviour, what: str
) -> None:
    with HostileSmtpServer(behaviour) as server:
        build = _build(tmp_path, provider_root.pem, server.port)
    where = f"127.0.0.1:{server.port} (STARTTLS)"
    assert (
        f" !     {where}: the server's {what} ran past {MAX_REPLY_LINES} lines.\n" in build.stderr
    ), build.output
    assert " !     A mail server's replies are a few short lines; this one did not stop." in (
        build.stderr
    )
    assert "no answer within" not in build.output
    _assert_failed_strictly(build)
    _assert_bounded(build)


@pytest.mark.e2e
def test_a_long_starttls_refusal_is_quoted_cut_to_length_in_the_warning(
    tmp_path: Path, provider_root: Issued
) -> None:
    lines = MAX_REPLY_LINES - 10  # under the line cap: the reply is read whole, then quoted
    with HostileSmtpServer(long_starttls_refusal(lines)) as server:
        build = _build(tmp_path, provider_root.pem, server.port, SMTP_CA_CHECK="warn")
    summary = next(line for line in build.stderr.splitlines() if "STARTTLS was answered" in line)
    assert summary.startswith(
        f" !     Warning: 127.0.0.1:{server.port} (STARTTLS): STARTTLS was answered with 454 "
        "TLS not available, line 0 TLS not available, line 1 "
    )
    assert summary.endswith(" more characters).")
    assert len(summary) < 400
    assert "The build goes on (SMTP_CA_CHECK=warn)" in build.stderr
    assert build.status == 0, build.output
    _assert_bounded(build)


# --- escapes -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_terminal_escapes_in_a_reply_reach_the_log_escaped(
    tmp_path: Path, provider_root: Issued
) -> None:
    with HostileSmtpServer(escaping_starttls_refusal) as server:
        build = _build(tmp_path, provider_root.pem, server.port)
    assert (
        f" !     127.0.0.1:{server.port} (STARTTLS): STARTTLS was answered with 454 "
        "\\x1b[2J\\x1b[31mPWNED\\x1b]0;t\\x07.\n" in build.stderr
    ), build.output
    _assert_failed_strictly(build)
    _assert_bounded(build)


# --- a hundred certificates ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hundred_certificates() -> list[Issued]:
    """A leaf, 98 intermediates and their root, leaf first, as a server would send them."""
    root = make_root("Chain Root")
    issuers = [root]
    for number in range(1, 99):
        issuers.append(issue(f"Chain Int {number}", issuers[-1], ca=True))
    leaf = issue("localhost", issuers[-1], hostnames=("localhost", "127.0.0.1"))
    return [leaf, *reversed(issuers)]


@pytest.mark.e2e
def test_a_hundred_certificate_chain_is_named_by_its_real_end_and_listed_short(
    tmp_path: Path, provider_root: Issued, hundred_certificates: list[Issued]
) -> None:
    leaf, *chain = hundred_certificates
    context = server_context(leaf, *chain)
    with SMTPTestServer(mode="starttls", ssl_context=context) as server:
        build = _build(tmp_path, provider_root.pem, server.port)
    errors = build.stderr
    assert (
        " !     The server's chain ends at the root Chain Root, which the bundle does not hold.\n"
        in (errors)
    ), build.output
    assert "issued by Chain Int" not in errors.split("The server presented:")[0]
    listing = errors.split(" !     The server presented:\n", 1)[1].splitlines()
    assert listing[0].startswith(" !       1. localhost, issued by Chain Int 98, valid until ")
    assert listing[4].startswith(" !       5. Chain Int 95, issued by Chain Int 94, ")
    assert listing[5] == " !       … 90 more"
    assert listing[6].startswith(" !       96. Chain Int 4, issued by Chain Int 3, ")
    assert listing[10].startswith(" !       100. Chain Root, issued by Chain Root, ")
    assert sum(". Chain Int" in line for line in errors.splitlines()) == 8
    _assert_failed_strictly(build)
    _assert_bounded(build)


# --- a leaf with 10,000 names --------------------------------------------------------------------


@pytest.mark.e2e
def test_a_leaf_too_large_for_openssl_is_named_as_such_not_blamed_on_the_port(
    tmp_path: Path, provider_root: Issued
) -> None:
    # 10,000 names make a certificate of some 200 KiB: past the 100 KiB OpenSSL takes for the
    # server's certificates, in the check and in the app's Ruby alike (EXCESSIVE_MESSAGE_SIZE).
    names = ["localhost", "127.0.0.1", *(f"n{number}.example.test" for number in range(10_000))]
    leaf = issue("localhost", provider_root, hostnames=names)
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
        build = _build(tmp_path, provider_root.pem, server.port)
    where = f"127.0.0.1:{server.port} (STARTTLS)"
    assert (
        f" !     {where}: the server sent a TLS handshake message larger than OpenSSL accepts "
        "(EXCESSIVE_MESSAGE_SIZE): its certificate chain is over 100 KiB, such as a certificate "
        "with thousands of names. The app's OpenSSL refuses it the same way, so its mail fails "
        "too.\n"
        " !     Only the mail provider can fix this: ask them for a certificate with fewer "
        "names, or for the host name of a server whose certificate is its own. Another port or "
        "TLS mode does not help.\n"
    ) in build.stderr, build.output
    assert "SMTP_PORT" not in build.stderr and "SMTP_TLS" not in build.stderr
    _assert_failed_strictly(build)
    _assert_bounded(build)


# --- repeated findings and long values -----------------------------------------------------------


@pytest.mark.e2e
def test_copies_of_one_certificate_are_counted_in_one_line(
    tmp_path: Path, provider_root: Issued
) -> None:
    with SMTPTestServer(mode="starttls") as server:
        build = _build(
            tmp_path,
            provider_root.pem * 2000,  # under the 2 MiB cap on a bundle
            server.port,
            SMTP_CA_CHECK="warn",
            SMTP_CA_FILE="/" + "a" * 60_000,
        )
    copies = [
        line for line in build.output.splitlines() if "copies of" in line or "copy of" in line
    ]
    assert copies == [
        "       Left out 1,999 more copies of CN=smtp-ca Bounds Provider Root,O=smtp-ca tests "
        "(not after "
        f"{provider_root.cert.not_valid_after_utc:%Y-%m-%d})."
    ]
    assert (
        " !     Warning: SMTP_CA_FILE is set to a value of 60,001 characters: the app uses that "
        "file" in build.stderr
    ), build.output
    assert "a" * 400 not in build.output
    assert build.status == 0, build.output
    _assert_bounded(build)


# --- the sanitizer and the log's safety net ------------------------------------------------------


def test_shown_escapes_control_characters_and_cuts_with_a_note() -> None:
    assert shown("454 \x1b[2J\x1b]0;t\x07\r\nnext") == "454 \\x1b[2J\\x1b]0;t\\x07\\r\\nnext"
    assert shown("x" * 5000, 60) == "x" * 60 + "… (4,940 more characters)"
    assert shown("\x1b" * 10, 8) == "\\x1b\\x1b… (8 more characters)"
    assert shown("Főtanúsítvány") == "Főtanúsítvány"


def test_a_long_config_value_is_described_by_its_length_not_quoted() -> None:
    assert echoed("/etc/ssl/certs/ca-certificates.crt") == "/etc/ssl/certs/ca-certificates.crt"
    assert echoed("/x\n") == "/x\\n"
    assert echoed("s" * 60_000) == "a value of 60,000 characters"


def test_lists_of_findings_are_cut_with_a_count() -> None:
    items = [f"finding {number}" for number in range(25)]
    assert at_most(items[:10]) == items[:10]
    assert at_most(items) == [*items[:10], "… 15 more"]
    assert at_most(items, 4, last=2, indent="  ") == [*items[:2], "  … 21 more", *items[-2:]]


def test_the_log_escapes_control_characters_without_escaping_twice() -> None:
    out, err = LogBuffer(), LogBuffer()
    log = Log(out=out, err=err)
    log.info("raw \x1b[31mred\x07 and\ttab")
    log.warn("already " + shown("a\x1bb") + " escaped, a \\path\\ stays")
    log.info("y" * (MAX_LINE + 10))
    lines = out.getvalue().splitlines()
    assert lines[0] == "       raw \\x1b[31mred\\x07 and\ttab"
    assert err.getvalue() == " !     Warning: already a\\x1bb escaped, a \\path\\ stays\n"
    assert lines[1] == "       " + "y" * MAX_LINE + "… (10 more characters)"
    assert escape_controls(shown("\x1b\x9b")) == shown("\x1b\x9b")
