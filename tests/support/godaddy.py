"""The real GoDaddy bundle (gd_bundle-g2-g1.crt), kept in the project's own test fixtures.

Tests never reach the internet, and never read outside the repository: a clone has no sibling
directories. tests/project/test_godaddy_fixture.py checks that the file is still the one GoDaddy
publishes.
"""

from __future__ import annotations

from pathlib import Path

GODADDY_BUNDLE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "godaddy" / "gd_bundle-g2-g1.crt"
)
GODADDY_SHA256 = "0aa4014e6a34e2553b6258c671946620a44e03aedf0fde497781fe8a6abfd858"
GODADDY_PEM = GODADDY_BUNDLE.read_bytes()
