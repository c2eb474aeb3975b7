"""support.golden: what the golden build logs hide, and what they must keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import golden
from support.golden import assert_matches_golden, normalise


def test_volatile_values_become_placeholders(tmp_path: Path) -> None:
    digest = "8b86183f077f27eea00587a12037e258ab5017499b9e03c682f3147963671fcd"
    log = "\n".join(
        [
            "-----> Checking localhost:48547 (STARTTLS) against the bundle",
            f"       Fetched https://127.0.0.1:34327/b.crt (SHA-256 8b86…1fcd); pin {digest}",
            "       Merged with 117 public roots from certifi 2026.10.19: 118 certificates",
            "         1. Testing cert #hoQVPXQENxxhSaaF, valid until 2027-03-01 12:00 UTC",
            "       Revocation: not revoked (signed answer of 2026-11-30T16:40:02Z)",
            "       Installed the buildpack's Python dependencies in 1.8s",
            f"       Wrote {tmp_path}/build_0123abcd/.smtp-ca/ca-bundle.pem",
            "       serial number 0x1f2e3d4c5b6a79880102, fingerprint " + ":".join(["AB"] * 32),
        ]
    )
    assert normalise(log, [(tmp_path, "<TMP>")]).splitlines() == [
        "-----> Checking localhost:<PORT> (STARTTLS) against the bundle",
        "       Fetched https://127.0.0.1:<PORT>/b.crt (SHA-256 <HASH>); pin <SHA256>",
        "       Merged with <N> public roots from certifi <VERSION>: <N> certificates",
        "         1. Testing cert #<RANDOM>, valid until <DATE>",
        "       Revocation: not revoked (signed answer of <DATE>)",
        "       Installed the buildpack's Python dependencies in <DURATION>",
        "       Wrote <TMP>/build_0123abcd/.smtp-ca/ca-bundle.pem",
        "       serial number <SERIAL>, fingerprint <FINGERPRINT>",
    ]


def test_what_the_buildpack_says_is_kept() -> None:
    """Configured values, counts of the bundle's own certificates, the TLS version and the
    fix a message gives stay as they are: they are what a golden log pins."""
    log = "\n".join(
        [
            " !     localhost:587 (STARTTLS): no answer within 10 s (connecting)",
            "       Fetched https://ca.example/bundle.crt (3 certificates, not pinned)",
            "       localhost:25 (STARTTLS): verified, TLSv1.3.",
            " !     Most providers use 587 (STARTTLS): heroku config:set SMTP_PORT=587",
        ]
    )
    assert (
        normalise(log)
        == log.replace("localhost:587", "localhost:<PORT>").replace(
            "localhost:25", "localhost:<PORT>"
        )
        + "\n"
    )


def test_pip_output_collapses_to_one_line_per_run() -> None:
    log = "\n".join(
        [
            "-----> Installing the buildpack's Python dependencies",
            "       Looking in links: /tmp/wheelhouse",
            "       Ignoring pycparser: markers 'python_full_version < \"3.11\"' don't match",
            "       Processing /tmp/wheelhouse/certifi-2026.10.19.post1-py3-none-any.whl",
            "       Successfully installed certifi-2026.10.19.post1",
            "       Installed the buildpack's Python dependencies in 3.2s",
        ]
    )
    assert normalise(log).splitlines() == [
        "-----> Installing the buildpack's Python dependencies",
        "       <pip output>",
        "       Installed the buildpack's Python dependencies in <DURATION>",
    ]


def test_a_changed_log_fails_with_a_diff_and_the_update_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path)
    monkeypatch.delenv(golden.UPDATE_VARIABLE, raising=False)
    (tmp_path / "build.log").write_text("-----> Step\n       old line\n")
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_matches_golden("build.log", "-----> Step\n       new line\n")
    message = str(failure.value)
    assert "-       old line" in message and "+       new line" in message
    assert golden.UPDATE_COMMAND in message
    assert_matches_golden("build.log", "-----> Step\n       old line\n")


def test_update_mode_rewrites_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path / "golden")
    monkeypatch.setenv(golden.UPDATE_VARIABLE, "1")
    assert_matches_golden("build.log", "-----> Step\n")
    assert (tmp_path / "golden" / "build.log").read_text() == "-----> Step\n"


def test_a_missing_golden_file_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(golden, "GOLDEN_DIR", tmp_path)
    monkeypatch.delenv(golden.UPDATE_VARIABLE, raising=False)
    with pytest.raises(pytest.fail.Exception, match="SMTP_CA_UPDATE_GOLDEN=1"):
        assert_matches_golden("absent.log", "")
