"""Every name the buildpack gives a file or directory in its cache, spelled once.

Stdlib only and importing nothing of the package but ``files``: the cache's lock, its owner
check and the sweep of leftovers run before the dependencies are installed, and the check's
caches (AIA, OCSP, CRL) need the dependencies; all of them name their directories from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from smtp_ca.files import remove

# Classic Heroku's CACHE_DIR is shared by the app's buildpacks: this one keeps to its own
# subdirectory. (A CNB gets a cache layer of its own.)
CLASSIC_NAMESPACE: Final = "smtp-ca"
# How classic Heroku users start the build cache afresh; each platform says it its own way.
CLASSIC_CACHE_RESET_HINT: Final = (
    "Clear the build cache (heroku builds:cache:purge) and build again."
)

LOCK: Final = ".lock"  # the flock every use of the cache holds (cache.lock)
TAG: Final = "CACHEDIR.TAG"  # the Cache Directory Tagging file bin/check writes (cache.owner)
STACK: Final = "stack"  # the stack the dependencies were installed for
DEPENDENCIES: Final = "python-deps"  # <key>/ per stack, Python and lock file
MARKER_NAME: Final = ".smtp-ca-complete.json"  # in a complete <key>/: every file and its hash
DEPENDENCIES_STAGING_PREFIX: Final = ".staging-"  # an install in progress, in python-deps/
BUNDLE: Final = "bundle"  # the last bundle's source and merged result
AIA: Final = "aia"  # intermediates fetched from caIssuers URLs
OCSP: Final = "ocsp"  # OCSP answers, until their nextUpdate
CRL: Final = "crl"  # CRLs, until their nextUpdate
SCRATCH: Final = "scratch"  # the check's temporary directories
# What earlier versions kept here, removed when found: python3-pip extracted from the stack's
# apt (pip/<key>/), apt-get's state (apt/), and a bytecode cache for python3's -X
# pycache_prefix (pycache/), whose .pyc files Python read without checking them. Each is
# recognised by what those versions wrote in it, so nothing else of that name is removed.
LEGACY: Final = {"pip": "*/" + MARKER_NAME, "apt": "state", "pycache": ".checked-hash"}

# Everything the buildpack makes at the top of its cache: a directory holding anything else is
# not its own (cache.owner).
OWN_NAMES: Final = frozenset(
    {LOCK, TAG, STACK, DEPENDENCIES, BUNDLE, AIA, OCSP, CRL, SCRATCH, *LEGACY}
)
# Where files.write_atomically leaves a .<name>.*.tmp when killed (pip_settings its copy of a
# PIP_CONFIG_FILE, .pip-config.*.tmp, in the root), and the check's CRL download its partial
# file: the sweep of leftovers looks in each.
WRITTEN_ATOMICALLY: Final = (".", BUNDLE, AIA, OCSP, CRL)

# wiring.commit's staging directory in the app (not the cache: the sweep removes it too).
APP_STAGING_PREFIX: Final = ".smtp-ca-staging-"


class Layout:
    """The paths of the buildpack's cache rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def deps(self) -> Path:
        return self.root / DEPENDENCIES

    @property
    def stack_file(self) -> Path:
        return self.root / STACK

    def remove_legacy(self) -> None:
        """Removes what earlier versions of the buildpack left (``LEGACY``): a few lstat()
        calls when there is none."""
        for name, sign in LEGACY.items():
            directory = self.root / name
            if directory.is_dir() and not directory.is_symlink() and any(directory.glob(sign)):
                remove(directory)
