"""End to end, as Heroku builds and a dyno runs: the bug first, then the fix, per Mastodon shape.

bin/compile runs from a clean copy of the buildpack with a pip-less python3, STACK, and config
vars only in ENV_DIR; the bundle comes from a local HTTPS server standing in for the CA's site;
the app then moves to another path and real ActionMailer sends through a real STARTTLS server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trustme

from smtp_ca.bundle.certificates import load_pem_certificates, to_pem
from smtp_ca.pipeline import NO_SERVER_FOUND
from support.godaddy import GODADDY_BUNDLE, GODADDY_SHA256
from support.heroku import clean_buildpack_copy, move_to_dyno_path, snapshot
from support.rails_app import (
    MASTODON_SHAPES,
    dyno_environment,
    make_rails_app,
    require_ruby_rails,
    run_delivery,
    smtp_config_vars,
)
from support.smtp_server import SMTPTestServer
from support.world import World, godaddy_vars

pytestmark = pytest.mark.e2e

PASSWORD = "SG.s3cret-password-never-printed"
BUNDLE_PATH = ".smtp-ca/ca-bundle.pem"


@pytest.fixture(scope="module")
def provider_ca() -> trustme.CA:
    """The mail provider's CA: in no default store, so only the buildpack's bundle anchors it."""
    return trustme.CA()


@pytest.fixture(scope="module")
def provider_bundle_vars(world: World, provider_ca: trustme.CA) -> dict[str, str]:
    return world.bundle_vars("/provider-bundle.crt", provider_ca.cert_pem.bytes())


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_mastodon_mail_fails_without_and_is_delivered_over_verified_tls_with(
    world: World,
    tmp_path: Path,
    shape: str,
    provider_ca: trustme.CA,
    provider_bundle_vars: dict[str, str],
) -> None:
    require_ruby_rails()
    with SMTPTestServer(
        mode="starttls", ca=provider_ca, credentials=("apikey", PASSWORD)
    ) as server:
        config_vars = smtp_config_vars(
            "localhost", server.port, login="apikey", password=PASSWORD, auth_method="plain"
        )
        build_dir = make_rails_app(tmp_path / "build_0123abcd", shape)

        # The bug, as users meet it: peer verification, no CA that anchors the chain.
        before = run_delivery(build_dir, dyno_environment(build_dir, config_vars))
        assert before.returncode != 0
        assert "certificate verify failed" in before.stdout + before.stderr
        assert server.messages == ()

        build = world.build(
            tmp_path,
            {**config_vars, **provider_bundle_vars, "SMTP_CA_CHECK": "strict"},
            build_dir=build_dir,
        )
        assert build.returncode == 0, build.output
        check_step = build.stdout.splitlines().index(
            f"-----> Checking localhost:{server.port} (STARTTLS) against the bundle"
        )
        assert build.stdout.splitlines()[check_step + 1] == (
            f"       localhost:{server.port} (STARTTLS): verified, TLSv1.3."
        )
        assert PASSWORD not in build.output
        assert "Traceback" not in build.output

        dyno_dir = move_to_dyno_path(build_dir, tmp_path / "app")
        for runtime_file in (".profile.d/smtp-ca.sh", "config/initializers/smtp_ca.rb"):
            assert str(build_dir) not in (dyno_dir / runtime_file).read_text()
        after = run_delivery(dyno_dir, dyno_environment(dyno_dir, config_vars))
        assert after.returncode == 0, after.stdout + after.stderr
        assert "DELIVERED" in after.stdout
        (message,) = server.wait_for_messages(1)
        assert message.tls
        assert message.authenticated_as == "apikey"


def test_real_godaddy_bundle_by_file_url_merged_with_public_roots(
    world: World, tmp_path: Path
) -> None:
    """The default bundle, merged with certifi's roots, no longer anchors on the Go Daddy
    Class 2 root (removed from Mozilla's list in 2025), and the log says why; its G2
    intermediate stays, and chains to certifi's own G2 root."""
    build = world.build(tmp_path, godaddy_vars())
    assert build.returncode == 0, build.output
    lines = build.stdout.splitlines()
    bundle_step = lines.index("-----> Preparing the SMTP CA bundle")
    assert lines[bundle_step + 1] == (
        f"       Read {GODADDY_BUNDLE} (1 of 3 certificates kept, SHA-256 0aa4…d858 matches the "
        "pin)"
    )
    # certifi's version and its count of roots change with requirements.lock.
    assert re.fullmatch(
        r"       Left out OU=Go Daddy Class 2 Certification Authority,O=The Go Daddy Group\\, "
        r"Inc\.,C=US \(not after 2034-06-29\), a self-signed root that Mozilla's list \(certifi "
        r"\S+\) does not hold, and its cross-signature of Go Daddy Root Certificate Authority - "
        r"G2: the bundle carries them only to reach that root, which certifi holds itself\. The "
        r"app trusts no root that Mozilla's list does not\.",
        lines[bundle_step + 2],
    )
    assert re.fullmatch(
        r"       Merged with \d+ public roots from certifi \S+: \d+ certificates",
        lines[bundle_step + 3],
    )
    assert lines[bundle_step + 4] == f"-----> {NO_SERVER_FOUND}"
    assert "Class 2" not in build.stderr  # a note, not a warning: there is nothing to fix
    written = build.build_dir / BUNDLE_PATH
    bundle = load_pem_certificates(written.read_bytes())
    subjects = [cert.subject.rfc4514_string() for cert in bundle]
    secure_g2, cross_signed_g2, class_2 = load_pem_certificates(GODADDY_BUNDLE.read_bytes())
    assert secure_g2 in bundle
    # Without the Class 2 root, its cross-signature of the G2 root would lead OpenSSL to a
    # dead end ("unable to get issuer certificate"): it goes too.
    assert class_2 not in bundle and cross_signed_g2 not in bundle
    assert class_2.subject.rfc4514_string() not in subjects
    assert len(bundle) > 100  # the public roots are there: trust is never narrowed
    fingerprints = [
        cert.fingerprint(cert.signature_hash_algorithm)
        for cert in bundle
        if cert.signature_hash_algorithm
    ]
    assert len(fingerprints) == len(set(fingerprints))
    # OpenSSL, as the app's Ruby uses it, verifies GoDaddy's G2 intermediate with the written
    # bundle alone (not the machine's store), up to certifi's self-signed G2 root.
    intermediate = tmp_path / "secure-g2.pem"
    intermediate.write_bytes(to_pem(secure_g2))
    verified = subprocess.run(
        [
            *("openssl", "verify", "-show_chain", "-no-CApath", "-no-CAstore"),
            *("-CAfile", str(written), str(intermediate)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    chain = [line for line in verified.stdout.splitlines() if line.startswith("depth=")]
    assert chain[-1] == (
        'depth=1: C = US, ST = Arizona, L = Scottsdale, O = "GoDaddy.com, Inc.", CN = Go Daddy '
        "Root Certificate Authority - G2"
    ), verified.stdout
    assert "Class 2" not in verified.stdout


def test_pin_mismatch_fails_and_changes_nothing(world: World, tmp_path: Path) -> None:
    build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-1.3")
    before = snapshot(build_dir)
    build = world.build(
        tmp_path,
        {"SMTP_CA_BUNDLE_URL": GODADDY_BUNDLE.as_uri(), "SMTP_CA_BUNDLE_SHA256": "0" * 64},
        build_dir=build_dir,
    )
    assert build.returncode == 1
    errors = build.stderr.splitlines()
    mismatch = errors.index(
        f" !     The CA bundle at SMTP_CA_BUNDLE_URL ({GODADDY_BUNDLE}) does not match "
        "SMTP_CA_BUNDLE_SHA256."
    )
    assert errors[mismatch + 1 : mismatch + 3] == [
        f" !       expected (SMTP_CA_BUNDLE_SHA256): {'0' * 64}",
        f" !       actual (the file's SHA-256):     {GODADDY_SHA256}",
    ]
    assert "Traceback" not in build.output
    assert snapshot(build_dir) == before


def test_strict_check_failure_names_the_cause_and_changes_nothing(
    world: World, tmp_path: Path, provider_bundle_vars: dict[str, str]
) -> None:
    stranger = trustme.CA()  # the server's chain is anchored by a CA no bundle holds
    with SMTPTestServer(mode="starttls", ca=stranger) as server:
        build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-1.4")
        before = snapshot(build_dir)
        build = world.build(
            tmp_path,
            {
                **smtp_config_vars("localhost", server.port),
                **provider_bundle_vars,
                "SMTP_CA_CHECK": "strict",
            },
            build_dir=build_dir,
        )
    assert build.returncode == 1, build.output
    assert (
        f" !     localhost:{server.port} (STARTTLS): certificate verify failed: no certificate "
        "in the bundle anchors the server's chain (unable to get local issuer certificate)."
    ) in build.stderr.splitlines()
    assert build.stderr.splitlines()[-1] == (
        " !     SMTP_CA_CHECK=strict fails the build on a failed check; "
        "SMTP_CA_CHECK=warn only warns."
    )
    assert "Traceback" not in build.output
    assert snapshot(build_dir) == before


def test_warn_check_failure_builds_with_a_warning(
    world: World, tmp_path: Path, provider_bundle_vars: dict[str, str]
) -> None:
    with SMTPTestServer(mode="starttls", ca=trustme.CA()) as server:
        build = world.build(
            tmp_path,
            {**smtp_config_vars("localhost", server.port), **provider_bundle_vars},
        )
    assert build.returncode == 0, build.output
    assert (
        f" !     Warning: localhost:{server.port} (STARTTLS): certificate verify failed: no "
        "certificate in the bundle anchors the server's chain (unable to get local issuer "
        "certificate)."
    ) in build.stderr.splitlines()
    assert build.stderr.splitlines()[-1] == (
        " !     The build goes on (SMTP_CA_CHECK=warn); SMTP_CA_CHECK=strict would fail it."
    )
    assert (build.build_dir / BUNDLE_PATH).is_file()


def test_warm_build_reuses_the_cache_and_writes_identical_files(
    world: World, tmp_path: Path, provider_bundle_vars: dict[str, str]
) -> None:
    config_vars = provider_bundle_vars
    first = world.build(
        tmp_path / "one",
        config_vars,
        cache=tmp_path / "cache",
        build_dir=tmp_path / "app-one",
    )
    second = world.build(
        tmp_path / "two",
        config_vars,
        cache=tmp_path / "cache",
        build_dir=tmp_path / "app-two",
    )
    assert first.returncode == 0 and second.returncode == 0, first.output + second.output
    assert "-----> Using cached dependencies" in second.stdout.splitlines()
    assert "Installing the buildpack's Python dependencies" not in second.stdout
    assert snapshot(first.build_dir) == snapshot(second.build_dir)


def test_export_gives_later_buildpacks_the_build_path(
    world: World, tmp_path: Path, provider_bundle_vars: dict[str, str]
) -> None:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    build = world.build(tmp_path, provider_bundle_vars, buildpack=buildpack)
    assert build.returncode == 0, build.output
    shown = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{buildpack}/export"; printf %s "$SMTP_CA_FILE"'],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == str(build.build_dir / BUNDLE_PATH)
    assert Path(shown.stdout).is_file()


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        (
            "heroku-20",
            " !     The stack heroku-20 is end of life and not supported by this buildpack.",
        ),
        (
            "cedar-14",
            " !     The stack cedar-14 is end of life and not supported by this buildpack.",
        ),
        (
            "scratch",
            " !     Unknown stack 'scratch': this buildpack supports heroku-22, heroku-24, "
            "heroku-26.",
        ),
    ],
)
def test_unsupported_stack_is_refused_by_name(
    world: World, tmp_path: Path, stack: str, message: str
) -> None:
    build = world.build(tmp_path, godaddy_vars(), stack=stack)
    assert build.returncode == 1
    assert message in build.stderr.splitlines()
    assert "----->" not in build.stdout  # refused before any step
    assert "Traceback" not in build.output


def test_no_python3_is_a_clear_message(tmp_path: Path) -> None:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("bash", "dirname"):
        (tools / tool).symlink_to(shutil.which(tool) or tool)
    completed = subprocess.run(
        [str(tools / "bash"), str(buildpack / "bin" / "compile"), str(tmp_path), str(tmp_path)],
        env={"PATH": str(tools), "STACK": "heroku-24"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert " !     No python3 found on PATH." in completed.stderr.splitlines()


def test_detect_and_release(tmp_path: Path) -> None:
    buildpack = clean_buildpack_copy(tmp_path / "buildpack")
    detect = subprocess.run(
        [buildpack / "bin" / "detect", tmp_path], capture_output=True, text=True, check=False
    )
    assert (detect.returncode, detect.stdout) == (0, "SMTP CA\n")
    release = subprocess.run(
        [buildpack / "bin" / "release", tmp_path], capture_output=True, text=True, check=False
    )
    assert release.returncode == 0
    assert release.stdout.startswith("---")
