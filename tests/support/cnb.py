"""Runs the buildpack as a Cloud Native Buildpack, with the CNB lifecycle's own binaries.

``.ci/prepare-lifecycle`` builds the lifecycle at the version ``.ci/lifecycle/go.mod`` pins into
``<test inputs>/lifecycle/<version>/``: ``detector`` and ``builder`` (the ``lifecycle`` binary,
which picks its phase from argv[0]) and ``launcher``. This module lays out a platform on plain
directories the way those phases want it and runs them:

* ``buildpacks/<id with / as _>/<version>/``: a clean copy of this buildpack (what a packaged
  buildpack image holds), and a small probe buildpack that runs after it in the same group and
  records what a later buildpack sees (``env.build``);
* ``order.toml`` with one group, the probe optional;
* ``platform/env/``: the config vars, one file each (what Heroku Fir and ``pack build --env``
  give a build), plus the test machine's offline pip and apt settings, which reach
  ``bin/build`` the same way because the lifecycle passes buildpacks no other variable;
* ``app/`` (the working directory of ``bin/build``, and of the process at launch) and
  ``layers/`` with an ``analyzed.toml`` that names Ubuntu 24.04 as the run image's distro, so
  the lifecycle sets ``CNB_TARGET_DISTRO_*`` as on heroku-24 although this host is Debian.

``detector`` and ``builder`` refuse to run as root: when the tests run as root, every phase
runs as the unprivileged ``smtp-ca-cnb`` user (made by .ci/prepare-lifecycle), and the
directories it writes are given to that user. The launcher then starts a process the way Fir
starts a dyno: the layers' launch env applied, in the app directory.

What this does not run: the analyzer, restorer and exporter, which need an image registry or
daemon. :func:`restore_layers` stands in for the restorer between two builds: it brings back
the ``cache = true`` layers with their contents and every layer's metadata without its types,
as the restorer does. Nothing here deploys to Heroku Fir itself.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.heroku import clean_buildpack_copy
from support.offline_inputs import REPO, inputs_root, skip_or_fail
from support.slices import require
from support.wrapped_log import unwrap

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file the lifecycle or a buildpack wrote (group.toml, a layer's declaration)."""
    with path.open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return data


LIFECYCLE_USER = "smtp-ca-cnb"
# The newest Platform API the pinned lifecycle (0.21) supports.
PLATFORM_API = "0.15"
GO_MOD = REPO / ".ci" / "lifecycle" / "go.mod"
PROBE_ID = "smtp-ca-tests/later"
PROBE_VERSION = "0.0.1"
# Written by the probe buildpack: what SMTP_CA_FILE was in a later buildpack's build.
PROBE_REPORT = "later-buildpack-saw.txt"


def lifecycle_version() -> str:
    for line in GO_MOD.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "github.com/buildpacks/lifecycle":
            return words[1].removeprefix("v")
    raise AssertionError(f"{GO_MOD} requires no github.com/buildpacks/lifecycle")


def buildpack_descriptor() -> tuple[str, str]:
    """This buildpack's id and version, from buildpack.toml."""
    with (REPO / "buildpack.toml").open("rb") as handle:
        descriptor = tomllib.load(handle)["buildpack"]
    return str(descriptor["id"]), str(descriptor["version"])


@dataclass(frozen=True)
class Account:
    """Whom the phases run as: the unprivileged user when the tests run as root."""

    uid: int
    gid: int
    home: Path

    @property
    def is_current(self) -> bool:
        return self.uid == os.getuid()

    def give(self, *paths: Path) -> None:
        """Makes ``paths`` (recursively) the account's, so the phases can write there."""
        if self.is_current:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)
            for directory, names, files in os.walk(path):
                for name in [*names, *files]:
                    os.chown(Path(directory) / name, self.uid, self.gid, follow_symlinks=False)

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        extra = {} if self.is_current else {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run(
            [str(arg) for arg in argv],
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
            **extra,  # type: ignore[arg-type]
        )


def lifecycle_account() -> Account:
    if os.getuid() != 0:
        entry = pwd.getpwuid(os.getuid())
        return Account(entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))
    try:
        entry = pwd.getpwnam(LIFECYCLE_USER)
    except KeyError:
        skip_or_fail(
            f"needs the user {LIFECYCLE_USER} (the CNB detector and builder refuse to run as "
            "root): run `bash .ci/prepare-lifecycle` as root"
        )
        raise
    return Account(entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


@dataclass(frozen=True)
class Lifecycle:
    version: str
    bin_dir: Path
    account: Account

    @property
    def detector(self) -> Path:
        return self.bin_dir / "detector"

    @property
    def builder(self) -> Path:
        return self.bin_dir / "builder"

    @property
    def launcher(self) -> Path:
        return self.bin_dir / "launcher"

    def copied_to(self, directory: Path) -> Lifecycle:
        """The same binaries in ``directory``, which the phases' user can reach (a checkout
        under /root or a private temporary directory is out of its reach)."""
        make_reachable(directory)
        for name in ("lifecycle", "launcher"):
            shutil.copy2(self.bin_dir / name, directory / name)
        for phase in ("detector", "builder"):
            (directory / phase).symlink_to("lifecycle")
        return Lifecycle(self.version, directory, self.account)


def find_lifecycle() -> Lifecycle:
    """The lifecycle .ci/prepare-lifecycle built; a skip (a failure with CI=true) if none."""
    require("needs_lifecycle", "runs the CNB lifecycle")
    version = lifecycle_version()
    bin_dir = inputs_root() / "lifecycle" / version
    if not all((bin_dir / name).is_file() for name in ("lifecycle", "launcher", "builder")):
        skip_or_fail(
            f"needs the CNB lifecycle {version} in {bin_dir}: run `bash .ci/prepare-lifecycle` "
            "(with a Go of 1.21 or later on PATH)"
        )
    return Lifecycle(version, bin_dir, lifecycle_account())


@contextmanager
def open_scratch(prefix: str) -> Iterator[Path]:
    """A directory the lifecycle's user can reach (pytest's own are private to root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def make_reachable(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def pipless_python_base(account: Account) -> Path:
    """An interpreter the lifecycle's user can run, of the tests' own version (the wheelhouse
    holds wheels for that one): the tests' interpreter itself, or the system's python3."""
    wanted = sys.implementation.cache_tag
    probe = "import ssl, sys; print(sys.implementation.cache_tag)"
    for candidate in (Path(sys.executable).resolve(), Path("/usr/bin/python3")):
        if not candidate.is_file():
            continue
        try:
            completed = account.run([candidate, "-c", probe], env={"PATH": "/usr/bin:/bin"})
        except OSError:  # a directory on the way is private to root (pyenv under /root)
            continue
        if completed.returncode == 0 and completed.stdout.strip() == wanted:
            return candidate
    skip_or_fail(
        f"needs a {wanted} interpreter that the user {LIFECYCLE_USER} can run (the tests' own is "
        f"{sys.executable}): run `apt-get install python3` for /usr/bin/python3"
    )


# --- the platform's directories -------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One build's directories, as the lifecycle's -flags name them."""

    root: Path
    buildpacks: Path

    @property
    def order(self) -> Path:
        return self.root / "order.toml"

    @property
    def platform(self) -> Path:
        return self.root / "platform"

    @property
    def app(self) -> Path:
        return self.root / "app"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def analyzed(self) -> Path:
        return self.layers / "analyzed.toml"

    @property
    def group(self) -> Path:
        return self.layers / "group.toml"

    @property
    def plan(self) -> Path:
        return self.layers / "plan.toml"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def buildpack_layers(self, buildpack_id: str) -> Path:
        return self.layers / buildpack_id.replace("/", "_")


ANALYZED_TOML = """\
[run-image]
  reference = ""
  [run-image.target]
    os = "linux"
    arch = "{arch}"
    [run-image.target.distro]
      name = "{distro}"
      version = "{version}"
"""

PROBE_BUILDPACK_TOML = f"""\
api = "0.10"

[buildpack]
  id = "{PROBE_ID}"
  version = "{PROBE_VERSION}"
  name = "Probe: what a later buildpack sees"
"""

PROBE_DETECT = "#!/usr/bin/env bash\nexit 0\n"
PROBE_BUILD = f"""\
#!/usr/bin/env bash
set -euo pipefail
printf '%s' "${{SMTP_CA_FILE-<unset>}}" >"$CNB_LAYERS_DIR/../{PROBE_REPORT}"
"""


def go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def install_buildpacks(directory: Path, buildpack: Path | None = None) -> Path:
    """A buildpacks directory as a builder image holds one: a clean copy of this buildpack (or
    of ``buildpack``) and the probe, each at ``<id with / as _>/<version>/``.

    The directory can serve any number of builds: on a builder it is read-only, at a path that
    does not change (which is what keeps the buildpack's bytecode cache warm).
    """
    make_reachable(directory)
    bp_id, bp_version = buildpack_descriptor()
    ours = make_reachable(directory / bp_id.replace("/", "_")) / bp_version
    if buildpack is None:
        clean_buildpack_copy(ours)
    else:
        shutil.copytree(buildpack, ours, symlinks=True)
    ours.chmod(0o755)
    probe = make_reachable(directory / PROBE_ID.replace("/", "_")) / PROBE_VERSION
    make_reachable(probe / "bin")
    (probe / "buildpack.toml").write_text(PROBE_BUILDPACK_TOML)
    for name, text in (("detect", PROBE_DETECT), ("build", PROBE_BUILD)):
        (probe / "bin" / name).write_text(text)
        (probe / "bin" / name).chmod(0o755)
    return directory


def lay_out(
    root: Path,
    *,
    config_vars: Mapping[str, str],
    build_settings: Mapping[str, str],
    account: Account,
    buildpacks: Path | None = None,
    app: Path | None = None,
    layers_from: Path | None = None,
    with_buildpack: bool = True,
    probe: bool = True,
    distro: tuple[str, str] = ("ubuntu", "24.04"),
) -> Layout:
    """Makes one build's directories under ``root``.

    ``buildpacks`` is a directory from :func:`install_buildpacks` (default: a new one under
    ``root``). ``config_vars`` and ``build_settings`` both become files in ``platform/env/``.
    ``app`` is moved in as the app directory (default: an empty one); ``layers_from`` is the
    layers directory of a previous build, restored as the restorer would. Without
    ``with_buildpack``, the group holds only the probe: the same app, built without this
    buildpack. Without ``probe``, the group holds only this buildpack.
    """
    make_reachable(root)
    layout = Layout(root, buildpacks or install_buildpacks(root / "buildpacks"))
    bp_id, bp_version = buildpack_descriptor()
    group = []
    if with_buildpack:
        group.append(f'  [[order.group]]\n    id = "{bp_id}"\n    version = "{bp_version}"\n')
    if probe or not with_buildpack:
        group.append(
            f'  [[order.group]]\n    id = "{PROBE_ID}"\n    version = "{PROBE_VERSION}"\n'
            "    optional = true\n"
        )
    layout.order.write_text("[[order]]\n" + "".join(group))
    env_dir = make_reachable(layout.platform / "env")
    for name, value in {**build_settings, **config_vars}.items():
        (env_dir / name).write_text(value)
    if app is None:
        layout.app.mkdir()
    else:
        shutil.move(str(app), str(layout.app))
    layout.layers.mkdir()
    layout.home.mkdir()
    if layers_from is not None:
        restore_layers(layers_from, layout.layers)
    name, version = distro
    layout.analyzed.write_text(ANALYZED_TOML.format(arch=go_arch(), distro=name, version=version))
    account.give(layout.app, layout.layers, layout.home)
    return layout


def restore_layers(previous: Path, layers: Path) -> None:
    """What the restorer leaves for the next build of each buildpack: every layer's
    ``<name>.toml`` with its ``[metadata]`` only (types are the buildpack's to set again), and
    the contents of the layers that were ``cache = true``."""
    for buildpack_layers in previous.iterdir():
        if not buildpack_layers.is_dir() or buildpack_layers.name in ("config", "sbom"):
            continue
        for descriptor in buildpack_layers.glob("*.toml"):
            if descriptor.name == "store.toml":
                continue
            data = read_toml(descriptor)
            # The buildpack keeps no layer metadata, so the restored file is just empty.
            assert not data.get("metadata"), f"{descriptor} has metadata the harness drops"
            target = layers / buildpack_layers.name
            target.mkdir(exist_ok=True)
            (target / descriptor.name).write_text("")
            contents = descriptor.with_suffix("")
            if data.get("types", {}).get("cache") and contents.is_dir():
                shutil.copytree(contents, target / contents.name, symlinks=True)


# --- the phases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildRun:
    layout: Layout
    detect: subprocess.CompletedProcess[str]
    build: subprocess.CompletedProcess[str] | None

    @property
    def returncode(self) -> int:
        if self.detect.returncode != 0 or self.build is None:
            return self.detect.returncode
        return self.build.returncode

    @property
    def output(self) -> str:
        """Everything the phases printed, the log's wrapped lines joined back
        (support.wrapped_log)."""
        return unwrap(self.raw_output)

    @property
    def raw_output(self) -> str:
        parts = [self.detect.stdout, self.detect.stderr]
        if self.build is not None:
            parts += [self.build.stdout, self.build.stderr]
        return "".join(parts)

    @property
    def build_output(self) -> str:
        """What the builder printed: the buildpacks' stdout and stderr, both on its stdout;
        the log's wrapped lines joined back."""
        return unwrap(self.raw_build_output)

    @property
    def raw_build_output(self) -> str:
        assert self.build is not None, self.output
        return self.build.stdout + self.build.stderr

    @property
    def later_buildpack_saw(self) -> str | None:
        report = self.layout.layers / PROBE_REPORT
        return report.read_text() if report.exists() else None


def lifecycle_env(layout: Layout, path: str, **extra: str) -> dict[str, str]:
    """The lifecycle's own environment; of it, buildpacks get only PATH-like variables, HOME
    and proxies (everything else comes from platform/env)."""
    return {
        "CNB_PLATFORM_API": PLATFORM_API,
        "PATH": path,
        "HOME": str(layout.home),
        "LANG": "C.UTF-8",
        **extra,
    }


def phase_argv(lifecycle: Lifecycle, layout: Layout, phase: str) -> list[str | Path]:
    """``detector`` or ``builder`` with the flags a platform passes them."""
    common: list[str | Path] = [
        "-app", layout.app,
        "-buildpacks", layout.buildpacks,
        "-layers", layout.layers,
        "-platform", layout.platform,
        "-analyzed", layout.analyzed,
        "-group", layout.group,
        "-plan", layout.plan,
    ]  # fmt: skip
    if phase == "detector":
        return [lifecycle.detector, *common, "-order", layout.order]
    assert phase == "builder", phase
    return [lifecycle.builder, *common]


def run_phases(lifecycle: Lifecycle, layout: Layout, path: str) -> BuildRun:
    """``detector`` then (when it passed) ``builder``."""
    env = lifecycle_env(layout, path)
    account = lifecycle.account
    detect = account.run(phase_argv(lifecycle, layout, "detector"), env=env)
    if detect.returncode != 0:
        return BuildRun(layout, detect, None)
    build = account.run(phase_argv(lifecycle, layout, "builder"), env=env)
    return BuildRun(layout, detect, build)


def launch(
    lifecycle: Lifecycle,
    layout: Layout,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    direct: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Starts ``command`` through the launcher, as a dyno starts: ``env`` is the dyno's
    environment (config vars included); the launcher adds the layers' launch env and runs the
    command in the app directory.

    ``direct``: ``launcher -- COMMAND``, executed as is. Without it, ``launcher COMMAND``, which
    the launcher runs through bash (sourcing the layers' profile.d): what ``heroku run COMMAND``
    runs on a Fir app, whose CLI prepends ``launcher`` to the command."""
    separator = ["--"] if direct else []
    run_env = {
        **env,
        "CNB_PLATFORM_API": PLATFORM_API,
        "CNB_LAYERS_DIR": str(layout.layers),
        "CNB_APP_DIR": str(layout.app),
    }
    return lifecycle.account.run(
        [lifecycle.launcher, *separator, *command], env=run_env, cwd=layout.app, timeout=timeout
    )
