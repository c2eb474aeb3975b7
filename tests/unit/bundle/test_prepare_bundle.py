"""The bundle stage, against real files and a real local HTTPS server (loopback only)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import certifi
import pytest
import trustme

from smtp_ca.bundle import merge as bundle_merge
from smtp_ca.bundle.certificates import load_pem_certificates, split_pem, summarize, to_pem
from smtp_ca.bundle.prepare import PreparedBundle, prepare_bundle
from smtp_ca.bundle.settings import MAX_BUNDLE_BYTES, BundleSettings
from smtp_ca.bundle.source import Source
from smtp_ca.bundle.store import FORMAT_VERSION, Merged
from smtp_ca.errors import BuildError
from smtp_ca.net import http as fetch
from smtp_ca.net.http import display_url
from smtp_ca.output import Log
from smtp_ca.settings.ca import DEFAULT_BUNDLE_SHA256
from support.certs import Issued, make_cert, make_intermediate, make_leaf, make_root, pem_bundle
from support.godaddy import GODADDY_BUNDLE
from support.http_server import LocalServer, Reply
from support.paths import SOURCE
from support.wrapped_log import LogBuffer

GODADDY_PATH = GODADDY_BUNDLE
GODADDY = GODADDY_PATH.read_bytes()
GODADDY_NAMES = [
    "Go Daddy Secure Certificate Authority - G2",
    "Go Daddy Root Certificate Authority - G2",
    "Go Daddy Class 2 Certification Authority",
]
# What a build keeps of it with certifi's roots: the intermediate. The Class 2 root, which
# Mozilla removed in 2025, is left out with its cross-signature of the G2 root: the bundle
# carries them only to reach the G2 root, and certifi holds that root itself.
GODADDY_KEPT = GODADDY_NAMES[:1]
CLASS_2_LEFT_OUT = (
    "Left out OU=Go Daddy Class 2 Certification Authority,O=The Go Daddy Group\\, Inc.,C=US "
    "(not after 2034-06-29), a self-signed root that Mozilla's list (certifi "
    f"{certifi.__version__}) does not hold, and its cross-signature of Go Daddy Root "
    "Certificate Authority - G2: the bundle carries them only to reach that root, which "
    "certifi holds itself. The app trusts no root that Mozilla's list does not."
)
CERTIFI_PEM = Path(certifi.where()).read_bytes()
CERTIFI_FINGERPRINTS = [summarize(c).sha256 for c in load_pem_certificates(CERTIFI_PEM)]
CERTIFI_FINGERPRINTS_VALID = [
    summary.sha256
    for summary in map(summarize, load_pem_certificates(CERTIFI_PEM))
    if not summary.is_expired(datetime.now(timezone.utc))
]
SRC = SOURCE


class Captured:
    """A Log writing to strings, for asserting on what the user would read."""

    def __init__(self) -> None:
        self.out = LogBuffer()
        self.err = LogBuffer()
        self.log = Log(out=self.out, err=self.err)

    @property
    def stdout(self) -> str:
        return self.out.getvalue()

    @property
    def stderr(self) -> str:
        return self.err.getvalue()


def settings_for(
    url: str,
    sha256: str | None = None,
    *,
    public_roots: bool = True,
    timeout: float = 5.0,
    retries: int = 0,
) -> BundleSettings:
    return BundleSettings(
        url=url, sha256=sha256, public_roots=public_roots, timeout=timeout, retries=retries
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprints(pem: bytes) -> list[str]:
    return [sha256(block.der) for block in split_pem(pem)]


def run(settings: BundleSettings, cache: Path, **kwargs: object) -> tuple[PreparedBundle, Captured]:
    captured = Captured()
    return prepare_bundle(settings, cache, captured.log, **kwargs), captured  # type: ignore[arg-type]


def fails(settings: BundleSettings, cache: Path) -> tuple[BuildError, Captured]:
    captured = Captured()
    with pytest.raises(BuildError) as caught:
        prepare_bundle(settings, cache, captured.log)
    return caught.value, captured


def file_url(path: Path) -> str:
    return path.resolve().as_uri()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "BACKOFF_FACTOR", 0.01)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "smtp-ca"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """A local HTTPS server whose CA the build trusts through REQUESTS_CA_BUNDLE."""
    ca_file = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with LocalServer(tls=ca) as server:
        yield server


@pytest.fixture
def http() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    root = make_root("Bundle Test Root")
    return {"root": root, "intermediate": make_intermediate(root, "Bundle Test Intermediate")}


# --- the real Go Daddy bundle ---------------------------------------------------------------


def test_godaddy_bundle_from_a_file_url_with_its_pin(tmp_path: Path, cache: Path) -> None:
    directory = tmp_path / "my certs"  # a space, so the file:// URL is percent-encoded
    directory.mkdir()
    shutil.copy(GODADDY_PATH, directory / "gd bundle.crt")
    url = file_url(directory / "gd bundle.crt")
    assert "%20" in url

    prepared, captured = run(settings_for(url, DEFAULT_BUNDLE_SHA256), cache)

    assert [s.name for s in prepared.source_certificates] == GODADDY_KEPT
    assert prepared.source_sha256 == DEFAULT_BUNDLE_SHA256
    assert not prepared.used_cached_copy and not prepared.left_out
    lines = [line.strip() for line in captured.stdout.splitlines()]
    read = lines.index(
        f"Read {directory / 'gd bundle.crt'} (1 of 3 certificates kept, SHA-256 0aa4…d858 "
        "matches the pin)"
    )
    assert lines[read + 1] == CLASS_2_LEFT_OUT  # a note, not a warning: nothing to fix
    assert captured.stderr == ""
    # The Go Daddy intermediate comes first, then certifi's roots; the Class 2 root
    # (self-signed, SHA-1, to 2034) and its cross-signature are nowhere: certifi's own G2 root
    # anchors G2 chains.
    source_fps = fingerprints(GODADDY)
    written = fingerprints(prepared.pem)
    assert written[:1] == source_fps[:1]
    assert not set(source_fps[1:]) & set(written)
    assert prepared.outside_mozilla == (source_fps[0],)  # an intermediate: never an anchor
    assert prepared.public_root_count == len(CERTIFI_FINGERPRINTS)


def test_output_loads_into_openssl(tmp_path: Path, cache: Path) -> None:
    prepared, _ = run(settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256), cache)
    path = tmp_path / "ca-bundle.pem"
    path.write_bytes(prepared.pem)

    context = ssl.create_default_context(cafile=str(path))

    assert context.cert_store_stats()["x509_ca"] == prepared.certificate_count
    assert prepared.certificate_count == 1 + prepared.public_root_count


def test_a_warm_build_from_a_file_source_writes_nothing_to_the_cache(cache: Path) -> None:
    settings = settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256)
    run(settings, cache)
    before = {path: path.stat().st_mtime_ns for path in cache.rglob("*") if path.is_file()}
    prepared, _ = run(settings, cache)
    after = {path: path.stat().st_mtime_ns for path in cache.rglob("*") if path.is_file()}
    assert after == before
    assert prepared.certificate_count == 1 + prepared.public_root_count


def test_output_header_comments_name_each_certificate(cache: Path) -> None:
    prepared, _ = run(settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256), cache)
    text = prepared.pem.decode()

    first_block = text.index("-----BEGIN CERTIFICATE-----")
    header = text[:first_block]
    assert "# Go Daddy Secure Certificate Authority - G2\n" in header
    assert "# Subject: CN=Go Daddy Secure Certificate Authority - G2," in header
    assert "# Valid: 2011-05-03 to 2031-05-03\n" in header
    assert f"# SHA-256: {fingerprints(GODADDY)[0]}\n" in header
    assert DEFAULT_BUNDLE_SHA256 in header
    assert text.count("# Subject: ") == prepared.certificate_count


# --- https ----------------------------------------------------------------------------------


def test_https_source_trusted_through_requests_ca_bundle(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY)

    prepared, captured = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    assert [s.name for s in prepared.source_certificates] == GODADDY_KEPT
    assert (
        f"Fetched {https.url('/gd.crt')} (1 of 3 certificates kept, SHA-256 0aa4…d858 matches "
        "the pin)" in (captured.stdout)
    )
    (request,) = https.requests_for("/gd.crt")
    assert request.headers["user-agent"].startswith("heroku-buildpack-smtp-ca")
    assert "if-none-match" not in request.headers


def test_https_source_is_verified(
    https: LocalServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the test CA in the trust store, the download must fail, not go unverified."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    https.serve("/gd.crt", GODADDY)

    error, _ = fails(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    assert "could not be verified" in error.message
    assert "SMTP_CA_BUNDLE_URL" in error.message
    assert error.hint is not None and "REQUESTS_CA_BUNDLE" in error.hint
    assert "a config var does not reach it" in error.hint


def test_redirect_to_https_is_followed(https: LocalServer, cache: Path) -> None:
    https.redirect("/old", "/new")
    https.serve("/new", GODADDY)

    prepared, _ = run(settings_for(https.url("/old"), DEFAULT_BUNDLE_SHA256), cache)

    assert len(prepared.source_certificates) == 1
    assert https.count("/new") == 1


def test_redirect_to_http_is_refused(https: LocalServer, http: LocalServer, cache: Path) -> None:
    http.serve("/gd.crt", GODADDY)
    https.redirect("/gd.crt", http.url("/gd.crt"))

    error, _ = fails(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    assert "redirects to http://127.0.0.1" in error.message
    assert "not https://" in error.message
    assert http.count("/gd.crt") == 0


def test_redirect_loop_stops(https: LocalServer, cache: Path) -> None:
    https.redirect("/a", "/b")
    https.redirect("/b", "/a")

    error, _ = fails(settings_for(https.url("/a")), cache)

    assert "more than 3 redirects" in error.message
    assert https.count("/a") + https.count("/b") == fetch.MAX_REDIRECTS + 1


def test_http_url_is_refused_without_a_request(http: LocalServer, cache: Path) -> None:
    http.serve("/gd.crt", GODADDY)

    error, _ = fails(settings_for(http.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    assert "SMTP_CA_BUNDLE_URL" in error.message and "http://" in error.message
    assert http.count("/gd.crt") == 0


def test_other_schemes_are_refused(cache: Path) -> None:
    error, _ = fails(settings_for("ftp://example.test/gd.crt"), cache)
    assert "must be an https:// URL, a file:// path, or none" in error.message


# --- the pin ---------------------------------------------------------------------------------


def test_pin_mismatch_shows_both_hashes_and_what_to_do(https: LocalServer, cache: Path) -> None:
    changed = GODADDY + b"\n"
    https.serve("/gd.crt", changed)

    error, _ = fails(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    assert DEFAULT_BUNDLE_SHA256 in error.message
    assert sha256(changed) in error.message
    assert "SMTP_CA_BUNDLE_SHA256" in error.message and "SMTP_CA_BUNDLE_URL" in error.message
    assert error.hint is not None
    assert f"heroku config:set SMTP_CA_BUNDLE_SHA256={sha256(changed)}" in error.hint
    assert "on purpose" in error.hint
    # A file that failed its pin is not kept for later builds.
    assert not (cache / "bundle" / "source.pem").exists()


def test_unpinned_bundle_warns_with_the_hash_to_pin(tmp_path: Path, cache: Path) -> None:
    prepared, captured = run(settings_for(file_url(GODADDY_PATH), None), cache)

    assert len(prepared.source_certificates) == 1
    assert "SMTP_CA_BUNDLE_SHA256 is not set" in captured.stderr
    assert f"heroku config:set SMTP_CA_BUNDLE_SHA256={DEFAULT_BUNDLE_SHA256}" in captured.stderr
    assert "not pinned" in captured.stdout


# --- what is in the file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\n  \r\n", "is empty"),
        (b"<!DOCTYPE html>\n<html><title>404 Not Found</title></html>", "looks like an HTML page"),
        (b"hello, this is not a bundle\n", "is not PEM"),
        (split_pem(GODADDY)[0].der, "binary (DER)"),
    ],
    ids=["empty", "blank", "html", "text", "der"],
)
def test_files_that_are_not_pem_are_refused(
    tmp_path: Path, cache: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bundle.pem"
    path.write_bytes(content)

    error, _ = fails(settings_for(file_url(path)), cache)

    assert expected in error.message
    assert "SMTP_CA_BUNDLE_URL" in error.message
    assert error.hint


def test_html_error_page_over_https(https: LocalServer, cache: Path) -> None:
    https.serve(
        "/gd.crt", b"<html><body>Please log in</body></html>", headers={"Content-Type": "text/html"}
    )
    error, _ = fails(settings_for(https.url("/gd.crt")), cache)
    assert "looks like an HTML page" in error.message


def test_truncated_pem_names_the_block(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "bundle.pem"
    path.write_bytes(GODADDY[: len(GODADDY) - 200])

    error, _ = fails(settings_for(file_url(path)), cache)

    assert "block 3 (line 56)" in error.message
    assert "truncated" in error.message


def test_base64_garbage_names_the_block(tmp_path: Path, cache: Path) -> None:
    lines = GODADDY.split(b"\n")
    lines[30] = b"@@@@ not base64 @@@@"
    path = tmp_path / "bundle.pem"
    path.write_bytes(b"\n".join(lines))

    error, _ = fails(settings_for(file_url(path)), cache)

    assert "block 2 (line 29)" in error.message and "base64" in error.message


def test_der_garbage_names_the_block(tmp_path: Path, cache: Path, pki: dict[str, Issued]) -> None:
    garbage = b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"
    path = tmp_path / "bundle.pem"
    path.write_bytes(pki["root"].pem + garbage)

    error, _ = fails(settings_for(file_url(path)), cache)

    assert "block 2 (line" in error.message and "not a valid X.509 certificate" in error.message


def test_bundle_without_a_ca_certificate_is_refused(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    leaf = make_leaf(pki["intermediate"], "smtp.example.test")
    path = tmp_path / "leaf.pem"
    path.write_bytes(leaf.pem)

    error, _ = fails(settings_for(file_url(path)), cache)

    assert "has no CA certificate" in error.message
    assert "CN=smtp.example.test" in error.message
    assert "not a CA certificate" in error.message
    assert error.hint is not None and "not the server's own certificate" in error.hint


def test_keys_only_is_refused(tmp_path: Path, cache: Path, pki: dict[str, Issued]) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pki["root"].key_pem)
    error, _ = fails(settings_for(file_url(path)), cache)
    assert "has no certificate, only PRIVATE KEY" in error.message


def test_non_ca_and_expired_certificates_are_left_out_with_warnings(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    root, intermediate = pki["root"], pki["intermediate"]
    leaf = make_leaf(intermediate, "smtp.example.test")
    no_constraints = make_cert("No Constraints CA", issuer=root, ca=None)
    expired = make_intermediate(root, "Expired Intermediate", expired=True)
    v1_root = make_cert("Old V1 Root", issuer=None, ca=None)
    path = tmp_path / "bundle.pem"
    path.write_bytes(pem_bundle(intermediate, leaf, no_constraints, expired, v1_root, root))

    prepared, captured = run(settings_for(file_url(path)), cache)

    kept = [s.sha256 for s in prepared.source_certificates]
    assert kept == [intermediate.sha256, v1_root.sha256, root.sha256]
    written = fingerprints(prepared.pem)
    for left_out in (leaf, no_constraints, expired):
        assert left_out.sha256 not in written
    assert {item.certificate.sha256 for item in prepared.left_out} == {
        leaf.sha256,
        no_constraints.sha256,
        expired.sha256,
    }
    leaf_date = f"{leaf.cert.not_valid_after_utc:%Y-%m-%d}"
    assert (
        f"Left out CN=smtp.example.test,O=smtp-ca tests (not after {leaf_date})" in captured.stderr
    )
    assert "CA:FALSE" in captured.stderr
    assert (
        "Left out CN=No Constraints CA" in captured.stderr
        and "no basicConstraints" in captured.stderr
    )
    expired_date = f"{expired.cert.not_valid_after_utc:%Y-%m-%d}"
    expected = f"CN=Expired Intermediate,O=smtp-ca tests (not after {expired_date}): it has expired"
    assert expected in captured.stderr
    assert "3 of 6 certificates kept" in captured.stdout


def test_expiring_soon_is_kept_with_a_warning(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    soon = make_intermediate(
        pki["root"], "Soon Expiring CA", expires_in=timedelta(days=30, hours=1)
    )
    later = make_intermediate(pki["root"], "Later CA", expires_in=timedelta(days=200))
    path = tmp_path / "bundle.pem"
    path.write_bytes(pem_bundle(soon, later, pki["root"]))

    prepared, captured = run(settings_for(file_url(path)), cache)

    assert soon.sha256 in [s.sha256 for s in prepared.source_certificates]
    assert "CN=Soon Expiring CA,O=smtp-ca tests" in captured.stderr
    assert "expires in 30 days" in captured.stderr
    assert "Later CA" not in captured.stderr


def test_messy_pem_is_accepted_and_written_clean(tmp_path: Path, cache: Path) -> None:
    messy = b"Go Daddy bundle, downloaded by hand\r\n\r\n"
    messy += GODADDY.replace(b"\n", b"\r\n").replace(
        b"-----END CERTIFICATE-----\r\n", b"-----END CERTIFICATE-----   \r\n# next one:\r\n"
    )
    messy += b"\r\n\t  \r\n"
    path = tmp_path / "messy.pem"
    path.write_bytes(messy)

    prepared, _ = run(settings_for(file_url(path), public_roots=False), cache)

    assert [s.name for s in prepared.source_certificates] == GODADDY_NAMES
    assert b"\r" not in prepared.pem
    assert fingerprints(prepared.pem) == fingerprints(GODADDY)


def test_private_key_in_bundle_is_left_out_with_a_warning(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    path = tmp_path / "bundle.pem"
    path.write_bytes(pki["root"].pem + pki["root"].key_pem)

    prepared, captured = run(settings_for(file_url(path)), cache)

    assert b"PRIVATE KEY" not in prepared.pem
    assert (
        "block 2 (line" in captured.stderr and "PRIVATE KEY, not a certificate" in captured.stderr
    )
    assert "leaked" in captured.stderr


def test_duplicate_in_source_is_written_once(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "twice.pem"
    path.write_bytes(GODADDY + GODADDY)

    prepared, captured = run(settings_for(file_url(path), public_roots=False), cache)

    assert fingerprints(prepared.pem) == fingerprints(GODADDY)
    assert "second copy" in captured.stdout


# --- size cap and timeouts ------------------------------------------------------------------


def big_pem() -> bytes:
    return GODADDY + b"#" * (MAX_BUNDLE_BYTES + 1)


def test_size_cap_with_honest_content_length(https: LocalServer, cache: Path) -> None:
    https.serve("/big.pem", big_pem())
    error, _ = fails(settings_for(https.url("/big.pem")), cache)
    assert "larger than 2 MiB" in error.message


def test_size_cap_is_enforced_while_streaming(https: LocalServer, cache: Path) -> None:
    # No Content-Length: the body ends when the server closes, so only counting stops it.
    https.serve("/big.pem", big_pem(), content_length=False)
    error, _ = fails(settings_for(https.url("/big.pem")), cache)
    assert "larger than 2 MiB" in error.message


def test_size_cap_for_files(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "big.pem"
    path.write_bytes(big_pem())
    error, _ = fails(settings_for(file_url(path)), cache)
    assert "larger than 2 MiB" in error.message


def test_missing_file_is_named(tmp_path: Path, cache: Path) -> None:
    error, _ = fails(settings_for(file_url(tmp_path / "nope.pem")), cache)
    assert f"names {tmp_path / 'nope.pem'}, which does not exist" in error.message


def test_slow_drip_body_hits_the_deadline(https: LocalServer, cache: Path) -> None:
    https.script("/slow.pem", Reply(body=GODADDY, action="drip", delay=0.05, chunk_size=64))
    error, _ = fails(settings_for(https.url("/slow.pem"), timeout=0.2), cache)
    assert "no whole answer within the 0.2 s the download was given" in error.message


def test_connection_refused_is_a_clear_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = LocalServer()  # bound, then closed: nothing listens on that port any more
    port = server.port
    server.stop()

    error, _ = fails(settings_for(f"https://127.0.0.1:{port}/gd.crt", retries=1), cache)

    assert "Could not download the CA bundle" in error.message
    assert "Connection refused" in error.message


# --- retries and the cached copy ------------------------------------------------------------


def test_5xx_is_retried(https: LocalServer, cache: Path) -> None:
    https.script("/gd.crt", Reply(status=503), Reply(status=500), Reply(body=GODADDY))

    prepared, captured = run(
        settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256, retries=3), cache
    )

    assert len(prepared.source_certificates) == 1
    assert https.count("/gd.crt") == 3
    assert captured.stderr == ""


def test_500_after_retries_falls_back_to_the_cache(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY)
    first, _ = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    https.serve("/gd.crt", b"oops", status=500)

    second, captured = run(
        settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256, retries=2), cache
    )

    assert https.count("/gd.crt") == 1 + 3  # the first build, then one try and two retries
    assert second.pem == first.pem
    assert second.used_cached_copy
    assert second.fallback_reason == "the server answered HTTP 500 Internal Server Error"
    assert "Warning: Could not download the CA bundle from" in captured.stderr
    assert "HTTP 500" in captured.stderr
    assert "Using the copy an earlier build downloaded on" in captured.stderr
    assert "Used the cached copy of" in captured.stdout and "matches the pin" in captured.stdout


def test_500_without_a_cache_fails(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", b"oops", status=502)
    error, _ = fails(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256, retries=1), cache)
    assert "HTTP 502" in error.message and "SMTP_CA_BUNDLE_URL" in error.message


def test_timeout_falls_back_to_the_cache(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY)
    run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    https.script("/gd.crt", Reply(action="hang", delay=5))

    prepared, captured = run(
        settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256, timeout=0.3), cache
    )

    assert prepared.used_cached_copy
    assert "no answer within the 0.3 s the download was given" in captured.stderr


def test_closed_connection_is_retried_then_falls_back(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY)
    run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    https.script("/gd.crt", Reply(action="close"))

    prepared, captured = run(
        settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256, retries=1), cache
    )

    assert prepared.used_cached_copy
    assert https.count("/gd.crt") == 1 + 2
    assert "Could not download" in captured.stderr


def test_cached_copy_must_still_match_the_pin(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY)
    run(settings_for(https.url("/gd.crt"), None), cache)
    https.serve("/gd.crt", b"", status=503)
    other_pin = "ab" * 32

    error, _ = fails(settings_for(https.url("/gd.crt"), other_pin), cache)

    assert "HTTP 503" in error.message
    assert "does not match SMTP_CA_BUNDLE_SHA256" in error.message


def test_cache_is_per_url(https: LocalServer, cache: Path) -> None:
    https.serve("/a.crt", GODADDY)
    run(settings_for(https.url("/a.crt")), cache)
    https.serve("/b.crt", b"", status=500)

    error, _ = fails(settings_for(https.url("/b.crt")), cache)

    assert "HTTP 500" in error.message


def test_304_reuses_the_cached_copy(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY, etag='"v1"')
    first, _ = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    second, captured = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    requests = https.requests_for("/gd.crt")
    assert "if-none-match" not in requests[0].headers
    assert requests[1].headers["if-none-match"] == '"v1"'
    assert second.pem == first.pem
    assert second.used_cached_copy and second.fallback_reason is None
    assert "has not changed since the last build" in captured.stdout
    assert captured.stderr == ""


def test_304_on_last_modified(https: LocalServer, cache: Path) -> None:
    stamp = "Tue, 01 Apr 2025 10:00:00 GMT"
    https.serve("/gd.crt", GODADDY, last_modified=stamp)
    run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    second, _ = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)

    assert https.requests_for("/gd.crt")[1].headers["if-modified-since"] == stamp
    assert second.used_cached_copy


def test_changed_file_replaces_the_cache(
    https: LocalServer, cache: Path, pki: dict[str, Issued]
) -> None:
    https.serve("/b.pem", GODADDY, etag='"v1"')
    run(settings_for(https.url("/b.pem")), cache)
    new = pem_bundle(pki["intermediate"], pki["root"])
    https.serve("/b.pem", new, etag='"v2"')

    second, _ = run(settings_for(https.url("/b.pem")), cache)
    https.serve("/b.pem", b"", status=500)
    third, _ = run(settings_for(https.url("/b.pem")), cache)

    assert not second.used_cached_copy
    assert second.source_sha256 == sha256(new)
    assert third.used_cached_copy and third.source_sha256 == sha256(new)
    assert third.pem == second.pem


def test_no_conditional_request_when_the_pin_changed(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY, etag='"v1"')
    run(settings_for(https.url("/gd.crt")), cache)

    fails(settings_for(https.url("/gd.crt"), "cd" * 32), cache)

    assert "if-none-match" not in https.requests_for("/gd.crt")[1].headers


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("source.pem", lambda b: b.replace(b"MII", b"MIJ", 1)),
        ("source.pem", lambda b: b[:100]),
        ("source.json", lambda b: b[: len(b) // 2]),
        ("source.json", lambda b: b"[1, 2, 3]"),
        ("source.json", lambda b: json.dumps({**json.loads(b), "sha256": 7}).encode()),
    ],
    ids=["flipped", "truncated-data", "truncated-json", "not-an-object", "bad-field"],
)
def test_damaged_source_cache_is_thrown_away(
    https: LocalServer, cache: Path, name: str, damage
) -> None:
    https.serve("/gd.crt", GODADDY, etag='"v1"')
    run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    path = cache / "bundle" / name
    path.write_bytes(damage(path.read_bytes()))

    # The server is down: a damaged copy must not stand in.
    https.serve("/gd.crt", b"", status=500)
    error, captured = fails(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    assert "Threw away the cached download of the CA bundle" in captured.stdout
    assert "HTTP 500" in error.message

    # With the server back, it is fetched in full (no If-None-Match: there is no copy to reuse).
    https.serve("/gd.crt", GODADDY, etag='"v1"')
    prepared, _ = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    assert "if-none-match" not in https.requests_for("/gd.crt")[-1].headers
    assert not prepared.used_cached_copy
    # ...and cached again, sound this time.
    third, _ = run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    assert third.used_cached_copy


@pytest.mark.parametrize("name", ["merged.pem", "merged.json"])
def test_damaged_merged_cache_is_rebuilt(cache: Path, name: str) -> None:
    settings = settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256)
    first, _ = run(settings, cache)
    path = cache / "bundle" / name
    path.write_bytes(path.read_bytes()[:-300] + b"garbage")

    second, captured = run(settings, cache)

    assert "Threw away the cached CA bundle" in captured.stdout
    assert second.pem == first.pem
    assert second.source_certificates == first.source_certificates


# --- merge, determinism, warm builds --------------------------------------------------------


def test_two_cold_builds_are_byte_identical(tmp_path: Path) -> None:
    settings = settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256)
    one, _ = run(settings, tmp_path / "one")
    two, _ = run(settings, tmp_path / "two")
    warm, _ = run(settings, tmp_path / "two")
    assert one.pem == two.pem == warm.pem
    assert one.source_certificates == warm.source_certificates


def test_merged_output_has_certifi_roots_and_no_duplicates(tmp_path: Path, cache: Path) -> None:
    # The source carries one of certifi's roots (the sixth) after Go Daddy's three.
    shared_root = to_pem(load_pem_certificates(CERTIFI_PEM)[5])
    path = tmp_path / "with-public-root.pem"
    path.write_bytes(GODADDY + shared_root)

    prepared, captured = run(settings_for(file_url(path)), cache)

    written = fingerprints(prepared.pem)
    assert len(written) == len(set(written))
    assert set(CERTIFI_FINGERPRINTS) <= set(written)
    assert written[:2] == [*fingerprints(GODADDY)[:1], CERTIFI_FINGERPRINTS[5]]
    # Public roots follow in certifi's own order.
    assert written[2:] == [fp for fp in CERTIFI_FINGERPRINTS if fp != CERTIFI_FINGERPRINTS[5]]
    assert prepared.public_root_count == len(CERTIFI_FINGERPRINTS) - 1
    assert prepared.certificate_count == len(written)
    assert (
        f"Merged with {len(CERTIFI_FINGERPRINTS) - 1} public roots from certifi" in captured.stdout
    )
    assert "(1 already in the bundle)" in captured.stdout
    assert f": {len(written)} certificates" in captured.stdout


def test_public_roots_off_gives_only_the_source(cache: Path) -> None:
    prepared, captured = run(
        settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256, public_roots=False), cache
    )
    assert fingerprints(prepared.pem) == fingerprints(GODADDY)
    assert prepared.public_root_count == 0 and prepared.certifi_version is None
    assert "SMTP_CA_PUBLIC_ROOTS=false" in captured.stdout
    # Without certifi's G2 root in the bundle, the Class 2 root is what anchors GoDaddy's
    # chains: it stays, and the log says that Mozilla's list does not hold it.
    assert (
        "       OU=Go Daddy Class 2 Certification Authority,O=The Go Daddy Group\\, Inc.,C=US "
        "(not after 2034-06-29) is a self-signed root that Mozilla's list (certifi "
        f"{certifi.__version__}) does not hold: the app trusts it because the bundle at "
        "SMTP_CA_BUNDLE_URL holds it.\n"
    ) in captured.stdout


# --- trust never silently wider than Mozilla's list ------------------------------------------


def test_each_self_signed_root_certifi_does_not_hold_is_named(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    other = make_root("Bundle Test Other Root")
    path = tmp_path / "private.pem"
    path.write_bytes(pem_bundle(pki["intermediate"], pki["root"], other))

    prepared, captured = run(settings_for(file_url(path)), cache)

    named = [line for line in captured.stdout.splitlines() if "Mozilla's list" in line]
    assert named == [
        f"       {summary.describe()} is a self-signed root that Mozilla's list (certifi "
        f"{certifi.__version__}) does not hold: the app trusts it because the bundle at "
        "SMTP_CA_BUNDLE_URL holds it."
        for summary in prepared.source_certificates[1:]
    ]
    assert [s.name for s in prepared.source_certificates] == [
        "Bundle Test Intermediate",
        "Bundle Test Root",
        "Bundle Test Other Root",
    ]
    # What the check needs to say that a chain is anchored outside Mozilla's list.
    assert prepared.outside_mozilla == tuple(s.sha256 for s in prepared.source_certificates)
    warm, again = run(settings_for(file_url(path)), cache)  # from the merged cache
    assert warm.pem == prepared.pem
    assert warm.outside_mozilla == prepared.outside_mozilla
    assert [line for line in again.stdout.splitlines() if "Mozilla's list" in line] == named


def test_certs_roots_are_the_users_own_choice_and_kept_as_they_are(
    tmp_path: Path, cache: Path
) -> None:
    relay = make_root("Relay Root")
    settings = BundleSettings(
        None, None, public_roots=True, timeout=5.0, certs=pem_bundle(relay).decode()
    )
    prepared, captured = run(settings, cache)
    assert relay.sha256 in fingerprints(prepared.pem)
    assert "Added 1 certificate from SMTP_CA_CERTS:\n         Relay Root (not after " in (
        captured.stdout
    )
    assert "Mozilla" not in captured.stdout


def _cross_signed_pki() -> dict[str, Issued]:
    """GoDaddy's shape: an old root, a new root (in "certifi") cross-signed by the old one
    under the same name and key, and an intermediate the new root signed."""
    old = make_root("Cross Old Root")
    new = make_root("Cross New Root")
    cross = make_cert("Cross New Root", issuer=old, key=new.key, ca=True)
    return {"old": old, "new": new, "cross": cross, "issuing": make_intermediate(new, "Cross CA")}


def _merged(source: bytes, certifi_roots: bytes, *, merged: bool = True) -> Merged:
    now = datetime.now(timezone.utc)
    content = bundle_merge.keep_source_certificates(
        Source(source, hashlib.sha256(source).hexdigest(), "network", "https://ca.example/b.pem"),
        now,
    )
    roots = bundle_merge.PublicRoots(certifi_roots, hashlib.sha256(certifi_roots).hexdigest(), "1")
    if merged:
        return bundle_merge.merge(content, None, roots, now)
    return bundle_merge.merge(content, None, None, now, reference=roots)


def test_a_root_carried_only_to_reach_what_certifi_anchors_is_left_out_with_a_note() -> None:
    pki = _cross_signed_pki()
    merged = _merged(pem_bundle(pki["issuing"], pki["cross"], pki["old"]), pem_bundle(pki["new"]))
    written = fingerprints(merged.pem)
    # The intermediate stays; the old root goes, and its cross-signature of the new root with
    # it; certifi's own new root anchors the chain.
    assert written == [pki["issuing"].sha256, pki["new"].sha256]
    assert merged.source is not None
    (note,) = merged.source.notices
    assert note.startswith(f"Left out {pki['old'].subject} (not after ")
    assert note.endswith(
        "), a self-signed root that Mozilla's list (certifi 1) does not hold, and its "
        "cross-signature of Cross New Root: the bundle carries them only to reach that root, "
        "which certifi holds itself. The app trusts no root that Mozilla's list does not."
    )


def test_a_root_that_also_reaches_what_certifi_does_not_anchor_stays_and_is_named() -> None:
    pki = _cross_signed_pki()
    own = make_intermediate(pki["old"], "Cross Old Root's Own CA")
    source = pem_bundle(pki["issuing"], pki["cross"], own, pki["old"])
    merged = _merged(source, pem_bundle(pki["new"]))
    assert pki["old"].sha256 in fingerprints(merged.pem)
    assert merged.source is not None
    (note,) = merged.source.notices
    assert "is a self-signed root that Mozilla's list (certifi 1) does not hold" in note


def test_without_certifis_roots_in_the_bundle_the_old_root_stays() -> None:
    pki = _cross_signed_pki()
    source = pem_bundle(pki["issuing"], pki["cross"], pki["old"])
    merged = _merged(source, pem_bundle(pki["new"]), merged=False)
    assert fingerprints(merged.pem) == fingerprints(source)
    assert merged.source is not None
    (note,) = merged.source.notices
    assert "is a self-signed root that Mozilla's list (certifi 1) does not hold" in note


def test_public_roots_flag_is_part_of_the_cache_key(cache: Path) -> None:
    url = file_url(GODADDY_PATH)
    with_roots, _ = run(settings_for(url, DEFAULT_BUNDLE_SHA256, public_roots=True), cache)
    without, _ = run(settings_for(url, DEFAULT_BUNDLE_SHA256, public_roots=False), cache)
    again, _ = run(settings_for(url, DEFAULT_BUNDLE_SHA256, public_roots=True), cache)
    assert len(fingerprints(without.pem)) == 3
    assert again.pem == with_roots.pem != without.pem


def test_warm_build_repeats_the_warnings(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    leaf = make_leaf(pki["intermediate"], "smtp.example.test")
    soon = make_intermediate(
        pki["root"], "Soon Expiring CA", expires_in=timedelta(days=20, hours=1)
    )
    path = tmp_path / "bundle.pem"
    path.write_bytes(pem_bundle(soon, leaf, pki["root"]))

    cold, cold_log = run(settings_for(file_url(path)), cache)
    warm, warm_log = run(settings_for(file_url(path)), cache)

    assert warm.pem == cold.pem and warm.left_out == cold.left_out
    assert warm_log.stderr == cold_log.stderr
    assert "Left out CN=smtp.example.test" in warm_log.stderr
    assert "expires in 20 days" in warm_log.stderr


def test_cached_output_is_made_again_once_a_certificate_expires(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    short = make_intermediate(pki["root"], "Short Lived CA", expires_in=timedelta(days=100))
    path = tmp_path / "bundle.pem"
    path.write_bytes(pem_bundle(short, pki["root"]))
    now = datetime.now(timezone.utc)

    first, _ = run(settings_for(file_url(path), public_roots=False), cache, now=now)
    later, captured = run(
        settings_for(file_url(path), public_roots=False), cache, now=now + timedelta(days=120)
    )

    assert short.sha256 in fingerprints(first.pem)
    assert short.sha256 not in fingerprints(later.pem)
    assert "Left out CN=Short Lived CA" in captured.stderr and "it has expired" in captured.stderr


def test_warm_build_does_not_load_cryptography_or_requests(tmp_path: Path) -> None:
    """A warm build from the caches must cost little more than starting Python."""
    script = textwrap.dedent(
        f"""
        import io, sys
        from pathlib import Path
        from smtp_ca.bundle.settings import BundleSettings
        from smtp_ca.bundle.prepare import prepare_bundle
        from smtp_ca.settings.ca import DEFAULT_BUNDLE_SHA256
        from smtp_ca.output import Log
        settings = BundleSettings({file_url(GODADDY_PATH)!r}, DEFAULT_BUNDLE_SHA256, True, 5.0)
        cache = Path({str(tmp_path / "cache")!r})
        prepared = prepare_bundle(settings, cache, Log(out=io.StringIO()))
        print(len(prepared.pem), "cryptography" in sys.modules, "requests" in sys.modules)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    cold = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    warm = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )

    size = cold.stdout.split()[0]
    assert cold.stdout.split() == [size, "True", "False"]
    assert warm.stdout.split() == [size, "False", "False"]


# --- secrets ---------------------------------------------------------------------------------


def test_url_credentials_never_reach_the_log(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", b"", status=500)
    url = https.url("/gd.crt").replace("https://", "https://deploy:hunter2-secret@") + (
        "?token=abcdef0123456789&raw=1"
    )

    error, captured = fails(settings_for(url, retries=0), cache)

    shown = (
        captured.log.redact(f"{error.message}\n{error.hint}") + captured.stdout + captured.stderr
    )
    assert "hunter2-secret" not in shown
    assert "abcdef0123456789" not in shown
    assert "HTTP 500" in shown
    assert https.requests_for("/gd.crt")[0].headers["authorization"].startswith("Basic ")


def test_connection_errors_are_redacted(cache: Path) -> None:
    server = LocalServer()
    port = server.port
    server.stop()
    url = f"https://user:topsecretpass@127.0.0.1:{port}/x?sig=0123456789abcdef"
    error, captured = fails(settings_for(url), cache)
    shown = captured.log.redact(error.message) + captured.stdout + captured.stderr
    assert "topsecretpass" not in shown and "0123456789abcdef" not in shown
    assert "[REDACTED]@127.0.0.1" in error.message


def test_display_url_hides_userinfo_and_query() -> None:
    assert display_url("https://u:p@host.test:8443/a/b.pem?x=1") == (
        "https://[REDACTED]@host.test:8443/a/b.pem?[REDACTED]"
    )
    assert display_url("https://host.test/b.pem") == "https://host.test/b.pem"


# --- the cache files ------------------------------------------------------------------------


def test_cache_writes_are_atomic_and_leave_no_temporaries(https: LocalServer, cache: Path) -> None:
    https.serve("/gd.crt", GODADDY, etag='"v1"')
    run(settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256), cache)
    names = sorted(p.name for p in (cache / "bundle").iterdir())
    assert names == ["merged.json", "merged.pem", "source.json", "source.pem"]
    meta = json.loads((cache / "bundle" / "source.json").read_bytes())
    assert meta["sha256"] == DEFAULT_BUNDLE_SHA256 and meta["etag"] == '"v1"'
    assert "127.0.0.1" not in json.dumps(meta)  # only a hash of the URL is kept


def test_unwritable_cache_does_not_fail_the_build(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")

    prepared, captured = run(settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256), blocker)

    assert len(prepared.source_certificates) == 1
    assert "Could not update the bundle cache" in captured.stdout


def test_temporaries_of_a_killed_write_are_removed_by_the_next(cache: Path) -> None:
    settings = settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256)
    directory = cache / "bundle"
    directory.mkdir(parents=True)
    (directory / ".merged.pem.abc123.tmp").write_bytes(b"half of a bundle")
    (directory / ".merged.json.def456.tmp").write_bytes(b'{"half":')

    run(settings, cache)

    assert sorted(p.name for p in directory.iterdir()) == [
        "merged.json",
        "merged.pem",
        "source.json",
        "source.pem",
    ]


def test_an_entry_of_another_format_is_replaced_without_a_word(cache: Path) -> None:
    """Not damaged, only older: no "Threw away" line, and it is rebuilt."""
    settings = settings_for(file_url(GODADDY_PATH), DEFAULT_BUNDLE_SHA256)
    first, _ = run(settings, cache)
    meta_path = cache / "bundle" / "merged.json"
    meta = json.loads(meta_path.read_bytes())
    meta_path.write_text(json.dumps({**meta, "format": 1, "pem_sha256": meta["sha256"]}))

    second, captured = run(settings, cache)

    assert "Threw away" not in captured.stdout
    assert second.pem == first.pem
    assert json.loads(meta_path.read_bytes())["format"] == FORMAT_VERSION


# --- a source that is gone, the default source unreachable, retries in our own words --------


def test_a_gone_file_source_falls_back_to_the_cached_copy(tmp_path: Path, cache: Path) -> None:
    bundle_file = tmp_path / "provider.pem"
    bundle_file.write_bytes(GODADDY)
    settings = settings_for(file_url(bundle_file), DEFAULT_BUNDLE_SHA256)
    first, _ = run(settings, cache)
    bundle_file.unlink()

    second, captured = run(settings, cache)

    assert second.pem == first.pem
    assert second.used_cached_copy
    assert f"Warning: SMTP_CA_BUNDLE_URL names {bundle_file}, which does not exist." in (
        captured.stderr
    )
    assert "Using the copy an earlier build read on" in captured.stderr
    assert "matches the pin" in captured.stdout


def test_a_gone_file_source_without_a_cached_copy_fails(tmp_path: Path, cache: Path) -> None:
    error, _ = fails(settings_for(file_url(tmp_path / "never.pem")), cache)
    assert f"SMTP_CA_BUNDLE_URL names {tmp_path / 'never.pem'}, which does not exist." == (
        error.message
    )


def test_a_gone_file_sources_cached_copy_must_match_the_pin(tmp_path: Path, cache: Path) -> None:
    bundle_file = tmp_path / "provider.pem"
    bundle_file.write_bytes(GODADDY)
    run(settings_for(file_url(bundle_file)), cache)
    bundle_file.unlink()

    error, _ = fails(settings_for(file_url(bundle_file), "ab" * 32), cache)

    assert "which does not exist" in error.message
    assert "does not match SMTP_CA_BUNDLE_SHA256, so it cannot stand in" in error.message


def _unreachable_url(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = LocalServer()  # bound, then closed: nothing listens on that port any more
    port = server.port
    server.stop()
    return f"https://127.0.0.1:{port}/repository/gd_bundle-g2-g1.crt"


def test_default_source_unreachable_on_a_first_build_goes_on_with_public_roots(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = BundleSettings(
        _unreachable_url(monkeypatch),
        DEFAULT_BUNDLE_SHA256,
        public_roots=True,
        timeout=5.0,
        retries=0,
        may_go_without=True,
    )

    prepared, captured = run(settings, cache)

    assert fingerprints(prepared.pem) == CERTIFI_FINGERPRINTS_VALID
    assert prepared.source_certificates == () and prepared.source_sha256 is None
    assert prepared.missing_source_reason and "Connection refused" in prepared.missing_source_reason
    assert "Warning: Could not download the default CA bundle" in captured.stderr
    assert "no earlier build cached it" in captured.stderr
    assert "Go Daddy Secure Certificate Authority - G2" in captured.stderr
    assert "The SMTP handshake check proves whether it matters" in captured.stderr
    assert "# From: SMTP_CA_BUNDLE_URL" not in prepared.pem.decode()


def test_default_source_without_public_roots_has_nothing_to_go_on_with() -> None:
    from smtp_ca.settings.load import load_settings

    settings = load_settings({"SMTP_CA_PUBLIC_ROOTS": "false"}, "heroku-24")
    assert not BundleSettings.from_settings(settings).may_go_without
    assert BundleSettings.from_settings(load_settings({}, "heroku-24")).may_go_without
    custom = load_settings({"SMTP_CA_BUNDLE_URL": "https://ca.example/b.pem"}, "heroku-24")
    assert not BundleSettings.from_settings(custom).may_go_without


def test_retries_are_one_line_each_in_the_builds_words(
    https: LocalServer, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    https.script("/gd.crt", Reply(status=503), Reply(action="close"), Reply(body=GODADDY))

    prepared, captured = run(
        settings_for(https.url("/gd.crt"), DEFAULT_BUNDLE_SHA256, retries=3), cache
    )

    assert len(prepared.source_certificates) == 1
    retries = [line for line in captured.stdout.splitlines() if "Attempt" in line]
    display = https.url("/gd.crt")
    assert retries == [
        f"       Attempt 1 of 4 to download {display} failed (the server answered HTTP 503); "
        "trying again in 0.01 s.",
        f"       Attempt 2 of 4 to download {display} failed "
        f"({retries[1].split('failed (')[1].split(');')[0]}); trying again in 0.02 s.",
    ]
    assert "Retrying" not in captured.stdout + captured.stderr
    assert not [record for record in caplog.records if record.name.startswith("urllib3")]


def test_the_whole_download_is_bounded_by_the_fetch_timeout(
    https: LocalServer, cache: Path
) -> None:
    """SMTP_CA_FETCH_TIMEOUT bounds every try, wait and redirect together. A server that
    hangs holds the first try for all that is left, and no retry is squeezed in after it."""
    https.script("/hang", Reply(action="hang", delay=10))
    https.redirect("/gd.crt", https.url("/hang"))
    started = time.monotonic()

    error, _ = fails(settings_for(https.url("/gd.crt"), timeout=1.0, retries=3), cache)

    assert time.monotonic() - started < 2.0
    assert "Could not download the CA bundle" in error.message
    assert error.hint is not None and "SMTP_CA_FETCH_TIMEOUT" in error.hint
    assert "after 1 redirect, no answer within the 1 s the download was given" in error.message
    assert https.count("/hang") == 1


# --- SMTP_CA_CERTS and SMTP_CA_BUNDLE_URL=none ------------------------------------------------


def certs_only(certs: bytes | str, *, public_roots: bool = False) -> BundleSettings:
    text = certs.decode() if isinstance(certs, bytes) else certs
    return BundleSettings(None, None, public_roots=public_roots, timeout=5.0, certs=text)


def test_certs_alone_with_no_download(cache: Path, pki: dict[str, Issued]) -> None:
    root, intermediate = pki["root"], pki["intermediate"]

    prepared, captured = run(certs_only(pem_bundle(intermediate, root)), cache)

    assert fingerprints(prepared.pem) == [intermediate.sha256, root.sha256]
    assert prepared.pem.decode().count("# From: SMTP_CA_CERTS\n") == 2
    assert "# 2 certificates from SMTP_CA_CERTS," in prepared.pem.decode()
    assert [s.sha256 for s in prepared.added_certificates] == [intermediate.sha256, root.sha256]
    assert prepared.source_certificates == () and prepared.source_sha256 is None
    assert prepared.certificate_count == 2
    assert "Downloaded no bundle (SMTP_CA_BUNDLE_URL=none)" in captured.stdout
    assert "Added 2 certificates from SMTP_CA_CERTS:" in captured.stdout
    assert (
        f"         Bundle Test Root (not after {root.cert.not_valid_after_utc:%Y-%m-%d})"
        in captured.stdout
    )
    assert "2 certificates in all" in captured.stdout
    assert captured.stderr == ""


def test_certs_are_added_between_the_source_and_the_public_roots(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    relay = make_root("Relay Root")
    path = tmp_path / "gd.crt"
    path.write_bytes(GODADDY)
    settings = BundleSettings(
        file_url(path),
        DEFAULT_BUNDLE_SHA256,
        public_roots=True,
        timeout=5.0,
        certs=pem_bundle(relay).decode(),
    )

    prepared, captured = run(settings, cache)

    written = fingerprints(prepared.pem)
    assert written[1] == relay.sha256  # after GoDaddy's intermediate, before certifi's
    assert len(written) == prepared.certificate_count == 2 + prepared.public_root_count
    assert "Added 1 certificate from SMTP_CA_CERTS:" in captured.stdout

    warm, again = run(settings, cache)  # from the merged cache: the same bundle, the same report
    assert warm.pem == prepared.pem
    assert warm.added_certificates == prepared.added_certificates
    assert "Added 1 certificate from SMTP_CA_CERTS:" in again.stdout


def test_certs_already_in_the_source_are_written_once(
    tmp_path: Path, cache: Path, pki: dict[str, Issued]
) -> None:
    root, intermediate = pki["root"], pki["intermediate"]
    path = tmp_path / "bundle.pem"
    path.write_bytes(pem_bundle(root))
    settings = BundleSettings(
        file_url(path),
        None,
        public_roots=False,
        timeout=5.0,
        certs=pem_bundle(root, intermediate, intermediate).decode(),
    )

    prepared, captured = run(settings, cache)

    assert fingerprints(prepared.pem) == [root.sha256, intermediate.sha256]
    assert "is in the bundle from SMTP_CA_BUNDLE_URL already" in captured.stdout
    assert "Left out a second copy of CN=Bundle Test Intermediate" in captured.stdout


@pytest.mark.parametrize(
    ("certs", "expected"),
    [
        ("not a certificate", "SMTP_CA_CERTS is not PEM: it has no -----BEGIN CERTIFICATE-----"),
        (
            "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----",
            "SMTP_CA_CERTS has no complete PEM block, and it is one line with \\n where its",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIB!!\n-----END CERTIFICATE-----\n",
            "SMTP_CA_CERTS: block 1 (line 1) is not valid base64",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
            "SMTP_CA_CERTS: block 1 (line 1) has -----BEGIN CERTIFICATE----- but no END line",
        ),
    ],
)
def test_certs_that_are_not_pem_certificates_fail_by_name(
    cache: Path, certs: str, expected: str
) -> None:
    error, _ = fails(certs_only(certs), cache)
    assert error.message.startswith(expected), error.message
    assert error.hint and 'heroku config:set SMTP_CA_CERTS="$(cat relay-ca.pem)"' in error.hint


def test_a_block_in_certs_that_is_not_a_certificate_fails_naming_it(
    cache: Path, pki: dict[str, Issued]
) -> None:
    root = pki["root"]
    error, _ = fails(certs_only(pem_bundle(root, root.key_pem)), cache)
    line = root.pem.count(b"\n") + 1
    assert error.message.startswith(
        f"SMTP_CA_CERTS: block 2 (line {line}) is a PRIVATE KEY, not a certificate."
    )
    assert "treat it as leaked" in error.message
    assert error.hint and error.hint.startswith("Remove that block.")
    assert "PRIVATE KEY-----\nMII" not in error.message + (error.hint or "")


def test_a_garbled_certificate_in_certs_fails_naming_its_block(
    cache: Path, pki: dict[str, Issued]
) -> None:
    garbled = b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
    error, _ = fails(certs_only(pem_bundle(pki["root"], garbled)), cache)
    assert error.message.startswith("SMTP_CA_CERTS: block 2 (line ")
    assert "is not a valid X.509 certificate" in error.message


def test_certs_that_are_no_ca_certificates_are_left_out_and_fail_when_nothing_is_left(
    cache: Path, pki: dict[str, Issued]
) -> None:
    leaf = make_leaf(pki["intermediate"], "relay.example.test")
    error, _ = fails(certs_only(pem_bundle(leaf)), cache)
    assert error.message.startswith("SMTP_CA_CERTS has no CA certificate that can be used:")
    assert "it is not a CA certificate" in error.message

    prepared, captured = run(certs_only(pem_bundle(leaf, pki["root"])), cache)
    assert fingerprints(prepared.pem) == [pki["root"].sha256]
    assert "Left out CN=relay.example.test" in captured.stderr
    assert "from SMTP_CA_CERTS: it is not a CA certificate" in captured.stderr


def test_an_expiring_cert_in_certs_is_named_with_what_to_do(cache: Path) -> None:
    soon = make_root("Relay Root Expiring", expires_in=timedelta(days=30))
    _, captured = run(certs_only(pem_bundle(soon)), cache)
    assert "CN=Relay Root Expiring" in captured.stderr
    assert "Put its successor in SMTP_CA_CERTS before then." in captured.stderr


def test_bundle_settings_with_no_input_fail_as_the_config_vars_would() -> None:
    # BundleSettings made without load_settings meet the same rule, in the same words.
    settings = BundleSettings(url=None, sha256=None, public_roots=False, timeout=5.0)
    with pytest.raises(BuildError) as caught:
        prepare_bundle(settings, Path("/nonexistent-cache"), Captured().log)
    assert caught.value.message == (
        "The CA bundle would be empty: SMTP_CA_BUNDLE_URL=none downloads nothing, "
        "SMTP_CA_PUBLIC_ROOTS=false adds no public roots, and SMTP_CA_CERTS is not set."
    )


def test_certifi_with_no_root_valid_now_and_nothing_else_is_named(cache: Path) -> None:
    settings = BundleSettings(url=None, sha256=None, public_roots=True, timeout=5.0)
    with pytest.raises(BuildError) as caught:
        run(settings, cache, now=datetime(2200, 1, 1, tzinfo=timezone.utc))
    assert caught.value.message == "certifi's roots hold no certificate that is valid now."
    assert caught.value.hint and "SMTP_CA_PUBLIC_ROOTS=false" in caught.value.hint
