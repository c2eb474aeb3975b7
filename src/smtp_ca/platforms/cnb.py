"""Cloud Native Buildpacks (Heroku Fir, ``pack build``): where the build finds and leaves things.

Buildpack API 0.10, as the CNB lifecycle runs ``bin/build``:

* config vars are files in ``$CNB_PLATFORM_DIR/env/``, read with the same rules and limits as
  classic's ENV_DIR;
* the app is the working directory, at build time and at launch (``/workspace`` on Heroku),
  so a path written at build time is the path at launch;
* the buildpack's cache is the layer ``<layers>/cache`` declared ``cache = true``: the lifecycle
  keeps it between builds (what classic keeps in ``CACHE_DIR/smtp-ca``), and it is not in the
  app's image;
* the runtime environment comes from the layer ``<layers>/ca-file`` (``launch = true``): its
  ``env.launch/SMTP_CA_FILE.default`` and ``BULK_SMTP_CA_FILE.default`` point at the bundle in
  the app, and ``.default`` means a config var the user sets wins. Nothing at launch runs
  Python (heroku-24's run image has none), or any script at all;
* later buildpacks of the same build see the bundle through the same layer's ``env.build/``
  (``build = true``), as classic's ``export`` file does;
* the stack follows from ``CNB_TARGET_DISTRO_NAME`` and ``CNB_TARGET_DISTRO_VERSION`` (the run
  image's Ubuntu), and anything else is refused by name.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from smtp_ca.errors import BuildError

CACHE_LAYER = "cache"
ENV_LAYER = "ca-file"
# The variables whose default the launch and build environments get: Mastodon reads both.
CA_FILE_VARIABLES = ("SMTP_CA_FILE", "BULK_SMTP_CA_FILE")

# Heroku's stacks by the Ubuntu release under them. heroku-20 and heroku-18 are named so that
# settings can refuse them as end of life rather than unknown.
UBUNTU_STACKS = {
    "18.04": "heroku-18",
    "20.04": "heroku-20",
    "22.04": "heroku-22",
    "24.04": "heroku-24",
    "26.04": "heroku-26",
}
_SUPPORTED = "Ubuntu 22.04, 24.04 and 26.04 (heroku/builder:22, :24 and :26)"


def stack_from_target(environ: Mapping[str, str]) -> str:
    """The Heroku stack name of the run image the lifecycle targets.

    ``CNB_TARGET_DISTRO_*`` come from the run image; a platform that sets none of them may still
    set the older ``CNB_STACK_ID`` (Heroku's builders name their stack ``heroku-24``).
    """
    name = environ.get("CNB_TARGET_DISTRO_NAME", "")
    version = environ.get("CNB_TARGET_DISTRO_VERSION", "")
    if not name and not version:
        stack_id = environ.get("CNB_STACK_ID", "")
        if stack_id.startswith("heroku-"):
            return stack_id
        raise BuildError(
            "The build's target distro is unknown: CNB_TARGET_DISTRO_NAME and "
            "CNB_TARGET_DISTRO_VERSION are not set"
            + (f" (and CNB_STACK_ID is {stack_id!r})." if stack_id else "."),
            hint=f"Build with a builder whose run image is {_SUPPORTED}, for example "
            "pack build --builder heroku/builder:24.",
        )
    if name.lower() == "ubuntu" and version in UBUNTU_STACKS:
        return UBUNTU_STACKS[version]
    shown = f"{name or '(no name)'} {version or '(no version)'}"
    raise BuildError(
        f"The run image's distro is {shown} (CNB_TARGET_DISTRO_NAME={name!r}, "
        f"CNB_TARGET_DISTRO_VERSION={version!r}); this buildpack supports {_SUPPORTED}.",
        hint="Build with one of Heroku's builders, for example pack build --builder "
        "heroku/builder:24.",
    )


def layer_toml(*, launch: bool = False, build: bool = False, cache: bool = False) -> str:
    return (
        "[types]\n"
        f"launch = {str(launch).lower()}\n"
        f"build = {str(build).lower()}\n"
        f"cache = {str(cache).lower()}\n"
    )


def cache_layer(layers_dir: Path) -> Path:
    """The cache layer's directory, declared ``cache = true`` (and made if missing).

    The declaration is written on every build: the restorer brings a layer's contents back but
    not its types, and a layer without types is dropped.
    """
    layer = layers_dir / CACHE_LAYER
    try:
        layer.mkdir(parents=True, exist_ok=True)
        (layers_dir / f"{CACHE_LAYER}.toml").write_text(layer_toml(cache=True), encoding="utf-8")
    except OSError as error:
        raise BuildError(
            f"The cache layer {layer} cannot be created: {error.strerror or error}.",
            hint="CNB_LAYERS_DIR must be writable during bin/build.",
        ) from None
    return layer


def env_layer_files(bundle: Path) -> dict[str, bytes]:
    """The ca-file layer's files, by path inside the layer: each variable's ``.default`` for
    launch and for later buildpacks, the value with no trailing newline (used as written)."""
    value = str(bundle).encode()
    files: dict[str, bytes] = {}
    for name in CA_FILE_VARIABLES:
        files[f"env.launch/{name}.default"] = value
        files[f"env.build/{name}.default"] = value
    return files


class StagedLayer:
    """The ca-file layer, written beside its final place first, then swapped in by renames.

    ``stage`` writes everything (and can fail without touching the layer); ``commit`` renames
    the staged directory and toml into place; ``discard`` removes what was staged. Together
    with the app's files, this makes the build's outputs all or nothing.
    """

    def __init__(self, layers_dir: Path, files: Mapping[str, bytes]) -> None:
        self.layers_dir = layers_dir
        self.files = dict(files)
        self.target = layers_dir / ENV_LAYER
        self.toml = layers_dir / f"{ENV_LAYER}.toml"
        self._staging: Path | None = None

    def stage(self) -> None:
        try:
            self._staging = Path(tempfile.mkdtemp(prefix=f".{ENV_LAYER}-", dir=self.layers_dir))
            layer = self._staging / "layer"
            for relative, content in self.files.items():
                path = layer / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            (self._staging / "layer.toml").write_text(
                layer_toml(launch=True, build=True), encoding="utf-8"
            )
        except OSError as error:
            self.discard()
            raise BuildError(
                f"Could not write the layer {self.target}: {error.strerror or error}. "
                "Nothing in the app was changed.",
                hint="CNB_LAYERS_DIR must be writable during bin/build.",
            ) from None

    def commit(self) -> None:
        """Puts the staged layer in place; the old one (a restored toml, a previous build's
        directory) is replaced."""
        assert self._staging is not None, "stage() first"
        if self.target.is_dir() and not self.target.is_symlink():
            shutil.rmtree(self.target)
        elif self.target.exists() or self.target.is_symlink():
            self.target.unlink()
        (self._staging / "layer").replace(self.target)
        (self._staging / "layer.toml").replace(self.toml)
        self.discard()

    def discard(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


def platform_env_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ["CNB_PLATFORM_DIR"]) / "env"


def layers_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ["CNB_LAYERS_DIR"])


def app_dir() -> Path:
    with suppress(OSError):
        return Path.cwd().resolve()
    raise BuildError("The app directory (the working directory of bin/build) is gone.")
