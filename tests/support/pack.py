"""A real ``pack build`` of the buildpack, with Docker, and the exported image run by docker.

.ci/prepare-pack makes what this needs (``bash .ci/prepare-pack``, as root; scripts/setup-dev
--all runs it): Debian's docker.io, ``pack`` from its Go module, a base image (a Debian rootfs with
python3, ruby and ActionMailer, the CNB user, labelled Ubuntu 24.04 as heroku-24) and the
lifecycle as a tgz and as an image. The daemon is .ci/test-dockerd's: its own socket and data
root, no network of its own, so every container runs with ``--network host`` and reaches the
tests' loopback servers.

This module adds the builder of this checkout: the base image as build and run image, the
lifecycle tgz, and a clean copy of the buildpack (what the packaged buildpack holds). It is
made once per content and reused. Builds install offline: the local wheelhouse is mounted into
the build (``--volume``) and named by ``--env``, as a Fir user's PIP_* config vars would be.

Config vars reach ``pack`` as ``--env NAME`` with the value in pack's environment, so no secret
is ever on a command line.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from support.cnb import buildpack_descriptor, make_reachable, open_scratch
from support.heroku import clean_buildpack_copy
from support.offline_inputs import REPO, inputs_root, last_line, load_inputs, skip_or_fail
from support.slices import require
from support.wrapped_log import unwrap

ENABLE = "bash .ci/prepare-pack (as root; scripts/setup-dev --all runs it)"
WHY = "tests/e2e/test_pack.py runs a real pack build with Docker"
DOCKER = Path("/usr/bin/docker")  # Debian's client, of the daemon's own API version
# Where the build finds the offline inputs, mounted read-only.
MOUNT = "/smtp-ca-test-inputs"
BUILDER_REPOSITORY = "smtp-ca-test/builder"
TIMEOUT = 600


def _missing(problem: str) -> None:
    skip_or_fail(f"{WHY}: {problem}; run {ENABLE}")


@dataclass(frozen=True)
class PackTools:
    pack: Path
    base_image: str
    lifecycle_image: str
    lifecycle_tgz: Path
    docker_host: str
    home: Path  # pack's and docker's own configuration, private to the run

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "PACK_HOME": str(self.home / "pack"),
            "DOCKER_CONFIG": str(self.home / "docker"),
            "DOCKER_HOST": self.docker_host,
            # pack keeps each image it exports to the daemon in a directory of TMPDIR
            # (imgutil.local.image.*) and leaves it there: inside the run's scratch, it goes too.
            "TMPDIR": str(self.home / "tmp"),
            # Names the volumes of pack's own caches the same way on every run.
            "PACK_VOLUME_KEY": "smtp-ca-tests",
            "LANG": "C.UTF-8",
            **(extra or {}),
        }

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(arg) for arg in argv],
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def pack_run(
        self, *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return self.run([self.pack, "--no-color", *args], env=env, timeout=timeout)

    def docker(
        self, *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return self.run([DOCKER, *args], env=env, timeout=timeout)

    def image_exists(self, image: str) -> bool:
        return self.docker("image", "inspect", image, timeout=60).returncode == 0


def _prepared_names() -> dict[str, str]:
    names = subprocess.run(
        ["bash", str(REPO / ".ci" / "prepare-pack"), "--names", str(inputs_root())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if names.returncode != 0:
        _missing(f".ci/prepare-pack --names failed: {last_line(names.stderr)}")
    return dict(line.split("=", 1) for line in names.stdout.splitlines() if "=" in line)


# Held while the daemon is in use, by the tests and by .ci/prepare-pack: one user at a time, so
# that none stops the daemon under another, and the fixed image names never collide.
DAEMON_LOCK = Path("/run/smtp-ca-test-docker.lock")
LOCK_WAIT = 900.0


@contextmanager
def _daemon_lock() -> Iterator[None]:
    with DAEMON_LOCK.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{DAEMON_LOCK} was held for {LOCK_WAIT:.0f} s: another run of the pack "
                        "tests or .ci/prepare-pack did not finish"
                    ) from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def open_docker() -> Iterator[str]:
    """The tests' daemon (DOCKER_HOST); started if it was not running, and then stopped again:
    only the daemon started here, by its own pidfile."""
    require("needs_docker", "uses Docker")
    if os.getuid() != 0:
        _missing("not root (dockerd and the builds need root)")
    if not DOCKER.is_file() or shutil.which("dockerd") is None:
        _missing(f"{DOCKER} or dockerd is missing (Debian's docker.io)")
    with _daemon_lock():
        yield from _started_docker()


def _started_docker() -> Iterator[str]:
    daemon = REPO / ".ci" / "test-dockerd"
    started = subprocess.run(
        ["bash", str(daemon), "start"], capture_output=True, text=True, timeout=120, check=False
    )
    if started.returncode != 0:
        # .ci/test-dockerd's last line names the daemon's log, which stays for a look.
        _missing(f"the Docker daemon did not start: {last_line(started.stderr)}")
    socket = subprocess.run(
        ["bash", str(daemon), "socket"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    try:
        yield socket
    finally:
        if started.stdout.strip() == "started":
            subprocess.run(["bash", str(daemon), "stop"], timeout=60, check=False)


def find_pack_tools(docker_host: str, home: Path) -> PackTools:
    names = _prepared_names()
    tools = PackTools(
        Path(names["pack"]),
        names["base_image"],
        names["lifecycle_image"],
        Path(names["lifecycle_tgz"]),
        docker_host,
        make_reachable(home),
    )
    make_reachable(home / "tmp")
    if not tools.pack.is_file():
        _missing(f"pack is not at {tools.pack}")
    if not tools.lifecycle_tgz.is_file():
        _missing(f"the lifecycle tgz is not at {tools.lifecycle_tgz}")
    for image in (tools.base_image, tools.lifecycle_image):
        if not tools.image_exists(image):
            _missing(f"the image {image} is not in the daemon")
    return tools


BUILDER_TOML = """\
description = "heroku-buildpack-smtp-ca tests: Debian base images labelled Ubuntu 24.04"
{buildpacks}
[lifecycle]
  uri = "{lifecycle}"

[build]
  image = "{base}"

[run]
  [[run.images]]
    image = "{base}"

[[targets]]
  os = "linux"
  arch = "amd64"
"""

WITH_BUILDPACK = """
[[buildpacks]]
  uri = "{buildpack}"

[[order]]
  [[order.group]]
    id = "{bp_id}"
    version = "{bp_version}"
"""


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(f"{path.stat().st_mode & 0o777:o}".encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def make_builder(tools: PackTools, scratch: Path, *, with_buildpack: bool = True) -> str:
    """The builder of this checkout's buildpack, or (``with_buildpack=False``) a builder that
    holds no buildpack, as heroku/builder:24 holds none of this one. Made when its content is
    new, else reused; builders of older content are removed, so they do not pile up."""
    if with_buildpack:
        buildpack = clean_buildpack_copy(scratch / "builder-buildpack")
        bp_id, bp_version = buildpack_descriptor()
        content = _tree_digest(buildpack)
        buildpacks = WITH_BUILDPACK.format(buildpack=buildpack, bp_id=bp_id, bp_version=bp_version)
        repository = BUILDER_REPOSITORY
    else:
        content, buildpacks, repository = "", "", f"{BUILDER_REPOSITORY}-bare"
    key = hashlib.sha256(
        f"{content} {tools.base_image} {tools.lifecycle_tgz.name}".encode()
    ).hexdigest()[:12]
    builder = f"{repository}:{key}"
    if tools.image_exists(builder):
        return builder
    config = scratch / f"{repository.rsplit('/', 1)[1]}.toml"
    config.write_text(
        BUILDER_TOML.format(
            buildpacks=buildpacks, lifecycle=tools.lifecycle_tgz, base=tools.base_image
        )
    )
    created = tools.pack_run(
        "builder", "create", builder, "--config", config, "--pull-policy", "never"
    )
    assert created.returncode == 0, created.stdout + created.stderr
    listed = tools.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository)
    for old in listed.stdout.split():
        if old != builder:
            tools.docker("rmi", old)
    return builder


@dataclass
class PackRun:
    """One ``pack build``: its exit status and output (stdout and stderr together), the log's
    wrapped lines joined back in ``output`` (support.wrapped_log), as printed in
    ``raw_output``."""

    image: str
    returncode: int
    raw_output: str

    @property
    def output(self) -> str:
        return unwrap(self.raw_output)


@dataclass
class PackWorld:
    """The parts every pack build of a test run shares."""

    tools: PackTools
    builder: str
    bare_builder: str
    root: Path
    offline_settings: dict[str, str]
    online_settings: dict[str, str]
    volume: str
    images: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def build(
        self,
        image: str,
        app: Path,
        config_vars: Mapping[str, str],
        *,
        cache: str,
        clear_cache: bool = False,
        offline: bool = False,
        builder: str | None = None,
        extra: Sequence[str] = (),
    ) -> PackRun:
        """``pack build IMAGE`` of ``app`` with the config vars as --env; the build cache is the
        docker volume ``cache`` (kept between builds of the same name, as a platform keeps one
        per app)."""
        settings = self.offline_settings if offline else self.online_settings
        variables = {**settings, **config_vars}
        argv: list[str | Path] = [
            "build", image,
            "--builder", builder or self.builder,
            "--path", app,
            "--pull-policy", "never",
            "--network", "host",
            "--trust-builder",
            # The lifecycle's containers reach this daemon, not /var/run/docker.sock.
            "--docker-host", "inherit",
            "--volume", self.volume,
            "--cache", f"type=build;format=volume;name={cache}",
        ]  # fmt: skip
        if clear_cache:
            argv.append("--clear-cache")
        for name in variables:
            argv += ["--env", name]
        argv += list(extra)
        if image not in self.images:
            self.images.append(image)
        if cache not in self.volumes:
            self.volumes.append(cache)
        done = self.tools.pack_run(*argv, env=variables)
        return PackRun(image, done.returncode, done.stdout + done.stderr)

    def launch(
        self, image: str, command: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """``docker run --rm --network host --entrypoint /cnb/lifecycle/launcher IMAGE --
        COMMAND``: the process as Fir starts it, the layers' launch env applied. The dyno's
        config vars are passed by name (``-e NAME``), their values in docker's environment."""
        argv: list[str | Path] = ["run", "--rm", "--network", "host"]
        for name in env:
            argv += ["-e", name]
        argv += ["--entrypoint", "/cnb/lifecycle/launcher", image, "--", *command]
        return self.tools.docker(*argv, env=dict(env), timeout=180)

    def clean_up(self) -> None:
        for image in self.images:
            self.tools.docker("rmi", "--force", image, timeout=120)
        # The build caches named here, and the launch caches pack names after each image.
        launch_caches = self.tools.docker(
            "volume", "ls", "--quiet", "--filter", "name=pack-cache-smtp-ca-test_", timeout=60
        ).stdout.split()
        for volume in [*self.volumes, *launch_caches]:
            self.tools.docker("volume", "rm", "--force", volume, timeout=60)
        self.tools.docker("image", "prune", "--force", timeout=120)


def _build_settings(wheelhouse: str) -> dict[str, str]:
    """What a Fir user would set to install offline: the wheels from a wheelhouse."""
    return {
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": wheelhouse,
        "PIP_ROOT_USER_ACTION": "ignore",
    }


@contextmanager
def open_pack_world() -> Iterator[PackWorld]:
    with open_docker() as docker_host, open_scratch("smtp-ca-pack-") as root:
        tools = find_pack_tools(docker_host, root / "home")
        inputs = load_inputs()
        builder = make_builder(tools, root)
        bare_builder = make_builder(tools, root, with_buildpack=False)
        # What the build reads is in one directory, mounted read-only: the build runs as the
        # CNB user, so every part of it is world-readable.
        shared = make_reachable(root / "inputs")
        shutil.copytree(inputs.wheelhouse, shared / "wheelhouse")
        make_reachable(shared / "empty-wheelhouse")
        for path in shared.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        world = PackWorld(
            tools,
            builder,
            bare_builder,
            root,
            offline_settings=_build_settings(f"{MOUNT}/empty-wheelhouse"),
            online_settings=_build_settings(f"{MOUNT}/wheelhouse"),
            volume=f"{shared}:{MOUNT}:ro",
        )
        try:
            yield world
        finally:
            world.clean_up()
