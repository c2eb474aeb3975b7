"""heroku-26's build image, as near as Debian comes: bin/compile inside the sid chroot.

sid has python3.14 linked as python3 and no pip, like heroku-26. The buildpack fetches pip the
way it does on Heroku, through the chroot's own apt-get and dpkg, from sid's real python3-pip
(downloaded by .ci/prepare-chroots), served by a loopback apt repository; the cp314 wheels come
from the test inputs' wheelhouse (.ci/prepare-test-inputs). Builds share /cache, so a second
build is a warm one::

    with Heroku26Build(session, inputs, tmp_path / "apt") as heroku26:
        cold = heroku26.compile("cold", config_vars)
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from support.bundle_vars import pinned_bundle_vars
from support.chroots import SYSTEM_PATH, ChrootSession
from support.heroku import build_environment, clean_buildpack_copy, write_env_dir
from support.local_apt import LocalAptRepo, write_apt_config
from support.offline_inputs import Inputs

APT_DIR = "/opt/smtp-ca-tests/apt"
WHEELHOUSE = "/opt/smtp-ca-tests/wheelhouse"
SID_DEBS = "/opt/smtp-ca-tests/debs"  # where .ci/prepare-chroots put sid's python3-pip


class Heroku26Build:
    """The buildpack, the wheels and a loopback apt repository set up in a sid session."""

    def __init__(self, session: ChrootSession, inputs: Inputs, apt_dir: Path) -> None:
        self.session = session
        clean_buildpack_copy(session.path("/buildpack"))
        wheelhouse = session.path(WHEELHOUSE)
        wheelhouse.mkdir(parents=True)
        for wheel in inputs.wheelhouse.glob("*.whl"):
            if any(tag in wheel.name for tag in ("-cp314-", "-abi3-", "-py3-none-")):
                (wheelhouse / wheel.name).write_bytes(wheel.read_bytes())
        sid_pip = sorted(session.read(SID_DEBS).glob("python3-pip_*.deb"))
        if not sid_pip:
            raise AssertionError(
                "the sid chroot has no python3-pip .deb: remake it with .ci/prepare-chroots"
            )
        self.apt = LocalAptRepo(apt_dir, sid_pip)

    def bundle_vars(self, name: str, body: bytes) -> dict[str, str]:
        """Config vars for a bundle the build reads from a file:// URL, pinned."""
        self.session.write(f"/opt/smtp-ca-tests/{name}", body)
        return pinned_bundle_vars(f"file:///opt/smtp-ca-tests/{name}", body)

    def compile(
        self, name: str, config_vars: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """bin/compile with STACK=heroku-26: the app at /builds/<name>/build_0123abcd."""
        base = f"/builds/{name}"
        write_env_dir(self.session.path(f"{base}/env"), config_vars)
        self.session.path(f"{base}/build_0123abcd/config").mkdir(parents=True)
        self.session.path("/cache").mkdir(exist_ok=True)
        # The host's build environment, with the chroot's paths: sid's python3 is /usr/bin's,
        # and the session's PATH stays the chroot's own.
        env = build_environment(
            Path("/usr/bin"),
            Inputs(Path(WHEELHOUSE), []),
            Path(f"{APT_DIR}/apt.conf"),
            Path(f"{base}/home"),
            STACK="heroku-26",
            PATH=SYSTEM_PATH,
        )
        command = ["/buildpack/bin/compile", f"{base}/build_0123abcd", "/cache", f"{base}/env"]
        return self.session.run(command, env=env, timeout=600)

    def app(self, name: str) -> Path:
        """The host path of a build's app directory."""
        return self.session.path(f"/builds/{name}/build_0123abcd")

    def __enter__(self) -> Heroku26Build:
        self.apt.start()
        write_apt_config(self.session.path(APT_DIR), self.apt.url, seen_as=Path(APT_DIR))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.apt.stop()
