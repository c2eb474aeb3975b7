"""The project stands alone: its fixtures are its own and nothing reads outside the repository."""

from __future__ import annotations

import hashlib
import subprocess

from support.godaddy import GODADDY_PEM, GODADDY_SHA256
from support.offline_inputs import REPO


def test_the_godaddy_fixture_is_the_bundle_godaddy_publishes() -> None:
    assert hashlib.sha256(GODADDY_PEM).hexdigest() == GODADDY_SHA256
    assert GODADDY_PEM.count(b"-----BEGIN CERTIFICATE-----") == 3


def test_no_tracked_file_reaches_for_a_sibling_of_the_repository() -> None:
    # A clone has no ../shared: a path into it works on one machine and breaks every other.
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if name == b"tests/project/test_godaddy_fixture.py" or not path.is_file():
            continue
        text = path.read_bytes()
        if b"../shared" in text or b'"shared" / "data"' in text or b"shared/data" in text:
            offenders.append(name.decode())
    assert offenders == []
