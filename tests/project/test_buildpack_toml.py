"""buildpack.toml: the registry name, the Cloud Native Buildpack descriptor, and a publish.Ignore
that keeps everything a build needs.

The same file serves both APIs: classic Heroku reads ``[buildpack] name`` and ``[publish.Ignore]``;
the CNB lifecycle and ``pack`` read ``api``, ``[buildpack]`` id/version and ``[[targets]]``.

Heroku's buildpack registry prunes the paths in ``[publish.Ignore] files`` when it packages the
buildpack. An entry ending in ``/`` is a directory; any other entry is a file path. The matcher
below also accepts glob characters, so a pattern that would catch a needed file is caught too.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import PurePosixPath
from typing import Any

import pytest

from support.heroku import BUILDPACK_FILES
from support.paths import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = REPO
BUILDPACK_TOML = ROOT / "buildpack.toml"

# What a build runs or reads, as paths relative to the buildpack's root.
NEEDED = [
    "bin/compile",
    "bin/build",
    "bin/detect",
    "bin/release",
    "bin/check",
    "bin/support/python.sh",
    "src/smtp_ca/__init__.py",
    "src/smtp_ca/__main__.py",
    "src/smtp_ca/settings.py",
    "templates/check.rb",
    "templates/check/report.rb",
    "templates/delivery.rb",
    "templates/initializer.rb.j2",
    "templates/profile.sh.j2",
    "templates/export.sh.j2",
    "vendor/pip.sha256",
    "requirements.lock",
    "buildpack.toml",
]
NEEDED_DIRECTORIES = ["bin", "src", "templates", "vendor"]
NOT_SHIPPED = [
    "tests/project/test_buildpack_toml.py",
    "tests/support/smtp_server.py",
    "benchmarks/build_time.py",
    "scripts/test",
    "scripts/demo",
    ".ci/run",
    "pyproject.toml",
    "CHANGELOG.md",
    "package.toml",
    "app.json",
    ".gitignore",
    ".rubocop.yml",
]


def _toml() -> dict[str, Any]:
    with BUILDPACK_TOML.open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return data


def ignore_entries() -> list[str]:
    files = _toml()["publish"]["Ignore"]["files"]
    assert isinstance(files, list) and all(isinstance(f, str) and f for f in files)
    return list(files)


def is_ignored(path: str, entries: list[str]) -> bool:
    """Whether ``path`` (a file, relative to the root) is pruned by any entry."""
    pure = PurePosixPath(path)
    candidates = [str(pure), *(str(parent) for parent in pure.parents if str(parent) != ".")]
    for entry in entries:
        pattern = entry.strip().lstrip("/").rstrip("/")
        if not pattern:
            return True  # an empty or "/" entry would prune everything
        for candidate in candidates:
            if candidate == pattern or fnmatch.fnmatchcase(candidate, pattern):
                return True
        # An entry without a slash may be matched against any file name, as gitignore does.
        if "/" not in pattern and any(fnmatch.fnmatchcase(part, pattern) for part in pure.parts):
            return True
    return False


def test_matcher_understands_directories_files_and_globs() -> None:
    assert is_ignored("tests/x/y.py", ["tests/"])
    assert is_ignored("requirements-dev.lock", ["requirements-dev*"])
    assert is_ignored("CHANGELOG.md", ["/CHANGELOG.md"])
    assert not is_ignored("src/tests.py", ["tests/"])
    assert not is_ignored("requirements.lock", ["requirements-dev.lock"])
    assert is_ignored("bin/compile", ["bin"])
    assert is_ignored("anything", ["/"])


def test_name() -> None:
    buildpack = _toml()["buildpack"]
    assert buildpack["name"] == "SMTP CA"


def test_cnb_descriptor_names_buildpack_api_0_10_and_a_namespaced_id() -> None:
    descriptor = _toml()
    assert descriptor["api"] == "0.10"
    buildpack = descriptor["buildpack"]
    # The lifecycle's rules: namespace/name, lower case, and never the reserved "config"/"app".
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9.-]*", buildpack["id"])
    assert buildpack["id"] not in ("config", "app")
    assert re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", buildpack["version"])
    for key in ("name", "homepage", "description"):
        assert isinstance(buildpack[key], str) and buildpack[key]
    licenses = buildpack["licenses"]
    assert licenses and all(isinstance(entry.get("type"), str) for entry in licenses)


def test_cnb_targets_are_linux_on_both_architectures_and_any_distro() -> None:
    targets = _toml()["targets"]
    assert sorted((target["os"], target["arch"]) for target in targets) == [
        ("linux", "amd64"),
        ("linux", "arm64"),
    ]
    # No distro: the buildpack runs on the python3 of each Ubuntu under Heroku's images, and
    # refuses an unknown one by name itself, with a message rather than a failed detect.
    assert all("distros" not in target for target in targets)


def test_optional_metadata_has_the_right_types() -> None:
    buildpack = _toml()["buildpack"]
    for key in ("homepage", "description"):
        if key in buildpack:
            assert isinstance(buildpack[key], str) and buildpack[key]
    if "homepage" in buildpack and "heroku-buildpack-smtp-ca" in buildpack["homepage"]:
        assert "<you>" in buildpack["homepage"], "the homepage must be a marked placeholder"
    keywords = buildpack.get("keywords", [])
    assert isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)


def test_entries_are_relative_paths() -> None:
    for entry in ignore_entries():
        assert entry == entry.strip(), f"{entry!r} has surrounding spaces"
        assert not entry.startswith(("/", "./", "../")), f"{entry!r} must be relative"
        assert ".." not in PurePosixPath(entry).parts


@pytest.mark.parametrize("path", NEEDED)
def test_files_a_build_needs_are_kept(path: str) -> None:
    assert not is_ignored(path, ignore_entries()), f"{path} is needed by a build"


@pytest.mark.parametrize("directory", NEEDED_DIRECTORIES)
def test_every_file_in_the_build_directories_is_kept(directory: str) -> None:
    entries = ignore_entries()
    files = [p for p in (ROOT / directory).rglob("*") if p.is_file()]
    assert files, f"{directory}/ has no files"
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if "__pycache__" in relative:
            continue
        assert not is_ignored(relative, entries), f"{relative} is needed by a build"


def test_the_pinned_pip_wheel_is_kept_and_packaged_with_what_a_build_needs() -> None:
    """The wheel a cold build runs is published with the buildpack, and the CNB package and
    the tests' clean copies hold it too."""
    wheel = (ROOT / "vendor" / "pip.sha256").read_text().split()[1]
    assert not is_ignored(f"vendor/{wheel}", ignore_entries())
    package_script = (ROOT / "scripts" / "package-buildpack").read_text()
    assert "for name in bin src templates vendor requirements.lock LICENSE; do" in package_script
    assert "vendor" in BUILDPACK_FILES


@pytest.mark.parametrize("path", NOT_SHIPPED)
def test_development_files_are_ignored(path: str) -> None:
    assert is_ignored(path, ignore_entries()), f"{path} should not be published"


def test_tests_and_benchmarks_directories_are_ignored() -> None:
    entries = ignore_entries()
    assert "tests/" in entries
    assert "benchmarks/" in entries
