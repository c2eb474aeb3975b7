"""Properties that must hold for any input, checked with hypothesis.

* The PEM parser never raises anything but its documented ``CertificateError`` on arbitrary
  bytes, and gives back exactly the certificates it was given, however the file is dressed.
* The bundle stage on an arbitrary file either prepares a bundle or raises ``BuildError``.
* Config parsing (``load_settings``, ``read_config_dir``) either returns valid settings or raises
  a ``BuildError`` that names the variable; it never crashes and never quotes a long value.
* Redaction never leaves a secret in the text, whatever surrounds it (the rule in
  ``smtp_ca.output``: long values anywhere, short ones as words of their own).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import tempfile
from pathlib import Path

import certifi
import pytest
import trustme
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smtp_ca.bundle.certificates import (
    CertificateError,
    PemBlock,
    load_certificate,
    load_pem_certificates,
    split_pem,
    summarize,
    to_pem,
)
from smtp_ca.bundle.prepare import prepare_bundle
from smtp_ca.bundle.settings import BundleSettings
from smtp_ca.errors import BuildError
from smtp_ca.output import MIN_REDACTED_ANYWHERE, REDACTED, Log, Redactor
from smtp_ca.settings.load import CHECK_MODES, MAX_CHECK_TIMEOUT, load_settings
from smtp_ca.settings.values import VARIABLES, read_config_dir
from support.certs import duplicate_extension_der, make_intermediate, make_leaf, make_root
from support.godaddy import GODADDY_BUNDLE

GODADDY = GODADDY_BUNDLE
CERTIFI_SAMPLE = load_pem_certificates(Path(certifi.where()).read_bytes())[:5]
_ROOT = make_root("Property Root CA", key_type="rsa")
REAL_CERTIFICATES = [
    *load_pem_certificates(GODADDY.read_bytes()),
    *CERTIFI_SAMPLE,
    _ROOT.cert,
    make_intermediate(_ROOT, "Property Issuing CA").cert,
    make_leaf(_ROOT, "smtp.example.test", "127.0.0.1").cert,
    *load_pem_certificates(trustme.CA().cert_pem.bytes()),  # made by another library
]
REAL_DER = [to_pem(cert) for cert in REAL_CERTIFICATES]

FAST = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the PEM parser -------------------------------------------------------------------------


def _pem_like() -> st.SearchStrategy[bytes]:
    """Bytes that look enough like PEM to get past the first line of the parser."""
    labels = st.sampled_from(
        [b"CERTIFICATE", b"X509 CERTIFICATE", b"PRIVATE KEY", b"CERT IFICATE", b"", b"certificate"]
    )
    body = st.one_of(
        st.binary(max_size=300).map(base64.b64encode),
        st.binary(max_size=200),
        st.sampled_from([b"Proc-Type: 4,ENCRYPTED", b"", b"====", b"MIIB"]),
    )
    block = st.tuples(labels, body, labels).map(
        lambda t: b"-----BEGIN " + t[0] + b"-----\n" + t[1] + b"\n-----END " + t[2] + b"-----\n"
    )
    junk = st.binary(max_size=40)
    return st.lists(st.one_of(block, junk), max_size=5).map(b"".join)


@FAST
@given(st.one_of(st.binary(max_size=2000), _pem_like()))
@example(b"-----END CERTIFICATE-----")
@example(b"-----BEGIN CERTIFICATE-----\n\xff\xfe\n-----END CERTIFICATE-----")
@example(b"\xef\xbb\xbf-----BEGIN CERTIFICATE-----\r\nMIIB\r-----END CERTIFICATE-----")
def test_split_pem_raises_only_certificate_error(data: bytes) -> None:
    try:
        blocks = split_pem(data)
    except CertificateError:
        return
    for number, block in enumerate(blocks, start=1):
        assert isinstance(block, PemBlock)
        assert block.index == number and block.line >= 1
        assert block.der


def _mutated_der() -> st.SearchStrategy[bytes]:
    """A real certificate's DER with a few bytes changed, cut short or extended."""

    def mutate(der: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
        data = bytearray(der)
        for position, value in edits:
            data[position % len(data)] = value
        return bytes(data[: max(1, len(data) - cut)])

    ders = st.sampled_from([_der(cert) for cert in REAL_CERTIFICATES])
    edits = st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=4)
    return st.builds(mutate, ders, edits, st.integers(0, 40))


def _der(cert: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)  # type: ignore[attr-defined,no-any-return]


@FAST
@given(st.one_of(st.binary(min_size=1, max_size=600), _mutated_der()))
@example(duplicate_extension_der())
def test_loading_a_block_raises_only_certificate_error(der: bytes) -> None:
    """Whatever loads can also be summarized and written, which the bundle stage does next."""
    block = PemBlock(1, 1, "CERTIFICATE", der)
    try:
        cert = load_certificate(block)
    except CertificateError as error:
        assert "block 1 (line 1)" in str(error)
        return
    summary = summarize(cert)
    assert summary.sha256 == hashlib.sha256(der).hexdigest() or summary.sha256
    assert split_pem(to_pem(cert))[0].der


@st.composite
def _dressed_bundle(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Real certificates as a file people actually have: comments, CRLF, a BOM, blank lines,
    keys between them; and the DER of the certificates in it, in order."""
    chosen = draw(st.lists(st.sampled_from(REAL_DER), min_size=1, max_size=4))
    parts: list[bytes] = []
    if draw(st.booleans()):
        parts.append(b"\xef\xbb\xbf")
    for pem in chosen:
        parts.append(draw(st.sampled_from([b"", b"# comment\n", b"\n\n", b"Subject: x\n"])))
        parts.append(pem)
    text = b"".join(parts)
    line_end = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    text = text.replace(b"\n", line_end)
    if draw(st.booleans()):
        text = text.replace(b"-----BEGIN", b"  -----BEGIN").replace(b"-----\n", b"-----  \n")
    return text, [split_pem(pem)[0].der for pem in chosen]


@FAST
@given(_dressed_bundle())
def test_real_certificates_round_trip(dressed: tuple[bytes, list[bytes]]) -> None:
    text, ders = dressed
    blocks = split_pem(text)
    assert [block.der for block in blocks] == ders
    for block in blocks:
        cert = load_certificate(block)
        assert split_pem(to_pem(cert))[0].der == block.der


@SLOW
@given(st.one_of(st.binary(max_size=3000), _pem_like(), _dressed_bundle().map(lambda d: d[0])))
def test_the_bundle_stage_on_any_file_prepares_a_bundle_or_says_why(data: bytes) -> None:
    directory = Path(tempfile.mkdtemp())
    try:
        source = directory / "bundle.pem"
        source.write_bytes(data)
        log = Log(out=io.StringIO(), err=io.StringIO())
        try:
            prepared = prepare_bundle(
                BundleSettings(source.as_uri(), None, public_roots=False, timeout=1.0),
                directory / "cache",
                log,
            )
        except BuildError as error:
            assert "SMTP_CA_BUNDLE_URL" in error.message
            return
        assert b"-----BEGIN CERTIFICATE-----" in prepared.pem
        assert len(split_pem(prepared.pem)) == len(prepared.source_certificates)
    finally:
        shutil.rmtree(directory)


# --- config parsing -------------------------------------------------------------------------

_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "1",
            "587",
            "65535",
            "65536",
            "true",
            "TRUE",
            "false",
            "yes",
            "warn",
            "strict",
            "off",
            "peer",
            "none",
            "auto",
            "never",
            "nan",
            "inf",
            "1e1",
            "120",
            "120.5",
            "https://",
            "https://[::1",
            "file:///x.pem",
            "http://x",
            "https://ca.test/b.pem",
            "sha256:" + "a" * 64,
            "A" * 64,
            "\u0665\u0668\u0667",
            "1_0",
            "$HOME/x",
        ]
    ),
)
_VARIABLES = st.dictionaries(st.sampled_from(VARIABLES), _TEXT, max_size=8)


@FAST
@given(_VARIABLES)
def test_load_settings_returns_valid_settings_or_names_the_variable(
    variables: dict[str, str],
) -> None:
    try:
        result = load_settings(variables, "heroku-24")
    except BuildError as error:
        named = [name for name in variables if name in error.message]
        assert named, error.message
        assert error.hint
        for value in variables.values():
            if len(value) > 40:
                assert value not in error.message, "long values are described, not quoted"
        return
    assert 1 <= result.smtp_port <= 65535
    assert 0 < result.check_timeout <= MAX_CHECK_TIMEOUT
    assert result.check_mode in CHECK_MODES
    assert result.bundle_url is None or result.bundle_url.startswith(("https://", "file:"))
    assert result.bundle_sha256 is None or re.fullmatch("[0-9a-f]{64}", result.bundle_sha256)


@SLOW
@given(st.sampled_from(VARIABLES), st.binary(max_size=200))
def test_read_config_dir_returns_text_or_names_the_variable(name: str, data: bytes) -> None:
    directory = Path(tempfile.mkdtemp())
    try:
        (directory / name).write_bytes(data)
        try:
            variables = read_config_dir(directory)
        except BuildError as error:
            assert name in error.message
            return
        assert variables[name] == data.decode().removesuffix("\n").removesuffix("\r")
    finally:
        shutil.rmtree(directory)


# --- redaction ------------------------------------------------------------------------------


def _unmarked(text: str) -> str:
    """The redacted text with each marker made a character no secret here contains."""
    return text.replace(REDACTED, "\0")


_SECRET_CHARACTERS = st.characters(blacklist_characters="\0", blacklist_categories=["Cs"])
_LONG_SECRET = st.text(_SECRET_CHARACTERS, min_size=MIN_REDACTED_ANYWHERE, max_size=30)
_AROUND = st.text(_SECRET_CHARACTERS, max_size=30)


@FAST
@given(st.lists(_LONG_SECRET, min_size=1, max_size=3), st.lists(_AROUND, min_size=1, max_size=5))
@example(["[REDACTED]"], ["x", "y"])
@example(["xxxxxxxxab", "abcdefghij"], ["", ""])
def test_long_secrets_never_survive(secrets: list[str], around: list[str]) -> None:
    text = secrets[0].join(around) + "".join(secrets)
    redacted = Redactor(secrets)(text)
    for secret in secrets:
        assert secret not in _unmarked(redacted)


@FAST
@given(
    st.text(st.characters(whitelist_categories=["L", "N"]), min_size=1, max_size=7),
    st.lists(st.text(" .,:;=@'\"()[]/\n-", max_size=3), min_size=2, max_size=6),
)
def test_short_secrets_never_survive_as_words(secret: str, separators: list[str]) -> None:
    """A short secret between anything that is not a letter, digit or underscore."""
    text = secret.join(separators)
    redacted = Redactor([secret])(text)
    words = re.findall(r"\w+", _unmarked(redacted))
    assert secret not in words


@FAST
@given(_LONG_SECRET, _AROUND)
def test_secrets_are_redacted_in_the_forms_python_prints_them(secret: str, around: str) -> None:
    redactor = Redactor([secret])
    for shown in (repr(secret), repr(secret.encode("utf-8", "surrogatepass"))):
        redacted = redactor(f"{around}{shown}{around}")
        assert secret not in _unmarked(redacted)
        assert REDACTED in redacted


@FAST
@given(
    st.from_regex(
        r"[a-z]{2,8}://[A-Za-z0-9._~-]{1,12}:[A-Za-z0-9._~!$&'()*+,;=-]{1,20}@h\.t/p",
        fullmatch=True,
    )
)
def test_url_credentials_never_survive(url: str) -> None:
    credentials = url.split("://", 1)[1].rsplit("@", 1)[0]
    assert credentials not in Redactor()(f"error fetching {url}: refused")


def test_the_log_redacts_every_line_it_writes() -> None:
    out, err = io.StringIO(), io.StringIO()
    log = Log(Redactor(["hunter2-password"]), out=out, err=err)
    for write in (log.step, log.info, log.warn, log.error):
        write("a\nhunter2-password\nb")
    log.warn("first", "then hunter2-password")  # the further lines of a warning or an error
    log.error("first", "then hunter2-password")
    assert "hunter2-password" not in out.getvalue() + err.getvalue()
    assert err.getvalue().count(" !     then [REDACTED]\n") == 2


@pytest.mark.parametrize(
    ("secret", "text", "expected"),
    [
        ("apikey", "user apikey rejected", "user [REDACTED] rejected"),
        ("apikey", "SMTP_LOGIN=apikey.", "SMTP_LOGIN=[REDACTED]."),
        ("apikey", "apikeys are listed", "apikeys are listed"),
        ("smtp", "Wrote config/initializers/smtp_ca.rb", "Wrote config/initializers/smtp_ca.rb"),
        ("--", "-----> Step --", "-----> Step --"),
        ("hunter2-password", "x\\x00hunter2-passwordy", "x\\x00[REDACTED]y"),
    ],
)
def test_the_documented_rule(secret: str, text: str, expected: str) -> None:
    assert Redactor([secret])(text) == expected
