"""What leaves the machine (issue 24): no credential goes with a URL taken from a certificate,
and a proxy the build cannot use is named as the cause, with the usual fallback.

* AIA caIssuers and OCSP URLs come from the certificate an SMTP server sends, which anyone on
  the path can write. With requests' defaults, ``~/.netrc`` (or ``$NETRC``) logged in to any
  host it names, over plain http://, and cookies a server set came back on the next hop.
  Here a loopback AIA server (which redirects once, setting a cookie) and a loopback OCSP
  responder record every header they get, from bin/compile and from bin/check, with a
  ``.netrc`` naming 127.0.0.1, localhost and a default login, and a proxy holding a
  password: no ``Authorization``, ``Cookie`` or ``Proxy-Authorization`` reaches them, no
  secret reaches the output, and a proxy in the environment is still used, getting its own
  credentials and nothing else.
* A SOCKS proxy (``socks5h://``) is refused in so many words, and the build and bin/check go
  on as for any download that failed; an HTTP proxy that refuses the connection is blamed,
  by its variable, instead of the bundle's server. Both within their bound, under 200 MB.

bin/compile runs as Heroku runs it (support.measured_build: a clean buildpack copy, the
session's warm dependency cache, a pip-less python3); bin/check as a user runs it, with a copy
of that cache as SMTP_CA_CACHE_DIR.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from support.certs import Issued, make_root
from support.connect_proxy import ConnectProxy
from support.http_server import LocalServer, Reply
from support.measured_build import Build, compile_measured
from support.ocsp_responder import OcspResponder
from support.offline_inputs import REPO
from support.pki import issue, server_context
from support.smtp_server import SMTPTestServer, free_port
from support.world import World
from support.wrapped_log import LoggedProcess

pytestmark = pytest.mark.e2e

NETRC_SECRETS = ("netrc-127-s3cret", "netrc-localhost-s3cret", "netrc-default-s3cret")
PROXY_SECRET = "proxy-pass-s3cret"
COOKIE_SECRET = "cookie-s3cret"
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
SECRETS = (*NETRC_SECRETS, PROXY_SECRET, COOKIE_SECRET)
CHECK_TIMEOUT = 10.0
BOUND = 2.0  # SMTP_CA_FETCH_TIMEOUT of the downloads a proxy stands in the way of
SLACK = 1.0
MAX_PEAK_MEMORY = 200 * 1024 * 1024
DEFAULT_BUNDLE = "https://certs.godaddy.com/repository/gd_bundle-g2-g1.crt"


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_root("smtp-ca Egress Root CA")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return issue("smtp-ca Egress Issuing CA", root, ca=True)


def write_netrc(path: Path) -> Path:
    """A .netrc as the Heroku CLI and git leave one: logins for the hosts the certificate's
    URLs name, and a default login for every other host."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"machine 127.0.0.1 login heroku-user password {NETRC_SECRETS[0]}\n"
        f"machine localhost login heroku-user password {NETRC_SECRETS[1]}\n"
        f"default login anyone password {NETRC_SECRETS[2]}\n"
    )
    path.chmod(0o600)
    return path


def serve_issuer(aia: LocalServer, intermediate: Issued) -> str:
    """The caIssuers URL: it redirects once, setting a cookie, to the issuer's DER."""
    aia.script(
        "/issuer.crt",
        Reply(
            status=302,
            headers={
                "Location": "/issuing-ca.crt",
                "Set-Cookie": f"session={COOKIE_SECRET}; Path=/",
            },
        ),
    )
    aia.serve("/issuing-ca.crt", intermediate.der)
    return aia.url("/issuer.crt")


def leaf_pointing_at(intermediate: Issued, aia_url: str, responder: OcspResponder) -> Issued:
    # The OCSP URL names localhost (a host name, not an address) and carries user info of
    # the certificate's own: neither may turn into an Authorization header.
    ocsp_url = responder.url.replace("127.0.0.1", "cert-user:cert-pass@localhost")
    return issue(
        "localhost", intermediate, hostnames=("localhost",), ca_issuers=aia_url, ocsp=ocsp_url
    )


def credential_headers(headers: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    return [
        {name: value for name, value in item.items() if name in CREDENTIAL_HEADERS}
        for item in headers
    ]


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, secret
    assert "Traceback" not in output


def run_bin_check(world: World, where: Path, *arguments: str, **extra_env: str) -> LoggedProcess:
    """bin/check as a user runs it, with the world's python3 and a copy of its warm cache; its
    output with the log's wrapped lines joined back (support.wrapped_log)."""
    cache = where / "check-cache"
    shutil.copytree(world.warm_cache / "smtp-ca", cache, symlinks=True)
    env = {
        **world.environment(where),
        "STACK": "heroku-24",
        "SMTP_CA_CACHE_DIR": str(cache),
        **extra_env,
    }
    completed = subprocess.run(
        [str(REPO / "bin" / "check"), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return LoggedProcess(completed)


# --- no credentials with a certificate's URLs ---------------------------------------------------


def test_bin_compile_fetches_a_certificates_urls_without_credentials(
    world: World, tmp_path: Path, root: Issued, intermediate: Issued
) -> None:
    write_netrc(tmp_path / "home" / ".netrc")  # the build's HOME (World.environment)
    with (
        LocalServer() as aia,
        OcspResponder(intermediate) as responder,
    ):
        leaf = leaf_pointing_at(intermediate, serve_issuer(aia, intermediate), responder)
        with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
            config = {
                **world.bundle_vars("/egress-root.crt", root.pem),
                "SMTP_SERVER": "localhost",
                "SMTP_PORT": str(server.port),
                "SMTP_OPENSSL_VERIFY_MODE": "peer",
                "SMTP_CA_CHECK": "strict",
                "SMTP_CA_CHECK_TIMEOUT": f"{CHECK_TIMEOUT:g}",
            }
            # A proxy with a password, which NO_PROXY keeps out of these loopback fetches:
            # its credentials must not go to the servers instead.
            proxy = f"http://proxy-user:{PROXY_SECRET}@127.0.0.1:{free_port()}"
            build = compile_measured(
                world,
                tmp_path,
                config,
                extra_env={
                    "HTTP_PROXY": proxy,
                    "HTTPS_PROXY": proxy,
                    "NO_PROXY": "127.0.0.1,localhost",
                },
            )
    assert build.returncode == 0, build.output
    assert (
        f"       localhost:{server.port} (STARTTLS): verified, TLSv1.3, once the bundle holds "
        "the intermediate certificate the server does not send."
    ) in build.output.splitlines()
    assert "Revocation: not revoked, says the OCSP responder at http://[REDACTED]@localhost:" in (
        build.output
    )
    assert [(item.method, item.path) for item in aia.requests] == [
        ("GET", "/issuer.crt"),
        ("GET", "/issuing-ca.crt"),
    ]
    assert len(responder.requests) == 1
    assert credential_headers(item.headers for item in aia.requests) == [{}, {}]
    assert credential_headers(item.headers for item in responder.requests) == [{}]
    # The bundle's host is one the user named, but not a login for it: no .netrc there either.
    bundle_requests = world.bundle_server.requests_for("/egress-root.crt")
    assert credential_headers(item.headers for item in bundle_requests) == [{}]
    assert_no_secret(build.output)
    assert 0 < build.peak_memory < MAX_PEAK_MEMORY


def test_bin_check_fetches_a_certificates_urls_through_the_proxy_without_credentials(
    world: World, tmp_path: Path, root: Issued, intermediate: Issued
) -> None:
    root_file = root.write(tmp_path / "root.pem")
    write_netrc(tmp_path / "home" / ".netrc")
    netrc = write_netrc(tmp_path / "elsewhere" / "netrc")  # $NETRC, which requests reads first
    with (
        LocalServer() as aia,
        OcspResponder(intermediate) as responder,
        ConnectProxy() as proxy,
    ):
        leaf = leaf_pointing_at(intermediate, serve_issuer(aia, intermediate), responder)
        with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
            proxy_url = proxy.url.replace("http://", f"http://proxy-user:{PROXY_SECRET}@")
            result = run_bin_check(
                world,
                tmp_path,
                f"localhost:{server.port}",
                "--ca-file",
                str(root_file),
                "--timeout",
                f"{CHECK_TIMEOUT:g}",
                NETRC=str(netrc),
                HTTP_PROXY=proxy_url,
                NO_PROXY="",
            )
    output = result.stdout + result.stderr
    # The intermediate was fetched (through the proxy) and the chain verified with it; a file
    # of the user's own gets no intermediate added, so bin/check says what to append.
    assert result.returncode == 1, output
    assert f" !     A client that trusts only {root_file} fails: it lacks the intermediate" in (
        result.stderr
    )
    assert "Revocation: not revoked, says the OCSP responder at " in output
    # The proxy was used for every one of the certificate's URLs, and got its own login.
    proxy_login = "Basic " + base64.b64encode(f"proxy-user:{PROXY_SECRET}".encode()).decode()
    assert [request.request_line.split(" ")[:2] for request in proxy.forwarded] == [
        ["GET", aia.url("/issuer.crt")],
        ["GET", aia.url("/issuing-ca.crt")],
        ["POST", responder.url.replace("127.0.0.1", "localhost")],
    ]
    assert (
        credential_headers(request.headers for request in proxy.forwarded)
        == [{"proxy-authorization": proxy_login}] * 3
    )
    assert credential_headers(item.headers for item in aia.requests) == [{}, {}]
    assert credential_headers(item.headers for item in responder.requests) == [{}]
    assert_no_secret(output)


# --- proxies the build cannot use ---------------------------------------------------------------


def test_a_socks_proxy_is_refused_in_words_and_the_build_goes_on(
    world: World, tmp_path: Path
) -> None:
    build = compile_measured(
        world,
        tmp_path,
        {"SMTP_CA_FETCH_TIMEOUT": f"{BOUND:g}"},  # the default bundle, which may be left out
        extra_env={"HTTPS_PROXY": f"socks5h://socks-user:{PROXY_SECRET}@127.0.0.1:1080"},
    )
    assert build.returncode == 0, build.output
    assert (
        f" !     Warning: Could not download the default CA bundle ({DEFAULT_BUNDLE}): "
        "HTTPS_PROXY names a SOCKS proxy (socks5h://127.0.0.1:1080), and SOCKS proxies are not "
        "supported: set HTTPS_PROXY to an HTTP proxy (http://HOST:PORT), or unset it; no "
        "earlier build cached it.\n"
    ) in build.stderr, build.output
    assert "Missing dependencies" not in build.output
    assert_no_secret(build.output)
    assert_bounded(build, "-----> Preparing the SMTP CA bundle")


def test_bin_check_falls_back_when_the_proxy_is_socks(
    world: World, tmp_path: Path, root: Issued
) -> None:
    leaf = issue("localhost", root, hostnames=("localhost",))
    with SMTPTestServer(mode="starttls", ssl_context=server_context(leaf)) as server:
        result = run_bin_check(
            world,
            tmp_path,
            f"localhost:{server.port}",
            "--timeout",
            f"{CHECK_TIMEOUT:g}",
            ALL_PROXY="socks5://127.0.0.1:1080",
            NO_PROXY="",
            SMTP_CA_CERTS=root.pem.decode(),
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (
        f" !     Warning: Could not download the default CA bundle ({DEFAULT_BUNDLE}): ALL_PROXY "
        "names a SOCKS proxy (socks5://127.0.0.1:1080), and SOCKS proxies are not supported: "
        "set ALL_PROXY to an HTTP proxy (http://HOST:PORT), or unset it; no earlier build "
        "cached it.\n"
    ) in result.stderr, output
    assert f"       localhost:{server.port} (STARTTLS): verified, " in result.stdout
    assert "Traceback" not in output


def test_a_proxy_that_refuses_the_connection_is_named_not_the_server(
    world: World, tmp_path: Path, root: Issued
) -> None:
    proxy_port = free_port()  # nothing listens there
    config = {
        **world.bundle_vars("/egress-proxied.crt", root.pem),
        "SMTP_CA_FETCH_TIMEOUT": f"{BOUND:g}",
    }
    build = compile_measured(
        world,
        tmp_path,
        config,
        extra_env={"HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}", "NO_PROXY": ""},
    )
    url = config["SMTP_CA_BUNDLE_URL"]
    assert build.returncode == 1, build.output
    assert build.stderr.splitlines()[-2:] == [
        f" !     Could not download the CA bundle from SMTP_CA_BUNDLE_URL ({url}): the proxy "
        f"at 127.0.0.1:{proxy_port} (HTTPS_PROXY) refused the connection.",
        " !     Check HTTPS_PROXY: the build reaches the network through the proxy it names. "
        "Unset it if this machine needs no proxy.",
    ], build.output
    assert (
        f"       Attempt 1 of 4 to download {url} failed (the proxy at 127.0.0.1:{proxy_port} "
        "(HTTPS_PROXY) refused the connection); trying again in 0.5 s."
    ) in build.output.splitlines()
    assert "server was down" not in build.output
    assert world.bundle_server.count("/egress-proxied.crt") == 0
    assert build.app_unchanged
    assert_bounded(build, "-----> Preparing the SMTP CA bundle")


def assert_bounded(build: Build, step: str) -> None:
    held = build.ended - build.arrived(step)
    assert held <= BOUND + SLACK, f"{held:.2f} s after {step!r}:\n{build.output}"
    assert 0 < build.peak_memory < MAX_PEAK_MEMORY, build.peak_memory
