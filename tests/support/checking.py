"""What the check's tests share (test_check, test_check_aia, test_check_ocsp).

* ``check(port, ca_file, ...)``: ``run_check`` against a loopback server, trusting only
  ``ca_file``, with the machine's own stores out of the way (``NO_STORES``);
* ``check_pki("AIA")``: the module's fixtures ``root``, ``intermediate`` and ``root_file``,
  named after the module so a report line says which test PKI it is about::

      root, intermediate, root_file = check_pki("AIA")

* ``text(outcome)``: everything an outcome says, as one text, for failure messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smtp_ca.check.context import TrustStores
from smtp_ca.check.flow import run_check
from smtp_ca.check.naming import CONFIG_VARS, Naming
from smtp_ca.check.outcome import CheckOutcome
from smtp_ca.check.smtp_session import CheckTarget
from support.certs import Issued, make_root
from support.pki import bundle_with_origins, issue

# The diagnosis compares the bundle with certifi's roots and the system store; tests say
# exactly which stores exist, so the machine's own stores never change an answer.
NO_STORES = TrustStores(public_roots=Path("/nonexistent/certifi.pem"), system=None)


def check(
    port: int,
    ca_file: Path,
    *,
    host: str = "localhost",
    implicit_tls: bool = False,
    stores: TrustStores = NO_STORES,
    timeout: float = 5,
    cache_dir: Path | None = None,
    now: dt.datetime | None = None,
    naming: Naming = CONFIG_VARS,
) -> CheckOutcome:
    target = CheckTarget(host, port, implicit_tls=implicit_tls, timeout=timeout, naming=naming)
    return run_check(target, ca_file, stores=stores, cache_dir=cache_dir, now=now)


def text(outcome: CheckOutcome) -> str:
    return "\n".join([outcome.summary, *outcome.details, outcome.hint or "", *outcome.notices])


def check_pki(label: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """Fixtures: ``root`` ("smtp-ca LABEL Root CA") and ``intermediate`` ("smtp-ca LABEL
    Issuing CA"), one key pair each per module; ``root_file``, the root alone as a bundle
    whose "# From:" line says it came from SMTP_CA_BUNDLE_URL, as the build writes it."""

    @pytest.fixture(scope="module")
    def root() -> Issued:
        return make_root(f"smtp-ca {label} Root CA")

    @pytest.fixture(scope="module")
    def intermediate(root: Issued) -> Issued:
        return issue(f"smtp-ca {label} Issuing CA", root, ca=True)

    @pytest.fixture
    def root_file(root: Issued, tmp_path: Path) -> Path:
        path = tmp_path / "root.pem"
        path.write_bytes(bundle_with_origins((root, "SMTP_CA_BUNDLE_URL")))
        return path

    return root, intermediate, root_file
