"""heroku-26's build image, as near as Debian comes: bin/compile inside the sid chroot.

sid has python3.14 linked as python3 and no pip, like heroku-26. The buildpack runs its own
pip wheel with that python3, with no apt-get and no network; the cp314 wheels come from the test
inputs' wheelhouse (.ci/prepare-test-inputs). Builds share /cache, so a second build is a warm
one::

    heroku26 = Heroku26Build(session, inputs)
    cold = heroku26.compile("cold", config_vars)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from support.bundle_vars import pinned_bundle_vars
from support.chroots import SYSTEM_PATH, ChrootSession
from support.heroku import build_environment, clean_buildpack_copy, write_env_dir
from support.offline_inputs import Inputs
from support.wrapped_log import LoggedProcess

WHEELHOUSE = "/opt/smtp-ca-tests/wheelhouse"


class Heroku26Build:
    """The buildpack and the wheels set up in a sid session."""

    def __init__(self, session: ChrootSession, inputs: Inputs) -> None:
        self.session = session
        clean_buildpack_copy(session.path("/buildpack"))
        wheelhouse = session.path(WHEELHOUSE)
        wheelhouse.mkdir(parents=True)
        for wheel in inputs.wheelhouse.glob("*.whl"):
            if any(tag in wheel.name for tag in ("-cp314-", "-abi3-", "-py3-none-")):
                (wheelhouse / wheel.name).write_bytes(wheel.read_bytes())

    def bundle_vars(self, name: str, body: bytes) -> dict[str, str]:
        """Config vars for a bundle the build reads from a file:// URL, pinned."""
        self.session.write(f"/opt/smtp-ca-tests/{name}", body)
        return pinned_bundle_vars(f"file:///opt/smtp-ca-tests/{name}", body)

    def compile(self, name: str, config_vars: Mapping[str, str]) -> LoggedProcess:
        """bin/compile with STACK=heroku-26: the app at /builds/<name>/build_0123abcd. Its
        ``stdout`` and ``stderr`` with the log's wrapped lines joined back, ``raw_stdout`` and
        ``raw_stderr`` as printed (support.wrapped_log)."""
        base = f"/builds/{name}"
        write_env_dir(self.session.path(f"{base}/env"), config_vars)
        self.session.path(f"{base}/build_0123abcd/config").mkdir(parents=True)
        self.session.path("/cache").mkdir(exist_ok=True)
        # The host's build environment, with the chroot's paths: sid's python3 is /usr/bin's,
        # and the session's PATH stays the chroot's own.
        env = build_environment(
            Path("/usr/bin"),
            Inputs(Path(WHEELHOUSE)),
            Path(f"{base}/home"),
            STACK="heroku-26",
            PATH=SYSTEM_PATH,
        )
        command = ["/buildpack/bin/compile", f"{base}/build_0123abcd", "/cache", f"{base}/env"]
        return LoggedProcess(self.session.run(command, env=env, timeout=600))

    def app(self, name: str) -> Path:
        """The host path of a build's app directory."""
        return self.session.path(f"/builds/{name}/build_0123abcd")
