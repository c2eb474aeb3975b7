"""A real ``pack build`` with Docker: every lifecycle phase, the exported image, and the
packaged buildpack, on the three Mastodon eras.

What test_cnb.py cannot run without a daemon runs here: pack itself, the analyzer, restorer and
exporter, the cache volume between builds, and the app image the exporter writes, run by docker
through its launcher as Heroku Fir starts a dyno. The mail provider's CA is private and given
only as SMTP_CA_CERTS, as a Fir user would set it; the build's strict check and the image's mail
both go to a real STARTTLS server on loopback (containers run with ``--network host``). Only
the base images stand in for heroku/builder:24 (see support.pack and .ci/prepare-pack).

Each era is built once (cold, its cache cleared) and several tests look at that one image. To
enable these tests: ``bash .ci/prepare-pack`` as root (scripts/setup-dev --all runs it).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from support.cnb import buildpack_descriptor
from support.heroku import BUILDPACK_FILES, clean_buildpack_copy
from support.offline_inputs import REPO
from support.pack import PackRun, PackWorld, open_pack_world
from support.rails_app import (
    MASTODON_SHAPES,
    Shape,
    assert_no_secret_or_backtrace,
    delivery_settings,
    make_rails_app,
    smtp_config_vars,
)
from support.smtp_server import SMTPTestServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

pytestmark = [pytest.mark.e2e, pytest.mark.needs_docker]

LOGIN = "pack-mailer-login"
PASSWORD = "SG.pack-s3cret-password-never-printed"
WORKSPACE_BUNDLE = "/workspace/.smtp-ca/ca-bundle.pem"
BUILDPACK_ID, BUILDPACK_VERSION = buildpack_descriptor()
SEND = ["ruby", "bin/send-test-mail"]
DYNO_CHECK = ["ruby", ".smtp-ca/check.rb"]
SHOW_CA_FILES = ["bash", "-c", 'printf "%s|%s" "${SMTP_CA_FILE-}" "${BULK_SMTP_CA_FILE-}"']


@pytest.fixture(scope="module")
def pack_world() -> Iterator[PackWorld]:
    with open_pack_world() as world:
        yield world


@pytest.fixture(scope="module")
def relay_ca() -> trustme.CA:
    """The provider's private CA: in no public store, hosted nowhere."""
    return trustme.CA(organization_name="Relay Private CA")


@pytest.fixture(scope="module")
def smtp(relay_ca: trustme.CA) -> Iterator[SMTPTestServer]:
    with SMTPTestServer(mode="starttls", ca=relay_ca, credentials=(LOGIN, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def mail_vars(smtp: SMTPTestServer) -> dict[str, str]:
    return smtp_config_vars(
        "localhost", smtp.port, login=LOGIN, password=PASSWORD, auth_method="plain"
    )


@pytest.fixture(scope="module")
def app_vars(relay_ca: trustme.CA, mail_vars: dict[str, str]) -> dict[str, str]:
    """As a Fir user sets them: the private CA as SMTP_CA_CERTS, nothing downloaded, strict."""
    return {
        **mail_vars,
        "SMTP_CA_BUNDLE_URL": "none",
        "SMTP_CA_CERTS": relay_ca.cert_pem.bytes().decode(),
        "SMTP_CA_CHECK": "strict",
    }


def _image(shape: str) -> str:
    return f"smtp-ca-test/app-{shape}"


def _cache(shape: str) -> str:
    return f"smtp-ca-test-cache-{shape}"


@pytest.fixture(scope="module")
def built(pack_world: PackWorld, app_vars: dict[str, str]) -> Callable[[Shape], PackRun]:
    """Each era's app, built once, cold (its cache volume cleared), when a test first asks."""
    builds: dict[Shape, PackRun] = {}

    def build(shape: Shape) -> PackRun:
        if shape not in builds:
            app = make_rails_app(pack_world.root / f"app-{shape}", shape)
            builds[shape] = pack_world.build(
                _image(shape), app, app_vars, cache=_cache(shape), clear_cache=True
            )
        return builds[shape]

    return build


def _dyno_env(mail_vars: dict[str, str], **extra: str) -> dict[str, str]:
    return {**mail_vars, "RAILS_ENV": "production", "LANG": "C.UTF-8", **extra}


# 1. pack build: detect, the strict check against the real server, export.


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_pack_build_checks_strictly_and_exports_the_app_with_the_bundle(
    pack_world: PackWorld,
    built: Callable[[Shape], PackRun],
    smtp: SMTPTestServer,
    shape: Shape,
) -> None:
    run = built(shape)
    assert run.returncode == 0, run.output
    assert f"{BUILDPACK_ID} {BUILDPACK_VERSION}" in run.output  # the detected group
    assert "Downloaded no bundle (SMTP_CA_BUNDLE_URL=none)" in run.output
    assert "Added 1 certificate from SMTP_CA_CERTS:" in run.output
    assert f"localhost:{smtp.port} (STARTTLS): verified" in run.output, run.output
    anchored = next(line for line in run.output.splitlines() if "Anchored by" in line)
    assert anchored.endswith(", from SMTP_CA_CERTS."), anchored
    assert "Installing the buildpack's Python dependencies" in run.output  # cold: cache cleared
    assert f"Successfully built image '{_image(shape)}'" in run.output
    assert_no_secret_or_backtrace(run.output, PASSWORD)

    shown = pack_world.launch(_image(shape), SHOW_CA_FILES, {})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"{WORKSPACE_BUNDLE}|{WORKSPACE_BUNDLE}"
    # The initializer that loads the delivery rules (what the 1.x era needs; in every era, they
    # leave settings that name a ca_file alone).
    initializer = pack_world.launch(_image(shape), ["cat", "config/initializers/smtp_ca.rb"], {})
    assert "Generated by heroku-buildpack-smtp-ca" in initializer.stdout, initializer.stderr


# 2. The exported image delivers real mail over verified STARTTLS, through the launcher.


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_the_exported_image_delivers_over_verified_starttls(
    pack_world: PackWorld,
    built: Callable[[Shape], PackRun],
    smtp: SMTPTestServer,
    mail_vars: dict[str, str],
    shape: Shape,
) -> None:
    assert built(shape).returncode == 0
    received = len(smtp.messages)
    delivered = pack_world.launch(_image(shape), SEND, _dyno_env(mail_vars))
    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert "DELIVERED message_id=" in delivered.stdout
    # What the delivery ran with: Mastodon 1.3's settings name no ca_file, and the delivery rules
    # (.smtp-ca/delivery.rb) fill in the bundle the launcher's SMTP_CA_FILE names.
    settings = delivery_settings(delivered)
    assert settings["openssl_verify_mode"] == "peer"
    assert settings["ca_file"] == WORKSPACE_BUNDLE
    message = smtp.wait_for_messages(received + 1)[-1]
    assert message.tls
    assert message.authenticated_as == LOGIN
    assert_no_secret_or_backtrace(delivered.stdout + delivered.stderr, PASSWORD)


# 3. The dyno check verifies inside the image, and never logs in nor sends.


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_the_dyno_check_verifies_inside_the_image(
    pack_world: PackWorld,
    built: Callable[[Shape], PackRun],
    smtp: SMTPTestServer,
    mail_vars: dict[str, str],
    shape: Shape,
) -> None:
    assert built(shape).returncode == 0
    before = (len(smtp.auth_commands), len(smtp.messages))
    check = pack_world.launch(_image(shape), DYNO_CHECK, _dyno_env(mail_vars))
    output = check.stdout + check.stderr
    assert check.returncode == 0, output
    assert f"ca_file: {WORKSPACE_BUNDLE}, from the bundle the build wrote" in check.stdout
    assert "Verify mode: peer" in check.stdout
    assert f"localhost:{smtp.port} (STARTTLS): verified, TLSv1." in check.stdout
    assert (len(smtp.auth_commands), len(smtp.messages)) == before, output
    assert_no_secret_or_backtrace(output, PASSWORD, LOGIN)


# 4. A user's SMTP_CA_FILE wins over the layer's default: here one without the private CA.


def test_a_users_smtp_ca_file_wins_over_the_bundle(
    pack_world: PackWorld,
    built: Callable[[Shape], PackRun],
    smtp: SMTPTestServer,
    mail_vars: dict[str, str],
) -> None:
    shape: Shape = "mastodon-3.5"
    assert built(shape).returncode == 0
    own = "/etc/ssl/certs/ca-certificates.crt"
    env = _dyno_env(mail_vars, SMTP_CA_FILE=own)
    shown = pack_world.launch(_image(shape), SHOW_CA_FILES, env)
    assert shown.stdout == f"{own}|{WORKSPACE_BUNDLE}", shown.stderr
    received = len(smtp.messages)

    failed = pack_world.launch(_image(shape), SEND, env)
    assert failed.returncode != 0, failed.stdout
    assert "certificate verify failed" in failed.stderr
    check = pack_world.launch(_image(shape), DYNO_CHECK, env)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"ca_file: {own}, from the config var SMTP_CA_FILE" in check.stdout
    assert f" !     Fix: SMTP_CA_FILE points at {own}" in check.stderr
    assert len(smtp.messages) == received
    assert_no_secret_or_backtrace(check.stdout + check.stderr, PASSWORD, LOGIN)


# 5. A rebuild restores the cache layer and installs nothing (the wheelhouse has nothing to give).


def test_a_rebuild_reuses_the_cache_layer_and_installs_nothing(
    pack_world: PackWorld,
    built: Callable[[Shape], PackRun],
    app_vars: dict[str, str],
) -> None:
    shape: Shape = "mastodon-1.4"
    assert built(shape).returncode == 0
    app = make_rails_app(pack_world.root / "app-again", shape)

    again = pack_world.build(
        f"{_image(shape)}-again", app, app_vars, cache=_cache(shape), offline=True
    )
    assert again.returncode == 0, again.output
    assert f'Restoring data for "{BUILDPACK_ID}:cache" from cache' in again.output
    assert "-----> Using cached dependencies" in again.output
    assert "Installing the buildpack's Python dependencies" not in again.output
    assert_no_secret_or_backtrace(again.output, PASSWORD)


# 6. A failed strict check fails pack build, naming the cause.


def test_a_failed_strict_check_fails_pack_build_naming_the_cause(
    pack_world: PackWorld, app_vars: dict[str, str]
) -> None:
    shape: Shape = "mastodon-1.4"
    app = make_rails_app(pack_world.root / "app-strict-fails", shape)
    with SMTPTestServer(mode="starttls", ca=trustme.CA()) as stranger:
        failed = pack_world.build(
            "smtp-ca-test/app-strict-fails",
            app,
            {**app_vars, "SMTP_PORT": str(stranger.port)},
            cache=_cache(shape),
        )
    assert failed.returncode != 0, failed.output
    assert f"localhost:{stranger.port} (STARTTLS): certificate verify failed" in failed.output
    assert "SMTP_CA_CHECK=strict fails the build" in failed.output
    assert "ERROR: failed to build" in failed.output
    assert_no_secret_or_backtrace(failed.output, PASSWORD)
    assert not pack_world.tools.image_exists("smtp-ca-test/app-strict-fails")


# 7. The packaged buildpack: one script makes the image and the .cnb file; only what a build
#    needs is in it; pack build with it delivers.

PACKAGED_IMAGE = "smtp-ca-test/buildpack"
LEFT_OUT = ("tests/", "benchmarks/", "docs/", "scripts/", ".ci/", "pyproject.toml")


def _package(pack_world: PackWorld, target: str) -> subprocess.CompletedProcess[str]:
    return pack_world.tools.run(
        ["bash", REPO / "scripts" / "package-buildpack", target],
        env={"PACK": str(pack_world.tools.pack)},
    )


@pytest.fixture(scope="module")
def packaged(pack_world: PackWorld) -> subprocess.CompletedProcess[str]:
    made = _package(pack_world, PACKAGED_IMAGE)
    pack_world.images.append(PACKAGED_IMAGE)
    return made


def _layer_members(cnb: Path) -> dict[str, bytes | None]:
    """Every regular file in the layers of a .cnb (an OCI layout in a tar), with the contents
    of each buildpack.toml."""
    found: dict[str, bytes | None] = {}
    with tarfile.open(cnb) as outer:
        for member in outer.getmembers():
            if not member.isfile() or not member.name.lstrip("/").startswith("blobs/"):
                continue
            blob = outer.extractfile(member)
            assert blob is not None
            data = blob.read()
            if not tarfile.is_tarfile(io.BytesIO(data)):
                continue  # the manifest and config are JSON
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                for entry in layer.getmembers():
                    if not entry.isfile():
                        continue
                    content = None
                    if entry.name.endswith("/buildpack.toml"):
                        extracted = layer.extractfile(entry)
                        content = extracted.read() if extracted else None
                    found[entry.name] = content
    return found


def test_the_packaged_buildpack_holds_only_what_a_build_needs(
    pack_world: PackWorld, packaged: subprocess.CompletedProcess[str]
) -> None:
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    assert "Ignoring unexpected key" not in packaged.stdout + packaged.stderr
    assert pack_world.tools.image_exists(PACKAGED_IMAGE)

    made = _package(pack_world, str(pack_world.root / "smtp-ca.cnb"))
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Ignoring unexpected key" not in made.stdout + made.stderr
    # One file per target of package.toml.
    assert sorted(p.name for p in pack_world.root.glob("smtp-ca*.cnb")) == [
        "smtp-ca-linux-amd64.cnb",
        "smtp-ca-linux-arm64.cnb",
    ]
    members = _layer_members(pack_world.root / "smtp-ca-linux-amd64.cnb")
    prefix = f"cnb/buildpacks/{BUILDPACK_ID.replace('/', '_')}/{BUILDPACK_VERSION}/"
    inside = {name.split(prefix, 1)[1] for name in members if prefix in name}
    # Exactly the files of what a build needs (support.heroku's list, which the other build
    # tests run the buildpack from) and the licence: no test, benchmark, doc or dev file.
    wanted = {"LICENSE"}
    for name in BUILDPACK_FILES:
        source = REPO / name
        if source.is_dir():
            wanted |= {
                str(path.relative_to(REPO))
                for path in source.rglob("*")
                if path.is_file() and "__pycache__" not in path.parts
            }
        else:
            wanted.add(name)
    assert inside == wanted, (sorted(inside - wanted), sorted(wanted - inside))
    assert "bin/build" in inside and "src/smtp_ca/__main__.py" in inside
    for name in inside:
        assert not name.startswith(LEFT_OUT), name
    descriptor_bytes = next(v for k, v in members.items() if k.endswith(prefix + "buildpack.toml"))
    assert descriptor_bytes is not None
    descriptor = tomllib.loads(descriptor_bytes.decode())
    assert "publish" not in descriptor  # the classic registry's section, which pack warns about
    repo_descriptor = tomllib.loads((REPO / "buildpack.toml").read_text())
    assert descriptor["buildpack"] == repo_descriptor["buildpack"]
    assert descriptor["targets"] == repo_descriptor["targets"]


def test_the_descriptor_as_it_is_in_the_repository_would_make_pack_warn(
    pack_world: PackWorld,
) -> None:
    """What the package leaves out of buildpack.toml is what pack warns about."""
    raw = pack_world.root / "raw"
    clean_buildpack_copy(raw / "buildpack")
    shutil.copy2(REPO / "package.toml", raw / "package.toml")
    made = pack_world.tools.pack_run(
        "buildpack", "package", raw / "raw.cnb", "--format", "file",
        "--config", raw / "package.toml",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Ignoring unexpected key(s) in descriptor" in made.stdout + made.stderr
    assert "publish.Ignore" in made.stdout + made.stderr


def test_pack_build_with_the_packaged_buildpack_delivers(
    pack_world: PackWorld,
    packaged: subprocess.CompletedProcess[str],
    smtp: SMTPTestServer,
    app_vars: dict[str, str],
    mail_vars: dict[str, str],
) -> None:
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    shape: Shape = "mastodon-1.4"
    image = "smtp-ca-test/app-packaged"
    app = make_rails_app(pack_world.root / "app-packaged", shape)
    run = pack_world.build(
        image,
        app,
        app_vars,
        cache="smtp-ca-test-cache-packaged",
        clear_cache=True,
        builder=pack_world.bare_builder,
        extra=[
            "--buildpack", f"docker://{PACKAGED_IMAGE}",
            "--lifecycle-image", pack_world.tools.lifecycle_image,
        ],
    )  # fmt: skip
    assert run.returncode == 0, run.output
    # The builder is trusted, but a buildpack was added: pack runs the five phases, the
    # analyzer, restorer and exporter from the lifecycle image.
    assert "using the untrusted (5 phases) build flow" in run.output
    # The builder holds no buildpack: what detected and built is the package.
    assert f"[detector] {BUILDPACK_ID} {BUILDPACK_VERSION}" in run.output
    assert "Ignoring unexpected key" not in run.output
    assert f"localhost:{smtp.port} (STARTTLS): verified" in run.output
    assert_no_secret_or_backtrace(run.output, PASSWORD)

    received = len(smtp.messages)
    delivered = pack_world.launch(image, SEND, _dyno_env(mail_vars))
    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert "DELIVERED message_id=" in delivered.stdout
    message = smtp.wait_for_messages(received + 1)[-1]
    assert message.tls
    assert message.authenticated_as == LOGIN
