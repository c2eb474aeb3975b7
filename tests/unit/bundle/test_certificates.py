"""The X.509 helpers: PEM splitting, loading, classification, summaries."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_ca.bundle.certificates import (
    CertificateError,
    CertificateSummary,
    PemBlock,
    basic_constraints_ca,
    guess_format,
    is_ca_or_v1_root,
    load_certificate,
    load_pem_certificates,
    presumed_self_signed,
    split_pem,
    summarize,
    to_pem,
    verify_signature,
)
from smtp_ca.untrusted import escaped
from support.certs import make_cert, make_intermediate, make_leaf, make_root, pem_bundle
from support.godaddy import GODADDY_BUNDLE

GODADDY = GODADDY_BUNDLE


@pytest.fixture(scope="module")
def root():  # one key pair for the module: EC keys are cheap, but not free
    return make_root("Helper Test Root")


def godaddy() -> bytes:
    return GODADDY.read_bytes()


# --- the real Go Daddy bundle ---------------------------------------------------------------


def test_godaddy_bundle_summaries() -> None:
    summaries = [summarize(cert) for cert in load_pem_certificates(godaddy())]

    assert [s.name for s in summaries] == [
        "Go Daddy Secure Certificate Authority - G2",
        "Go Daddy Root Certificate Authority - G2",
        "Go Daddy Class 2 Certification Authority",
    ]
    assert all(s.is_ca for s in summaries)
    # The Class 2 root signs itself with SHA-1, which verify_directly_issued_by refuses: it must
    # still be recognised as self-signed, and the cross-signed G2 root must not be.
    assert [s.self_signed for s in summaries] == [False, False, True]
    assert summaries[2].not_after == datetime(2034, 6, 29, 17, 6, 20, tzinfo=timezone.utc)
    assert summaries[0].not_after.date().isoformat() == "2031-05-03"
    assert summaries[1].issuer == summaries[2].subject
    assert summaries[0].subject.startswith("CN=Go Daddy Secure Certificate Authority - G2,")


def test_fingerprints_are_sha256_of_der() -> None:
    data = godaddy()
    for block in split_pem(data):
        summary = summarize(load_certificate(block))
        assert summary.sha256 == hashlib.sha256(block.der).hexdigest()


def test_loading_godaddy_prints_no_deprecation_warning(recwarn: pytest.WarningsRecorder) -> None:
    # The Class 2 root has serial number 0; cryptography warns about it, and a warning on
    # stderr in a build log reads like a problem.
    load_pem_certificates(godaddy())
    assert not [w for w in recwarn if "serial number" in str(w.message)]


# --- splitting PEM --------------------------------------------------------------------------


def test_split_accepts_crlf_comments_bom_and_trailing_whitespace() -> None:
    clean = split_pem(godaddy())
    messy = b"\xef\xbb\xbf# a comment line\r\nSubject: something\r\n\r\n"
    for block in clean:
        pem = base64.encodebytes(block.der).decode().replace("\n", "\r\n")
        messy += f"-----BEGIN CERTIFICATE-----  \r\n{pem}-----END CERTIFICATE-----\t\r\n".encode()
        messy += b"text between blocks\r\n\r\n"
    messy += b"   \n\n"

    assert [b.der for b in split_pem(messy)] == [b.der for b in clean]


def test_split_numbers_blocks_and_lines() -> None:
    blocks = split_pem(b"# header\n\n" + godaddy())
    assert [(b.index, b.line) for b in blocks][:2] == [(1, 3), (2, 31)]
    assert blocks[1].where == "block 2 (line 31)"


def test_split_refuses_begin_without_end() -> None:
    data = godaddy()
    truncated = data[: data.rindex(b"-----END")]
    with pytest.raises(CertificateError, match=r"block 3 \(line \d+\).*no END line.*truncated"):
        split_pem(truncated)


def test_split_refuses_a_begin_inside_a_block() -> None:
    data = godaddy()
    first_end = data.index(b"-----END CERTIFICATE-----\n")
    broken = data[:first_end] + data[first_end + len(b"-----END CERTIFICATE-----\n") :]
    with pytest.raises(CertificateError, match=r"block 1 \(line 1\).*no END line before"):
        split_pem(broken)


def test_split_refuses_end_without_begin() -> None:
    with pytest.raises(CertificateError, match="line 2 has -----END CERTIFICATE----- without"):
        split_pem(b"junk\n-----END CERTIFICATE-----\n")


def test_split_refuses_mismatched_labels() -> None:
    with pytest.raises(CertificateError, match="begins as CERTIFICATE but ends as PRIVATE KEY"):
        split_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_split_refuses_bad_base64_naming_the_block() -> None:
    lines = godaddy().split(b"\n")
    second_begin = [i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN")][1]
    lines[second_begin + 3] = b"this is %%% not base64"
    data = b"\n".join(lines)
    with pytest.raises(CertificateError, match=r"block 2 .*not valid base64"):
        split_pem(data)


def test_split_refuses_empty_block_and_encrypted_headers() -> None:
    with pytest.raises(CertificateError, match=r"block 1 .* is empty"):
        split_pem(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    encrypted = (
        b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n"
        b"-----END RSA PRIVATE KEY-----\n"
    )
    with pytest.raises(CertificateError, match="encrypted"):
        split_pem(encrypted)


def test_split_without_any_block_is_empty() -> None:
    assert split_pem(b"just some text\n") == []


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="-\r\n"),
            max_size=40,
        ),
        min_size=4,
        max_size=4,
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_split_ignores_any_text_between_blocks(texts: list[str], newline: bytes) -> None:
    clean = split_pem(godaddy())
    parts = []
    for text, block in zip(texts, [*clean, None], strict=True):
        parts.append(text.encode() + newline)
        if block is not None:
            body = base64.encodebytes(block.der).replace(b"\n", newline)
            parts.append(
                b"-----BEGIN CERTIFICATE-----"
                + newline
                + body
                + b"-----END CERTIFICATE-----"
                + newline
            )
    assert [b.der for b in split_pem(b"".join(parts))] == [b.der for b in clean]


# --- loading --------------------------------------------------------------------------------


def test_load_refuses_der_that_is_not_a_certificate() -> None:
    block = PemBlock(2, 30, "CERTIFICATE", b"\x30\x03\x02\x01\x00")
    with pytest.raises(CertificateError, match=r"block 2 \(line 30\) is not a valid X.509"):
        load_certificate(block)


def test_load_refuses_what_cryptography_raises_beyond_value_error() -> None:
    """DuplicateExtension and InvalidVersion are not ValueErrors; a name that does not parse
    only fails when it is read. Each must be a CertificateError naming the block, not an
    internal error later."""
    from support.certs import duplicate_extension_der

    godaddy_der = split_pem(godaddy())[0].der
    bad_version = godaddy_der[:12] + b"\x01" + godaddy_der[13:]  # v3 (2) becomes 1
    assert bad_version != godaddy_der
    for der in (duplicate_extension_der(), bad_version):
        with pytest.raises(CertificateError, match=r"block 1 \(line 1\) is not a valid X.509"):
            load_certificate(PemBlock(1, 1, "CERTIFICATE", der))


def test_load_refuses_other_block_types(root) -> None:
    (key_block,) = split_pem(root.key_pem)
    with pytest.raises(CertificateError, match="is a PRIVATE KEY, not a certificate"):
        load_certificate(key_block)


def test_load_pem_certificates_skips_keys(root) -> None:
    certs = load_pem_certificates(root.key_pem + root.pem)
    assert [fingerprint(c) for c in certs] == [root.sha256]


def fingerprint(cert) -> str:
    return summarize(cert).sha256


def test_to_pem_is_canonical() -> None:
    messy = godaddy().replace(b"\n", b"\r\n")
    (first, *_) = load_pem_certificates(messy)
    pem = to_pem(first)
    assert b"\r" not in pem
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n") and pem.endswith(
        b"-----END CERTIFICATE-----\n"
    )
    assert split_pem(pem)[0].der == split_pem(godaddy())[0].der


# --- classification -------------------------------------------------------------------------


def test_ca_flags(root) -> None:
    intermediate = make_intermediate(root)
    leaf = make_leaf(intermediate, "smtp.example.test")
    no_constraints_issued = make_cert("Issued Without Constraints", issuer=root, ca=None)
    no_constraints_root = make_cert("V1 Style Root", issuer=None, ca=None)

    assert is_ca_or_v1_root(root.cert) and is_ca_or_v1_root(intermediate.cert)
    assert not is_ca_or_v1_root(leaf.cert)
    assert basic_constraints_ca(leaf.cert) is False
    assert basic_constraints_ca(no_constraints_issued.cert) is None
    assert not is_ca_or_v1_root(no_constraints_issued.cert)
    # Old roots without extensions are CAs by being self-signed.
    assert is_ca_or_v1_root(no_constraints_root.cert)


def test_self_signed_needs_the_signature_not_just_the_names(root) -> None:
    assert presumed_self_signed(root.cert)
    assert not presumed_self_signed(make_intermediate(root).cert)
    # Same subject and issuer as the root, but signed by the root's key, not its own.
    look_alike = make_cert("Helper Test Root", issuer=root, ca=True)
    assert look_alike.cert.subject == look_alike.cert.issuer
    assert not presumed_self_signed(look_alike.cert)


def test_rsa_root_is_self_signed() -> None:
    assert presumed_self_signed(make_root("RSA Root", key_type="rsa").cert)


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


@pytest.mark.parametrize(
    ("key_type", "rsa_padding"),
    [
        ("rsa", padding.PKCS1v15()),
        ("rsa-pss", _PSS),
        ("ec", None),
        ("dsa", None),
        ("ed25519", None),
    ],
)
def test_verify_signature_checks_each_key_type_and_tells_a_forgery(
    key_type: str, rsa_padding: padding.AsymmetricPadding | None
) -> None:
    signed = b"to be signed"
    digest: hashes.HashAlgorithm | None = hashes.SHA256()
    if key_type.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert rsa_padding is not None
        # A signer picks a PSS salt length; a verifier reads it from the signature (AUTO).
        signing = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            if key_type == "rsa-pss"
            else rsa_padding
        )
        signature = key.sign(signed, signing, hashes.SHA256())
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
        signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    elif key_type == "dsa":
        key = dsa.generate_private_key(key_size=2048)
        signature = key.sign(signed, hashes.SHA256())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        signature = key.sign(signed)
        digest = None  # Ed25519 hashes for itself
    public = key.public_key()

    def verify(data: bytes) -> bool | None:
        return verify_signature(public, signature, data, digest=digest, rsa_padding=rsa_padding)

    assert verify(signed) is True
    assert verify(b"something else") is False


def test_verify_signature_cannot_judge_rsa_without_its_padding() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    assert (
        verify_signature(
            key.public_key(), signature, b"data", digest=hashes.SHA256(), rsa_padding=None
        )
        is None
    )


def test_summary_names_prefer_cn_then_ou_then_o(root) -> None:
    assert summarize(root.cert).name == "Helper Test Root"
    no_cn = summarize(load_pem_certificates(godaddy())[2])
    assert no_cn.name == "Go Daddy Class 2 Certification Authority"  # its OU


def test_summary_text_is_made_printable(root) -> None:
    hostile = make_cert("evil\n-----BEGIN CERTIFICATE-----", issuer=root, ca=True)
    summary = summarize(hostile.cert)
    assert "\n" not in summary.subject and "\n" not in summary.name
    assert "\\n-----BEGIN" in summary.name
    assert escaped("a\tb\x1bc") == "a\\tb\\x1bc"
    assert escaped("Főtanúsítvány") == "Főtanúsítvány"


def test_summary_json_round_trip() -> None:
    for cert in load_pem_certificates(godaddy()):
        summary = summarize(cert)
        assert CertificateSummary.from_json(summary.to_json()) == summary


@pytest.mark.parametrize(
    "change",
    [
        {"sha256": "not hex"},
        {"is_ca": "yes"},
        {"not_after": "2030-01-01T00:00:00"},  # no time zone
        {"not_before": "yesterday"},
        {"subject": None},
    ],
)
def test_summary_from_json_refuses_malformed(change: dict[str, object]) -> None:
    data = summarize(load_pem_certificates(godaddy())[0]).to_json()
    data.update(change)
    with pytest.raises(ValueError):
        CertificateSummary.from_json(data)


def test_summary_expiry_helpers(root) -> None:
    summary = summarize(root.cert)
    assert not summary.is_expired(summary.not_before)
    assert summary.is_expired(summary.not_after.replace(year=summary.not_after.year + 1))
    assert summary.describe().endswith(f"(not after {summary.not_after:%Y-%m-%d})")
    assert summary.describe().startswith("CN=Helper Test Root")


# --- guessing what a file is ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b" \r\n\t", "empty"),
        (b"<!DOCTYPE html><html><body>Not Found</body></html>", "html"),
        (b"\n  <html lang=en><head>", "html"),
        (b"\x30\x82\x04\xd0\x30\x82", "der"),
        (b"hello", "other"),
        (b"# x\n-----BEGIN CERTIFICATE-----\n", "pem"),
    ],
)
def test_guess_format(data: bytes, kind: str) -> None:
    assert guess_format(data) == kind


def test_pem_bundle_helper_round_trips(root) -> None:
    leaf = make_leaf(root, "a.test")
    assert [summarize(c).sha256 for c in load_pem_certificates(pem_bundle(root, leaf))] == [
        root.sha256,
        leaf.sha256,
    ]


def test_a_name_in_an_unknown_string_type_is_a_damaged_block_not_a_crash() -> None:
    """Found by hypothesis: cryptography's rfc4514_string raises KeyError for an ASN.1 string
    tag it does not know (here PrintableString 0x13 turned into 0x00)."""
    block = split_pem(GODADDY.read_bytes())[0]
    at = block.der.find(b"\x13\x11GoDaddy.com, Inc.")
    damaged = PemBlock(
        block.index, block.line, block.label, block.der[:at] + b"\x00" + block.der[at + 1 :]
    )
    with pytest.raises(CertificateError, match=r"is not a valid X\.509 certificate"):
        load_certificate(damaged)
