"""``bin/check HOST[:PORT] [--ca-file FILE] [--tls] [--timeout SECONDS]`` as a user runs it.

Each test runs the real script in a subprocess: it finds python3, bootstraps the locked
dependencies into SMTP_CA_CACHE_DIR (from the local wheelhouse, never an index), and runs the
same check as the build. The dependencies are installed once for the module.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from cryptography import x509

from smtp_ca.check.command import parse_address
from smtp_ca.errors import BuildError
from support.certs import Issued, make_root
from support.http_server import LocalServer
from support.offline_inputs import REPO, load_inputs
from support.pki import issue, server_context
from support.scratch import fixture_dir
from support.silent_server import SilentServer
from support.smtp_server import SMTPTestServer, free_port
from support.wrapped_log import LogBuffer, unwrap


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="module")
def environment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A clean environment whose python3 is this one, with a dependency cache filled once."""
    inputs = load_inputs()
    root = fixture_dir(request, tmp_path_factory, "bin-check")
    tools = root / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(sys.executable)
    env = {
        "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(root / "home"),
        "LANG": "C.UTF-8",
        "SMTP_CA_CACHE_DIR": str(root / "cache"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(inputs.wheelhouse),
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    any_bundle = make_root("smtp-ca bin/check Any Root").write(root / "any.pem")
    env["ANY_BUNDLE"] = str(any_bundle)  # for tests that never reach a handshake
    first = _run(env, f"127.0.0.1:{free_port()}", "--ca-file", str(any_bundle))
    assert "Installing the buildpack's Python dependencies" in first.stdout, first.output
    assert first.returncode == 1, first.output
    assert "connection refused" in first.stderr
    # A directory it made is its own, tagged as such: the next runs take it (test_bounds_cache).
    assert (root / "cache" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28")
    return env


def _run(env: dict[str, str], *arguments: str) -> Result:
    completed = subprocess.run(
        [str(REPO / "bin" / "check"), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(completed.returncode, unwrap(completed.stdout), unwrap(completed.stderr))


class BinCheck(Protocol):
    def __call__(self, *arguments: str, **extra_env: str) -> Result: ...


@pytest.fixture
def bin_check(environment: dict[str, str]) -> BinCheck:
    def run(*arguments: str, **extra_env: str) -> Result:
        result = _run({**environment, **extra_env}, *arguments)
        assert "Traceback" not in result.output
        assert "Installing" not in result.stdout  # the module's cache is warm
        return result

    return run


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_root("smtp-ca bin/check Root CA")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return issue("smtp-ca bin/check Issuing CA", root, ca=True)


@pytest.fixture
def root_file(root: Issued, tmp_path: Path) -> Path:
    return root.write(tmp_path / "root.pem")


def test_verified_exits_0(
    bin_check: BinCheck, root: Issued, intermediate: Issued, root_file: Path
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        result = bin_check(f"localhost:{server.port}", "--ca-file", str(root_file))
    assert result.returncode == 0, result.output
    version = "TLSv1.3" if "verified, TLSv1.3." in result.stdout else "TLSv1.2"
    fingerprint = hashlib.sha256(root.der).hexdigest()
    until = "%Y-%m-%d %H:%M UTC"
    lines = result.stdout.splitlines()
    step = f"-----> Checking localhost:{server.port} (STARTTLS) against {root_file}"
    # Everything from the check's step on (the dependency step before it depends on the cache).
    assert lines[lines.index(step) :] == [
        step,
        f"       localhost:{server.port} (STARTTLS): verified, {version}.",
        "       The server presented:",
        "         1. localhost, issued by smtp-ca bin/check Issuing CA, valid until "
        f"{leaf.cert.not_valid_after_utc:{until}}",
        "         2. smtp-ca bin/check Issuing CA, issued by smtp-ca bin/check Root CA, valid "
        f"until {intermediate.cert.not_valid_after_utc:{until}}",
        "       Anchored by smtp-ca bin/check Root CA "
        f"(SHA-256 {fingerprint[:8]}…{fingerprint[-8:]}), from the bundle.",
        "       The chain is anchored by a root that Mozilla's list does not hold: smtp-ca "
        "bin/check Root CA.",
        "       Revocation: not checked, the certificate names no CRL distribution point and no "
        "OCSP responder.",
        "       Revocation of the intermediate smtp-ca bin/check Issuing CA: not checked, it names "
        "no CRL distribution point and no OCSP responder.",
    ]


def test_implicit_tls_with_tls_flag(
    bin_check: BinCheck, intermediate: Issued, root_file: Path
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost", "127.0.0.1"))
    context = server_context(leaf, intermediate)
    with SMTPTestServer(mode="implicit-tls", ssl_context=context) as server:
        result = bin_check(f"127.0.0.1:{server.port}", "--tls", "--ca-file", str(root_file))
    assert result.returncode == 0, result.output
    assert f"127.0.0.1:{server.port} (TLS)" in result.stdout


def test_a_failure_exits_1_with_the_cause_and_the_fix(
    bin_check: BinCheck, intermediate: Issued, tmp_path: Path
) -> None:
    other = make_root("smtp-ca bin/check Other Root").write(tmp_path / "other.pem")
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        result = bin_check(f"localhost:{server.port}", "--ca-file", str(other))
    assert result.returncode == 1
    assert " !     localhost:" in result.stderr
    assert "no certificate in the bundle anchors the server's chain" in result.stderr
    assert " !     Fix: " in result.stderr


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts and never says a word, like a firewall black hole."""
    with SilentServer() as silent:
        yield silent.port


def test_timeout_flag_bounds_the_check(
    bin_check: BinCheck, silent_port: int, root_file: Path
) -> None:
    started = time.monotonic()
    result = bin_check(f"127.0.0.1:{silent_port}", "--ca-file", str(root_file), "--timeout", "1")
    assert result.returncode == 1
    assert "no answer within 1 s" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.endswith("(a firewall may drop the connection), or raise --timeout."), last
    assert time.monotonic() - started < 10  # interpreter start and imports included


@pytest.mark.parametrize(
    ("signal_number", "status", "said"),
    [(signal.SIGTERM, 143, "Terminated (SIGTERM)."), (signal.SIGINT, 130, "Interrupted.")],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_ends_the_check_with_128_plus_its_number(
    environment: dict[str, str],
    silent_port: int,
    root_file: Path,
    signal_number: int,
    status: int,
    said: str,
) -> None:
    """A platform stopping a process sends SIGTERM and reads 143 as "terminated"; Ctrl-C is
    SIGINT, 130. bin/check execs Python, so the signal reaches it."""
    with subprocess.Popen(
        [str(REPO / "bin" / "check"), f"127.0.0.1:{silent_port}", "--ca-file", str(root_file)],
        env={**environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        while not (step := process.stdout.readline()).startswith("-----> Checking"):
            assert step, "bin/check ended before its check began"
        # The check has begun, and the server says nothing.
        sent = time.monotonic()
        process.send_signal(signal_number)
        stderr = process.stderr.read()
        returncode = process.wait(timeout=10)
        took = time.monotonic() - sent
    assert returncode == status, stderr
    assert stderr.splitlines() == [f" !     {said}"]
    assert took < 2, f"{took:.2f} s after the signal"


def test_without_ca_file_makes_the_bundle_a_build_would(
    bin_check: BinCheck, root: Issued, intermediate: Issued, root_file: Path
) -> None:
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    pin = hashlib.sha256(root_file.read_bytes()).hexdigest()
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        result = bin_check(
            f"localhost:{server.port}",
            SMTP_CA_BUNDLE_URL=root_file.as_uri(),
            SMTP_CA_BUNDLE_SHA256=pin,
        )
    assert result.returncode == 0, result.output
    assert "-----> Preparing the CA bundle, as a build would" in result.stdout
    assert "matches the pin" in result.stdout
    assert "Merged with" in result.stdout  # certifi's public roots, as a build adds them


def test_missing_intermediate_passes_with_the_build_bundle_but_not_with_a_given_file(
    bin_check: BinCheck, intermediate: Issued, root_file: Path
) -> None:
    pin = hashlib.sha256(root_file.read_bytes()).hexdigest()
    with LocalServer() as http:
        http.serve("/issuer.crt", intermediate.der)
        leaf = issue(
            "localhost", intermediate, hostnames=("localhost",), ca_issuers=http.url("/issuer.crt")
        )
        with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
            address = f"localhost:{server.port}"
            as_built = bin_check(
                address, SMTP_CA_BUNDLE_URL=root_file.as_uri(), SMTP_CA_BUNDLE_SHA256=pin
            )
            given = bin_check(address, "--ca-file", str(root_file))
    # A build adds the fetched intermediate to the bundle it writes, so the app verifies.
    assert as_built.returncode == 0, as_built.output
    assert "A build adds the intermediate certificate" in as_built.stdout
    # Nothing adds it to the user's own file: a client trusting only that file fails.
    assert given.returncode == 1, given.output
    assert f"A client that trusts only {root_file} fails" in given.stderr
    # The certificate to append is on stdout as is, ready to be copied into the file.
    start = given.stdout.index("-----BEGIN CERTIFICATE-----")
    end = given.stdout.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    printed = x509.load_pem_x509_certificate(given.stdout[start:end].encode())
    assert printed == intermediate.cert


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("localhost:0", "must be a whole number from 1 to 65535"),
        ("localhost:smtp", "must be a whole number from 1 to 65535"),
        ("[::1", "is not [IPv6] or [IPv6]:PORT"),
        (":25", "has no host name"),
        (
            "127.000.000.001:587",
            "'127.000.000.001' is the IPv4 address 127.0.0.1 to this machine, but not to Ruby, "
            "which checks the server's certificate for that text as a host name: the app would "
            "fail where the check passes. Write the address the usual way.\n"
            " !     For example: bin/check 127.0.0.1:587\n",
        ),
    ],
)
def test_a_bad_address_is_a_message_not_a_traceback(
    bin_check: BinCheck, address: str, words: str
) -> None:
    result = bin_check(address, "--ca-file", os.devnull)
    assert result.returncode == 1
    assert words in result.stderr


USAGE = [
    " !     Usage: bin/check HOST[:PORT] [--ca-file FILE] [--tls] [--timeout SECONDS]",
    " !     For example: bin/check smtp.sendgrid.net:587 (the port is 25 when none is given).",
]


def test_without_arguments_it_prints_its_usage_and_exits_2(bin_check: BinCheck) -> None:
    result = bin_check()
    assert result.returncode == 2
    assert result.stderr.splitlines() == USAGE
    assert result.stdout == ""  # nothing done before it: no bundle, no dependencies


# Python's float() takes all of these but "0" and "121": a timeout is plain ASCII decimal
# seconds within the bound, as SMTP_CA_CHECK_TIMEOUT is.
@pytest.mark.parametrize(
    "value", ["0", "0.0009", "121", "\u0663", "1e-300", "1e1", "inf", "1_0", " 5"]
)
def test_a_usage_mistake_is_named_above_the_usage(
    bin_check: BinCheck, environment: dict[str, str], value: str
) -> None:
    # A bundle and a closed port: a value taken by mistake would reach nothing but loopback.
    address, bundle = f"127.0.0.1:{free_port()}", environment["ANY_BUNDLE"]
    result = bin_check(address, "--ca-file", bundle, "--timeout", value)
    assert result.returncode == 2, result.output
    assert result.stderr.splitlines() == [
        " !     argument --timeout: must be a number of seconds from 0.001 to 120, in digits "
        "(such as 10 or 2.5)",
        *USAGE,
    ]
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_ca_file_is_called_empty_not_dot(bin_check: BinCheck, value: str) -> None:
    result = bin_check("localhost:587", "--ca-file", value)
    assert result.returncode == 2, result.output
    assert result.stderr.splitlines() == [
        " !     argument --ca-file: is empty: name a file of PEM certificates",
        *USAGE,
    ]


def test_hints_name_the_port_as_typed_not_a_config_var(
    bin_check: BinCheck, root_file: Path
) -> None:
    port = free_port()
    result = bin_check(f"127.0.0.1:{port}", "--ca-file", str(root_file))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2:] == [
        f" !     127.0.0.1:{port} (STARTTLS): connection refused.",
        f" !     Fix: Check the port {port}: SendGrid and most providers take 587 (STARTTLS) "
        "or 465 (TLS).",
    ]
    assert "SMTP_" not in result.output


def test_hints_name_the_host_as_typed_and_say_the_machine_may_be_offline(
    bin_check: BinCheck, root_file: Path
) -> None:
    # A label of 64 characters is refused before any lookup: no query leaves the machine.
    host = f"{'a' * 64}.example"
    result = bin_check(f"{host}:587", "--ca-file", str(root_file))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-2:] == [
        f" !     {host}:587 (STARTTLS): the host name does not resolve (not a valid host name).",
        f" !     Fix: Check {host} for a typo. If it has none, this machine may have no DNS or "
        "no network.",
    ]
    assert "SMTP_" not in result.output


def test_a_second_run_waits_for_the_first_on_one_cache_no_longer_than_its_bound(
    bin_check: BinCheck, environment: dict[str, str]
) -> None:
    cache = Path(environment["SMTP_CA_CACHE_DIR"]).resolve()
    with (cache / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first run, still installing or checking
        started = time.monotonic()
        result = bin_check(
            f"127.0.0.1:{free_port()}",
            "--ca-file",
            environment["ANY_BUNDLE"],
            SMTP_CA_CACHE_LOCK_WAIT="1",
        )
        took = time.monotonic() - started
    assert result.returncode == 1, result.output
    assert 1 <= took < 6
    assert result.stdout.splitlines()[-1:] == [
        "       Waiting for another bin/check run using the cache ..."
    ]
    assert result.stderr.splitlines() == [
        f" !     The cache directory {cache} is in use by another bin/check run: it still held "
        f"the lock {cache}/.lock after 1 s. bin/check runs that share a cache take turns on it.",
        " !     Wait for the other bin/check to finish and run it again, or set SMTP_CA_CACHE_DIR "
        "to a directory of its own. SMTP_CA_CACHE_LOCK_WAIT sets how many seconds it waits.",
    ]


def test_ipv6_address_with_port(bin_check: BinCheck, root_file: Path) -> None:
    port = free_port()
    result = bin_check(f"[::1]:{port}", "--ca-file", str(root_file), "--timeout", "2")
    assert result.returncode == 1
    # Refused, or no IPv6 on this machine: either way the address was read as [::1] and port.
    assert f"[::1]:{port} (STARTTLS)" in result.output


def test_missing_ca_file_is_named(bin_check: BinCheck, tmp_path: Path) -> None:
    result = bin_check("localhost:25", "--ca-file", str(tmp_path / "nope.pem"))
    assert result.returncode == 1
    assert "is not a readable file" in result.stderr


def test_a_ca_file_without_certificates_is_named(bin_check: BinCheck, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    result = bin_check(f"127.0.0.1:{free_port()}", "--ca-file", str(empty))
    assert result.returncode == 1
    assert f"OpenSSL cannot load the bundle {empty}" in result.stderr


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("smtp.sendgrid.net", ("smtp.sendgrid.net", 25)),
        ("smtp.sendgrid.net:587", ("smtp.sendgrid.net", 587)),
        ("127.0.0.1:465", ("127.0.0.1", 465)),
        ("[2001:db8::25]:587", ("2001:db8::25", 587)),
        ("[::1]", ("::1", 25)),
        ("::1", ("::1", 25)),  # more than one colon and no brackets: all of it is the host
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["host:", "[::1]:", "[::1]x", "[::1]:99999", "h:٣"])
def test_parse_address_refuses(address: str) -> None:
    with pytest.raises(BuildError):
        parse_address(address)


def test_bin_check_is_shipped_executable() -> None:
    assert os.access(REPO / "bin" / "check", os.X_OK)
    assert shutil.which("bash")


def test_offline_with_the_default_bundle_it_checks_against_public_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, intermediate: Issued
) -> None:
    """The default bundle's host cannot be reached and nothing was cached (a new user,
    offline): bin/check goes on with certifi's roots, says what they lack, and checks.
    In-process, so that the default URL can point at a closed local port."""

    from smtp_ca import cli, pipeline
    from smtp_ca.net import http as fetch
    from smtp_ca.output import Log, Redactor
    from smtp_ca.settings import ca as ca_settings

    closed = LocalServer()
    url = f"https://127.0.0.1:{closed.port}/repository/gd_bundle-g2-g1.crt"
    closed.stop()
    monkeypatch.setattr(ca_settings, "DEFAULT_BUNDLE_URL", url)
    monkeypatch.setattr(fetch, "BACKOFF_FACTOR", 0.01)  # the retries' waits, made short
    monkeypatch.setattr(
        pipeline, "ensure_dependencies", lambda *a, **k: Path(x509.__file__).parents[2]
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("SMTP_CA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for name in list(os.environ):
        if name.startswith(("SMTP_CA_BUNDLE", "SMTP_CA_PUBLIC", "SMTP_CA_FETCH")):
            monkeypatch.delenv(name)
    leaf = issue("localhost", intermediate, hostnames=("localhost",))
    out, err = LogBuffer(), LogBuffer()
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf, intermediate)) as server:
        status = cli.main(["check", f"localhost:{server.port}"], Log(Redactor(), out, err))

    assert status == 1  # its private root is in no public store: the check says so
    assert "Warning: Could not download the default CA bundle" in err.getvalue()
    assert "Go Daddy Secure Certificate Authority - G2" in err.getvalue()
    assert f"-----> Checking localhost:{server.port} (STARTTLS) against that bundle" in (
        out.getvalue()
    )
    assert "Merged with" in out.getvalue()
    assert "Traceback" not in out.getvalue() + err.getvalue()
