"""Caches and the machine (issue 19): what a build may trust of what it finds around it.

A cache someone else wrote, a machine with odd site packages or an odd umask, builds sharing a
cache, and what a killed build left behind. In-process tests come first; the builds after them
run bin/compile as tests/e2e/test_compile.py does, from one cold dependency cache (the session's
``world``), each on a copy of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from smtp_ca.bundle.prepare import prepare_bundle
from smtp_ca.bundle.settings import BundleSettings
from smtp_ca.output import Log
from support.certs import make_root
from support.godaddy import GODADDY_BUNDLE, GODADDY_SHA256
from support.wrapped_log import LogBuffer


def _bundle_settings() -> BundleSettings:
    return BundleSettings(
        url=GODADDY_BUNDLE.resolve().as_uri(), sha256=GODADDY_SHA256, public_roots=True, timeout=5
    )


def _prepare(cache: Path) -> tuple[bytes, str, str]:
    out, err = LogBuffer(), LogBuffer()
    prepared = prepare_bundle(_bundle_settings(), cache, Log(out=out, err=err))
    return prepared.pem, out.getvalue(), err.getvalue()


def _rewrite_merged(cache: Path, pem: bytes, **record: object) -> None:
    """What someone with write access can do: new data, and a record that agrees with it."""
    directory = cache / "bundle"
    meta = json.loads((directory / "merged.json").read_text())
    meta.update(record, sha256=hashlib.sha256(pem).hexdigest(), size=len(pem))
    (directory / "merged.pem").write_bytes(pem)
    (directory / "merged.json").write_text(json.dumps(meta))


def _add_a_key_block(pem: bytes, meta: dict[str, object]) -> tuple[bytes, dict[str, object]]:
    """A block that is no certificate, and a count that takes it for one more root."""
    block = b"\n-----BEGIN PRIVATE KEY-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END PRIVATE KEY-----\n"
    count = meta["public_root_count"]
    assert isinstance(count, int)
    return pem + block, {"public_root_count": count + 1}


def _swap_in_a_foreign_root(pem: bytes, meta: dict[str, object]) -> tuple[bytes, dict[str, object]]:
    """A valid CA certificate in place of the last public root: the count still agrees."""
    last = pem.rindex(b"-----BEGIN CERTIFICATE-----")
    return pem[:last] + make_root("Not From Any Input").pem, {}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_add_a_key_block, "is neither a certificate nor a comment"),
        (_swap_in_a_foreign_root, "it holds a certificate that none of the bundle's inputs holds"),
    ],
)
def test_a_self_consistent_merged_cache_is_checked_against_this_builds_inputs(
    tmp_path: Path,
    tamper: Callable[[bytes, dict[str, object]], tuple[bytes, dict[str, object]]],
    reason: str,
) -> None:
    cache = tmp_path / "smtp-ca"
    first, _, _ = _prepare(cache)
    meta = json.loads((cache / "bundle" / "merged.json").read_text())
    forged, record = tamper((cache / "bundle" / "merged.pem").read_bytes(), meta)
    _rewrite_merged(cache, forged, **record)

    written, _, err = _prepare(cache)

    assert written == first  # what goes into the app is what this build's inputs hold
    assert " !     Warning: The cached CA bundle did not hold up: " in err
    assert reason in err
    assert "The build cannot trust it, so it makes it again from its inputs." in err
    assert (cache / "bundle" / "merged.pem").read_bytes() == first
    # Made again, it is trusted again: no warning on the next build.
    again, _, err_again = _prepare(cache)
    assert again == first and err_again == ""
