"""The platform seam: what differs between Heroku's classic buildpacks and Cloud Native Buildpacks.

The pipeline (``smtp_ca.pipeline``) and its stages never ask which platform runs them. They ask a
``Platform`` where the app is, where the buildpack's cache is, what the config vars are, which
stack this is, and which files tell the app's runtime (and the buildpacks after this one) where
the bundle is. ``classic`` answers for ``bin/compile``; a second platform is one more module here.

Stdlib only: the platform is asked for config vars before the dependencies are installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class RuntimeFile:
    """A file that points the app's runtime, or the buildpacks after this one, at the bundle.

    ``template`` names a file in templates/, rendered with ``values``; with no template the
    file holds ``values["text"]`` exactly as given (CNB env files: a value, no newline). A
    relative ``path`` is inside the app directory and is written with the app's other files;
    an absolute one is the platform's (the classic ``export`` file, CNB layer files) and is put
    in place after them, so nothing ever points at a bundle that is not there yet. The directory
    of a platform file must exist: the wiring makes directories in the app only.
    """

    path: Path
    template: str | None
    values: Mapping[str, str] = field(default_factory=dict)
    mode: int = 0o644
    description: str = ""
    """How an error message names a platform file ("the export file for later buildpacks")."""

    @property
    def in_app(self) -> bool:
        return not self.path.is_absolute()


class Platform(Protocol):
    """Where a build gets its inputs and puts its outputs."""

    @property
    def app_dir(self) -> Path:
        """The app's directory during the build (BUILD_DIR; the CNB working directory)."""
        ...

    @property
    def cache_dir(self) -> Path:
        """This buildpack's own directory that the next build of the app gets back."""
        ...

    @property
    def cache_dir_name(self) -> str:
        """How messages name the cache (CACHE_DIR, the cache layer)."""
        ...

    @property
    def cache_reset_hint(self) -> str:
        """What a user does to start the cache afresh (a damaged or unwritable cache)."""
        ...

    @property
    def config_dir(self) -> Path | None:
        """The directory of config vars, one file per variable (None: no config vars)."""
        ...

    @property
    def config_dir_name(self) -> str:
        """How messages name ``config_dir`` (ENV_DIR, the platform's env/ directory)."""
        ...

    def raw_stack(self) -> str | None:
        """The stack name as the platform gives it; ``settings.check_stack`` validates it."""
        ...

    def runtime_bundle_path(self, bundle_path: str) -> str:
        """How the build log names the bundle's path at runtime ($HOME/... on a dyno)."""
        ...

    def runtime_files(self, bundle_path: str) -> list[RuntimeFile]:
        """The files that set SMTP_CA_FILE and BULK_SMTP_CA_FILE at runtime and for later
        buildpacks; ``bundle_path`` is relative to the app directory."""
        ...
