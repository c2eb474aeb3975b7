"""Heroku's classic buildpack API: ``bin/compile BUILD_DIR CACHE_DIR ENV_DIR``.

- Config vars are not in the environment during the build: each is a file in ENV_DIR.
- CACHE_DIR is shared with the app's other buildpacks: this one keeps to CACHE_DIR/smtp-ca.
- The app is built in /tmp/build_<hash> and runs at /app ($HOME on the dyno): runtime files
  name the bundle through $HOME, never through the build path.
- At dyno start bash sources .profile.d/*.sh after the config vars are set; the buildpacks that
  run later in the same build source this buildpack's ``export`` file, beside its bin/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from smtp_ca.cache.layout import CLASSIC_CACHE_RESET_HINT, CLASSIC_NAMESPACE
from smtp_ca.cache.owner import refuse_link
from smtp_ca.errors import BuildError
from smtp_ca.platforms import RuntimeFile

PROFILE_PATH = ".profile.d/smtp-ca.sh"
EXPORT_NAME = "export"


@dataclass(frozen=True)
class ClassicPlatform:
    app_dir: Path
    cache_dir: Path
    config_dir: Path | None
    buildpack_dir: Path
    config_dir_name: str = "ENV_DIR"
    cache_dir_name: str = "CACHE_DIR"
    cache_reset_hint: str = CLASSIC_CACHE_RESET_HINT

    @classmethod
    def from_arguments(
        cls, build_dir: str, cache_dir: str, env_dir: str | None, *, buildpack_dir: Path
    ) -> ClassicPlatform:
        """The platform ``bin/compile``'s arguments describe, checked before any work."""
        app = Path(build_dir).resolve()
        if not app.is_dir():
            raise BuildError(f"BUILD_DIR {app} is not a directory.")
        config = Path(env_dir) if env_dir else None
        if config is not None and config.exists() and not config.is_dir():
            raise BuildError(
                f"ENV_DIR {config} is not a directory.",
                hint="ENV_DIR must be a directory with one file per config var.",
            )
        own_cache = Path(cache_dir).resolve() / CLASSIC_NAMESPACE
        # CACHE_DIR is the platform's to give; smtp-ca/ in it is the buildpack's own.
        refuse_link(own_cache, what="The buildpack's cache", hint=CLASSIC_CACHE_RESET_HINT)
        return cls(
            app_dir=app,
            cache_dir=own_cache,
            config_dir=config,
            buildpack_dir=buildpack_dir,
        )

    def raw_stack(self) -> str | None:
        return os.environ.get("STACK")

    def runtime_bundle_path(self, bundle_path: str) -> str:
        return f"$HOME/{bundle_path}"

    def runtime_files(self, bundle_path: str) -> list[RuntimeFile]:
        return [
            RuntimeFile(Path(PROFILE_PATH), "profile.sh.j2", {"bundle_path": bundle_path}),
            # Later buildpacks run in this build, where the app is still at BUILD_DIR.
            RuntimeFile(
                self.buildpack_dir / EXPORT_NAME,
                "export.sh.j2",
                {"build_bundle_path": str(self.app_dir / bundle_path)},
                description="the export file for later buildpacks",
            ),
        ]
