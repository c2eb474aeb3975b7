"""Cloud Native Buildpacks (Heroku Fir, ``pack build``): Buildpack API 0.10, ``bin/build``.

- Config vars are files in ``$CNB_PLATFORM_DIR/env/``, read with the same rules and limits as
  classic's ENV_DIR (the platform also puts them in the build's environment; they are read
  from the files all the same, so both platforms validate the same input).
- The app is the working directory, at build time and at launch (``/workspace`` on Heroku):
  a path written at build time is the path at launch.
- The buildpack's cache is the layer ``<layers>/cache``, declared ``cache = true``: the
  lifecycle restores it for the next build (what classic keeps in CACHE_DIR/smtp-ca), and it
  is not part of the app's image.
- The runtime is told about the bundle by the layer ``<layers>/ca-file`` (``launch = true``):
  ``env.launch/SMTP_CA_FILE.default`` and ``BULK_SMTP_CA_FILE.default`` hold its path, and
  ``.default`` means a config var the user sets wins. The launcher applies them before the
  process starts: nothing at launch runs Python (heroku-24's run image has none) or a script.
  The app's own ``.profile.d/`` is not sourced on CNB, so none is written.
- Later buildpacks of the same build see the bundle through that layer's ``env.build/``
  (``build = true``), as classic's ``export`` file does.
- The stack follows from ``CNB_TARGET_DISTRO_NAME`` and ``CNB_TARGET_DISTRO_VERSION`` (the run
  image's Ubuntu); anything else is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from smtp_ca.cache.owner import refuse_link
from smtp_ca.errors import BuildError
from smtp_ca.files import write_atomically
from smtp_ca.platforms import RuntimeFile

CACHE_LAYER = "cache"
ENV_LAYER = "ca-file"
# The variables whose default the launch and build environments get: Mastodon reads both.
CA_FILE_VARIABLES = ("SMTP_CA_FILE", "BULK_SMTP_CA_FILE")

# Heroku's current stacks by the Ubuntu release under them, and the retired ones, named so the
# refusal can say they are end of life rather than unknown.
UBUNTU_STACKS = {"22.04": "heroku-22", "24.04": "heroku-24", "26.04": "heroku-26"}
END_OF_LIFE_UBUNTU = {"16.04": "heroku-16", "18.04": "heroku-18", "20.04": "heroku-20"}
_SUPPORTED = "Ubuntu 22.04, 24.04 and 26.04 (heroku-22, heroku-24 and heroku-26)"
_BUILDER_HINT = (
    "Build with one of Heroku's current builders, for example: "
    "pack build APP --builder heroku/builder:24"
)
_NOT_CNB = "bin/build runs under a CNB lifecycle, which sets CNB_LAYERS_DIR and CNB_PLATFORM_DIR."
_LINKED_LAYER_HINT = (
    "The lifecycle makes a buildpack's layers as directories: remove the link, or build with "
    "a fresh CNB_LAYERS_DIR."
)


def stack_from_target(environ: Mapping[str, str]) -> str:
    """The name of the Heroku stack whose run image the lifecycle targets, or a BuildError
    that names the distro it got."""
    name = environ.get("CNB_TARGET_DISTRO_NAME", "")
    version = environ.get("CNB_TARGET_DISTRO_VERSION", "")
    variables = (
        f"CNB_TARGET_DISTRO_NAME={name or '(unset)'}, "
        f"CNB_TARGET_DISTRO_VERSION={version or '(unset)'}"
    )
    if not name and not version:
        raise BuildError(
            f"The run image's distro is unknown ({variables}): this buildpack supports "
            f"{_SUPPORTED}.",
            hint=_BUILDER_HINT + ", whose run image names its distro.",
        )
    if name.lower() == "ubuntu" and version in UBUNTU_STACKS:
        return UBUNTU_STACKS[version]
    if name.lower() == "ubuntu" and version in END_OF_LIFE_UBUNTU:
        raise BuildError(
            f"The run image is Ubuntu {version} ({END_OF_LIFE_UBUNTU[version]}), which is end of "
            f"life: this buildpack supports {_SUPPORTED}.",
            hint=_BUILDER_HINT + ".",
        )
    raise BuildError(
        f"The run image's distro is {name or '(no name)'} {version or '(no version)'} "
        f"({variables}): this buildpack supports {_SUPPORTED}.",
        hint=_BUILDER_HINT + ".",
    )


def layer_toml(*, launch: bool = False, build: bool = False, cache: bool = False) -> str:
    return (
        "[types]\n"
        f"launch = {str(launch).lower()}\n"
        f"build = {str(build).lower()}\n"
        f"cache = {str(cache).lower()}\n"
    )


@dataclass(frozen=True)
class CnbPlatform:
    app_dir: Path
    layers_dir: Path
    config_dir: Path | None
    stack: str
    config_dir_name: str = "the platform's env/ directory"
    cache_dir_name: str = "The cache layer"
    cache_reset_hint: str = (
        "Clear the build cache and build again: heroku builds:cache:purge on Heroku Fir, "
        "pack build --clear-cache with pack."
    )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], working_dir: Path) -> CnbPlatform:
        """The platform the lifecycle describes to ``bin/build``, checked before any work,
        with the cache layer declared."""
        layers = environ.get("CNB_LAYERS_DIR", "")
        platform_dir = environ.get("CNB_PLATFORM_DIR", "")
        if not layers or not platform_dir:
            missing = " and ".join(
                name
                for name, value in (("CNB_LAYERS_DIR", layers), ("CNB_PLATFORM_DIR", platform_dir))
                if not value
            )
            raise BuildError(f"{missing} not set.", hint=_NOT_CNB)
        layers_dir = Path(layers).resolve()
        if not layers_dir.is_dir():
            raise BuildError(f"CNB_LAYERS_DIR {layers_dir} is not a directory.", hint=_NOT_CNB)
        config = Path(platform_dir) / "env"
        if config.exists() and not config.is_dir():
            raise BuildError(
                f"{config} (the platform's env/ directory) is not a directory.",
                hint="The platform must give config vars as one file per variable in env/.",
            )
        platform = cls(
            app_dir=working_dir.resolve(),
            layers_dir=layers_dir,
            config_dir=config,
            stack=stack_from_target(environ),
        )
        platform.declare_cache_layer()
        return platform

    @property
    def cache_dir(self) -> Path:
        return self.layers_dir / CACHE_LAYER

    def declare_cache_layer(self) -> None:
        """Makes the cache layer and declares it ``cache = true``, on every build: the
        restorer brings a layer's contents back but not its types, and the lifecycle drops a
        layer without types. A layer that is a symbolic link is refused, not followed; the
        declaration is put in place by a rename, which replaces a link instead of writing
        where it points."""
        refuse_link(self.cache_dir, what="The cache layer", hint=self.cache_reset_hint)
        try:
            self.cache_dir.mkdir(exist_ok=True)
            write_atomically(
                self.layers_dir / f"{CACHE_LAYER}.toml", layer_toml(cache=True).encode()
            )
        except OSError as error:
            raise BuildError(
                f"The cache layer {self.cache_dir} cannot be made: {error.strerror or error}.",
                hint="CNB_LAYERS_DIR must be writable during bin/build.",
            ) from None

    def raw_stack(self) -> str | None:
        return self.stack

    def runtime_bundle_path(self, bundle_path: str) -> str:
        return str(self.app_dir / bundle_path)

    def runtime_files(self, bundle_path: str) -> list[RuntimeFile]:
        """The ca-file layer: its env files and, last, its declaration, which makes the
        lifecycle take the layer. Makes the layer's directories (empty until the wiring
        commits), since platform files are put in place beside their targets."""
        layer = self.layers_dir / ENV_LAYER
        value = str(self.app_dir / bundle_path)
        files: list[RuntimeFile] = []
        for env_dir in ("env.launch", "env.build"):
            for directory in (layer, layer / env_dir):
                refuse_link(directory, what="The layer directory", hint=_LINKED_LAYER_HINT)
            try:
                (layer / env_dir).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise BuildError(
                    f"The layer {layer} cannot be made: {error.strerror or error}. "
                    "Nothing in the app was changed.",
                    hint="CNB_LAYERS_DIR must be writable during bin/build.",
                ) from None
            for name in CA_FILE_VARIABLES:
                files.append(
                    RuntimeFile(
                        layer / env_dir / f"{name}.default",
                        None,
                        {"text": value},
                        description=f"the {env_dir} default of {name}",
                    )
                )
        files.append(
            RuntimeFile(
                self.layers_dir / f"{ENV_LAYER}.toml",
                None,
                {"text": layer_toml(launch=True, build=True)},
                description=f"the declaration of the layer {ENV_LAYER}",
            )
        )
        return files
