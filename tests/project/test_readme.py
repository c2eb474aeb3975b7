"""The README's two commands, and what it says they need, against what the scripts install.

The README's first screen names the Debian packages `bash scripts/demo` and `bash scripts/test`
need; scripts/setup-common.sh (the demo's `need` lines) and scripts/setup-dev (the tests' own)
are what installs them. requirements-demo.lock must pin what the dev lock pins, and hold every
package the demo imports. The demo itself runs once, end to end, as the README's first command.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.offline_inputs import load_inputs, skip_or_fail
from support.paths import REPO
from support.rails_app import ruby_rails_problem

ROOT = REPO
README = ROOT / "README.md"
SCRIPTS = ROOT / "scripts"
DEMO_LOCK = ROOT / "requirements-demo.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"

NEED_LINE = re.compile(r"^\s*need (?P<package>[a-z0-9][a-z0-9.+-]*) ", re.M)
LOCK_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==", re.M)


def _first_section() -> str:
    """The README up to its second `## ` heading: the first screen."""
    text = README.read_text(encoding="utf-8")
    headings = [m.start() for m in re.finditer(r"^## ", text, re.M)]
    assert len(headings) >= 2, "README.md needs at least two ## sections"
    return text[: headings[1]]


def _bullet(command: str) -> str:
    """The first screen's bullet for ``command`` (``- **`bash scripts/demo`**: ...``)."""
    match = re.search(
        rf"^- \*\*`{re.escape(command)}`\*\*(?P<body>.*?)(?=^- |^\S|\Z)",
        _first_section(),
        re.M | re.S,
    )
    assert match, f"the README's first screen has no bullet for `{command}`"
    return match.group("body")


def _readme_packages(command: str) -> set[str]:
    """The Debian packages the README's bullet names: each `...` group after 'packages'."""
    groups = re.findall(r"packages(?: plus)? `([a-z0-9 .+-]+)`", " ".join(_bullet(command).split()))
    assert groups, f"the README's bullet for `{command}` names no Debian packages"
    packages = {package for group in groups for package in group.split()}
    if "the demo's packages" in " ".join(_bullet(command).split()):
        packages |= _readme_packages("bash scripts/demo")
    return packages


def _function_body(script: str, function: str) -> str:
    match = re.search(rf"^{function}\(\) \{{\n(?P<body>.*?)^\}}", script, re.M | re.S)
    assert match, f"no function {function} in the script"
    return match.group("body")


def demo_packages() -> set[str]:
    common = (SCRIPTS / "setup-common.sh").read_text(encoding="utf-8")
    packages = set(NEED_LINE.findall(_function_body(common, "need_demo_packages")))
    assert {"ruby", "python3-venv"} <= packages, packages
    return packages


def dev_packages() -> set[str]:
    """What `bash scripts/test` (and its --fast) needs: the demo's packages and the tests'."""
    setup_dev = (SCRIPTS / "setup-dev").read_text(encoding="utf-8")
    assert "need_demo_packages" in setup_dev, "setup-dev must install the demo's packages too"
    return demo_packages() | set(NEED_LINE.findall(_function_body(setup_dev, "need_test_packages")))


def all_packages() -> set[str]:
    """What `bash scripts/test --all` adds."""
    setup_dev = (SCRIPTS / "setup-dev").read_text(encoding="utf-8")
    return set(NEED_LINE.findall(_function_body(setup_dev, "need_all_packages")))


# --- the README against the scripts ---------------------------------------------------------


def test_readme_names_the_packages_the_demo_installs() -> None:
    assert _readme_packages("bash scripts/demo") == demo_packages()


def test_readme_names_the_packages_the_tests_install() -> None:
    assert _readme_packages("bash scripts/test") == dev_packages()
    # The chroots' tool is for --all only: the README's command makes no chroot.
    assert all_packages() == {"mmdebstrap"}
    assert not all_packages() & dev_packages()


@pytest.mark.parametrize(
    ("command", "setup"), [("scripts/demo", "setup-demo"), ("scripts/test", "setup-dev")]
)
def test_readme_commands_run_the_setup_they_describe(command: str, setup: str) -> None:
    assert f"`bash {command}`" in _first_section()
    script = (ROOT / command).read_text(encoding="utf-8")
    assert f"bash scripts/{setup}" in script, f"{command} must run scripts/{setup}"


def test_the_demo_setup_does_no_test_setup() -> None:
    """What the issue found the demo doing: chroots, a system user, Go, other Pythons."""
    setup_demo = (SCRIPTS / "setup-demo").read_text(encoding="utf-8")
    for test_only in ("prepare-chroots", "prepare-lifecycle", "requirements-dev.lock", "sudo"):
        assert test_only not in setup_demo
    assert "prepare-test-inputs --demo" in setup_demo
    assert "sudo" not in (SCRIPTS / "setup-common.sh").read_text(encoding="utf-8")


# --- the demo's lock ------------------------------------------------------------------------


def _lock_entries(lock: Path) -> dict[str, set[tuple[str, frozenset[str]]]]:
    """The pins of a lock by name: each (version, hashes). A name may be pinned once per
    marker; markers themselves may differ between locks (the dev lock needs typing-extensions
    on every Python, for mypy; the demo only below 3.11)."""
    entries: dict[str, set[tuple[str, frozenset[str]]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8")):
        match = re.match(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)", block)
        if match:
            hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block))
            assert hashes, f"{lock.name}: {match['name']} has no hashes"
            name = str(canonicalize_name(match["name"]))
            entries.setdefault(name, set()).add((match["version"], hashes))
    return entries


def test_demo_lock_pins_what_the_dev_lock_pins() -> None:
    demo, dev = _lock_entries(DEMO_LOCK), _lock_entries(DEV_LOCK)
    assert {"aiosmtpd", "trustme", "pytest"} <= set(demo)
    for name, pins in demo.items():
        assert name in dev, f"requirements-demo.lock pins {name}, requirements-dev.lock does not"
        assert pins <= dev[name], f"{name}: requirements-demo.lock's pin differs from the dev lock"


def _imported_names(path: Path, seen: set[Path]) -> set[str]:
    """Top-level module names ``path`` imports, following its imports of tests/support."""
    seen.add(path)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if module.startswith("support."):
                helper = ROOT / "tests" / (module.replace(".", "/") + ".py")
                if helper not in seen:
                    names |= _imported_names(helper, seen)
            else:
                names.add(module.split(".")[0])
    return names


def test_demo_lock_holds_every_package_the_demo_imports_and_their_dependencies() -> None:
    imported = _imported_names(SCRIPTS / "demo.py", set())
    third_party = imported - set(sys.stdlib_module_names) - {"support", "smtp_ca", "__future__"}
    distributions = metadata.packages_distributions()
    pinned = set(_lock_entries(DEMO_LOCK))
    wanted: list[str] = []
    for module in sorted(third_party):
        assert module in distributions, f"the demo imports {module}, which is not installed"
        wanted.extend(str(canonicalize_name(d)) for d in distributions[module])
    assert "trustme" in wanted and "aiosmtpd" in wanted, wanted
    # Everything those need on this Python, as installed here from the dev lock.
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        assert name in pinned, f"the demo needs {name}; requirements-demo.lock lacks it"
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(str(canonicalize_name(requirement.name)))


# --- scripts/setup-demo without root --------------------------------------------------------


def _fake_machine(tmp_path: Path, *, uid: int, apt_get_fails: bool = False) -> dict[str, str]:
    """A PATH where ruby loads no Rails, python3 has no ensurepip, id says ``uid`` and apt-get
    records its arguments (and fails, if asked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = {
        "ruby": "exit 1",
        "python3": "exit 1",
        "id": f"echo {uid}",
        "apt-get": f'echo "$*" >>{tmp_path}/apt-get.calls\n'
        + ("echo 'E: no network here' >&2; exit 100" if apt_get_fails else "exit 0"),
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}


def _copy_of_the_setup(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("setup-demo", "setup-common.sh"):
        shutil.copy2(SCRIPTS / name, repo / "scripts" / name)
    shutil.copy2(DEMO_LOCK, repo / DEMO_LOCK.name)
    return repo


def test_setup_demo_without_root_names_the_packages_and_the_command_then_stops(
    tmp_path: Path,
) -> None:
    repo = _copy_of_the_setup(tmp_path)
    run = subprocess.run(
        ["bash", str(repo / "scripts" / "setup-demo")],
        env=_fake_machine(tmp_path, uid=1000),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run
    missing = "ruby-actionmailer ruby-railties python3-venv"
    assert f" !     Missing Debian packages: {missing}\n" in run.stderr
    assert f"apt-get update && apt-get install -y --no-install-recommends {missing}\n" in run.stderr
    assert "sudo" not in run.stdout + run.stderr
    assert not (tmp_path / "apt-get.calls").exists(), "apt-get ran without root"
    assert not (repo / ".venv").exists(), "set-up went on after naming the missing packages"


def test_setup_demo_as_root_says_what_it_installs_before_apt_runs(tmp_path: Path) -> None:
    repo = _copy_of_the_setup(tmp_path)
    run = subprocess.run(
        ["bash", str(repo / "scripts" / "setup-demo")],
        env=_fake_machine(tmp_path, uid=0, apt_get_fails=True),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run
    missing = "ruby-actionmailer ruby-railties python3-venv"
    assert run.stdout == f"-----> Installing Debian packages: {missing}\n"
    calls = (tmp_path / "apt-get.calls").read_text().splitlines()
    assert calls[0].endswith("update -qq"), calls
    assert " !     apt-get could not install: " + missing in run.stderr
    assert "E: no network here" in run.stderr  # apt's own words, shown only when it fails


# --- scripts/setup-dev: what each slice of the tests sets up -----------------------------------


def _setup_dev_run(tmp_path: Path, *arguments: str) -> list[str]:
    """scripts/setup-dev in a copy whose .ci/prepare-* only record that they ran, with .venv
    already installed, and mmdebstrap (which --all needs) and apt-get that record too: which
    preparations it runs. The other packages are there, as the tests that run this need them."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / ".ci").mkdir()
    for name in ("setup-dev", "setup-common.sh"):
        shutil.copy2(SCRIPTS / name, repo / "scripts" / name)
    shutil.copy2(DEV_LOCK, repo / DEV_LOCK.name)
    calls = tmp_path / "calls"
    for name in ("prepare-test-inputs", "prepare-lifecycle", "prepare-chroots", "prepare-pack"):
        (repo / ".ci" / name).write_text(f'#!/usr/bin/env bash\necho "{name} $*" >>"{calls}"\n')
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    lock_hash = hashlib.sha256(DEV_LOCK.read_bytes()).hexdigest()
    (repo / ".venv" / ".installed-requirements-dev.sha256").write_text(lock_hash + "\n")
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for tool in ("apt-get", "mmdebstrap"):
        (fakes / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >>"{calls}"\n')
        (fakes / tool).chmod(0o755)
    run = subprocess.run(
        ["bash", str(repo / "scripts" / "setup-dev"), *arguments],
        env={**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return [call.strip() for call in recorded if call.startswith("prepare-")]


def test_the_tests_setup_prepares_what_its_slice_runs_and_nothing_else(tmp_path: Path) -> None:
    """bash scripts/test makes no chroot, builds no lifecycle, installs no Docker and creates
    no user: --all does."""
    assert _setup_dev_run(tmp_path / "default") == ["prepare-test-inputs --demo"]
    everything = _setup_dev_run(tmp_path / "all", "--all")
    as_root = ["prepare-chroots", "prepare-pack"] if os.geteuid() == 0 else []
    assert everything == ["prepare-test-inputs", "prepare-lifecycle", *as_root]


# --- the demo itself --------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_demo_shows_the_bug_the_build_a_delivery_and_the_dyno_check() -> None:
    problem = ruby_rails_problem()
    if problem:
        skip_or_fail(f"{problem}: apt-get install -y ruby ruby-actionmailer ruby-railties")
    load_inputs()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    run = subprocess.run(
        [sys.executable, str(SCRIPTS / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    before, build, after, check = re.split(r"^=== \d\. ", output, flags=re.M)[1:]
    assert "DELIVERY-FAILED OpenSSL::SSL::SSLError" in before
    assert "certificate verify failed" in before
    assert "Not delivered: the bug." in before
    # ActionMailer's own "Delivered mail <id>" must not sit above DELIVERY-FAILED.
    assert "Delivered mail" not in output
    assert ": verified, TLSv1." in build
    assert "DELIVERED message_id=" in after
    assert "Delivered: the SMTP server received the mail over TLSv1." in after
    assert ": verified, TLSv1." in check
