"""Everything outside the buildpack that a CNB build under test needs, as one reusable fixture.

The CNB twin of support.world: the real lifecycle (support.cnb), a pip-less python3 (heroku-24's
build image has python3 without pip), the local wheelhouse, and a local HTTPS server standing in
for the CA's website. One cold build fills the
buildpack's cache layer; each build then starts from those layers, restored as the restorer
restores them::

    with open_cnb_world(root) as world:
        run = world.build("name", {**world.bundle_vars("/bundle.crt", pem), ...}, app=app_dir)
        shown = world.launch(run.layout, ["bash", "-c", "echo $SMTP_CA_FILE"], env={})

Everything lives in a directory the lifecycle's unprivileged user can reach.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.bundle_vars import pinned_bundle_vars
from support.cnb import (
    BuildRun,
    Layout,
    Lifecycle,
    find_lifecycle,
    install_buildpacks,
    launch,
    lay_out,
    make_reachable,
    open_scratch,
    pipless_python_base,
    run_phases,
)
from support.godaddy import GODADDY_PEM, GODADDY_SHA256
from support.heroku import build_environment
from support.http_server import LocalServer
from support.offline_inputs import Inputs, load_inputs
from support.pipless_python import make_pipless_python
from support.world import open_bundle_server


@dataclass
class CnbWorld:
    lifecycle: Lifecycle
    inputs: Inputs
    root: Path
    python_bin: Path
    bundle_server: LocalServer
    bundle_host_ca: Path
    buildpacks: Path
    warm_layers: Path | None = None
    builds: int = 0

    def bundle_vars(self, path: str, body: bytes, **options: Any) -> dict[str, str]:
        """Config vars for a bundle published at ``path`` (options as in ``Reply``), pinned."""
        self.bundle_server.serve(path, body, **options)
        return pinned_bundle_vars(self.bundle_server.url(path), body)

    @property
    def path(self) -> str:
        """PATH of the build: the pip-less python3 first, as on the build image."""
        return f"{self.python_bin}:/usr/local/bin:/usr/bin:/bin"

    def build_settings(self, *, offline: bool = False) -> dict[str, str]:
        """The local pip settings, which reach bin/build through platform/env.

        ``offline``: an empty wheelhouse, so a build that needed it would fail.
        """
        inputs = self.inputs
        if offline:
            inputs = Inputs(make_reachable(make_reachable(self.root / "offline") / "wheelhouse"))
        env = build_environment(
            self.python_bin,
            inputs,
            self.root / "unused-home",
            REQUESTS_CA_BUNDLE=str(self.bundle_host_ca),
        )
        return {name: value for name, value in env.items() if name not in ("PATH", "HOME")}

    def lay_out(
        self,
        name: str,
        config_vars: Mapping[str, str],
        *,
        app: Path | None = None,
        layers_from: Path | None = None,
        cold: bool = False,
        offline: bool = False,
        with_buildpack: bool = True,
        probe: bool = True,
        distro: tuple[str, str] = ("ubuntu", "24.04"),
    ) -> Layout:
        """One build's directories. Its layers are restored from ``layers_from``, a previous
        build's layers, by default the warm ones of the world's cold build; none if ``cold``."""
        self.builds += 1
        previous = None if cold else layers_from or self.warm_layers
        return lay_out(
            self.root / f"{self.builds:02d}-{name}",
            config_vars=config_vars,
            build_settings=self.build_settings(offline=offline),
            account=self.lifecycle.account,
            buildpacks=self.buildpacks,
            app=app,
            layers_from=previous,
            with_buildpack=with_buildpack,
            probe=probe,
            distro=distro,
        )

    def run(self, layout: Layout) -> BuildRun:
        return run_phases(self.lifecycle, layout, self.path)

    def build(
        self,
        name: str,
        config_vars: Mapping[str, str],
        *,
        app: Path | None = None,
        layers_from: Path | None = None,
        cold: bool = False,
        offline: bool = False,
        with_buildpack: bool = True,
        probe: bool = True,
        distro: tuple[str, str] = ("ubuntu", "24.04"),
    ) -> BuildRun:
        layout = self.lay_out(
            name,
            config_vars,
            app=app,
            layers_from=layers_from,
            cold=cold,
            offline=offline,
            with_buildpack=with_buildpack,
            probe=probe,
            distro=distro,
        )
        return self.run(layout)

    def launch(
        self,
        layout: Layout,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        direct: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return launch(self.lifecycle, layout, command, env=env, direct=direct)


@contextmanager
def open_cnb_world() -> Iterator[CnbWorld]:
    found = find_lifecycle()
    found_inputs = load_inputs()
    with open_scratch("smtp-ca-cnb-") as root:
        # What the phases' user reads is copied where it can reach it: the checkout may not be.
        lifecycle = found.copied_to(root / "lifecycle")
        wheelhouse = root / "wheelhouse"
        shutil.copytree(found_inputs.wheelhouse, wheelhouse)
        inputs = Inputs(wheelhouse)
        python = make_pipless_python(
            make_reachable(root / "tools") / "python",
            base=pipless_python_base(lifecycle.account),
        )
        with open_bundle_server(root, public_roots=False) as (bundle_server, host_ca_file):
            world = CnbWorld(
                lifecycle,
                inputs,
                root,
                python.parent,
                bundle_server,
                host_ca_file,
                # One buildpacks directory for every build, at one path, as on a builder.
                install_buildpacks(root / "buildpacks"),
            )
            # One cold build fills the cache layer that the other builds start from, with the
            # real GoDaddy bundle (served over HTTPS: the checkout may be out of reach).
            godaddy = world.bundle_vars("/gd_bundle-g2-g1.crt", GODADDY_PEM)
            assert godaddy["SMTP_CA_BUNDLE_SHA256"] == GODADDY_SHA256
            cold = world.build("cold", godaddy, cold=True)
            assert cold.returncode == 0, cold.output
            world.warm_layers = cold.layout.layers
            yield world
