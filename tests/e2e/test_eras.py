"""Real Rubies and Pythons of other eras, in Debian chroots made by .ci/prepare-chroots.

* bullseye: Ruby 2.7, Rails 6.0, mail 2.7.1. Its Net::SMTP.default_ssl_context is a bare
  SSLContext: with ``openssl_verify_mode: 'peer'``, ``ca_file`` is the only trust. The seed's
  client, run rather than modelled.
* trixie: Ruby 3.3, Rails 7.2, mail 2.8.1, net-smtp 0.5: modern Mastodon's.
* sid: python3.14 as python3 and no pip, like heroku-26's build image: the buildpack runs its
  own pip wheel there.

Apps are built on the host with bin/compile (the session ``world``), copied into the chroot at
/app and started as a dyno: config vars in the environment, .profile.d sourced. The chroot shares
the host's network, so ActionMailer reaches the aiosmtpd server on the host's loopback. The
dyno check (``ruby .smtp-ca/check.rb``) runs there too, with each era's Ruby.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import trustme

from support.app_shapes import (
    CASES,
    ServerMode,
    ShapeCase,
    assert_delivery_settings,
    bundle_config_vars,
    shape_config_vars,
)
from support.app_shapes import LOGIN as SHAPE_LOGIN
from support.app_shapes import PASSWORD as SHAPE_PASSWORD
from support.chroots import ChrootSession, add_to_system_store, require_chroot
from support.heroku26 import Heroku26Build
from support.paths import GEMFILE_LOCKS
from support.rails_app import (
    APP_SHAPES,
    DYNO_CHECK_COMMAND,
    DYNO_COMMAND,
    AppShape,
    Shape,
    delivery_output,
    delivery_settings,
    make_rails_app,
    smtp_config_vars,
)
from support.smtp_server import SMTPTestServer
from support.world import World, godaddy_vars

pytestmark = [pytest.mark.e2e, pytest.mark.needs_chroots]

PASSWORD = "SG.s3cret-password-never-printed"
# Each era's Ruby, Rails and mail, as the chroot has them: the tests below mean these versions.
ERAS = {
    "bullseye": ("2.7.", "6.0.", "2.7.1"),
    "trixie": ("3.3.", "7.2.", "2.8.1"),
}
VERSION_PROBE = (
    'require "rails"; require "action_mailer"; require "mail"; '
    'print "#{RUBY_VERSION} #{Rails.version} #{Mail::VERSION.version}"'
)


@pytest.fixture
def provider_ca() -> trustme.CA:
    """The mail provider's CA: in no store unless a test puts it there."""
    return trustme.CA()


@pytest.fixture
def provider_server(provider_ca: trustme.CA) -> Iterator[SMTPTestServer]:
    with SMTPTestServer(
        mode="starttls", ca=provider_ca, credentials=("apikey", PASSWORD)
    ) as server:
        yield server


def era_session(suite: str, tmp_path: Path) -> ChrootSession:
    session = ChrootSession(require_chroot(suite), tmp_path / suite)
    if suite in ERAS:
        probe = session.run(["ruby", "-e", VERSION_PROBE])
        assert probe.returncode == 0, probe.stderr
        ruby, rails, mail = probe.stdout.split()
        want_ruby, want_rails, want_mail = ERAS[suite]
        assert ruby.startswith(want_ruby) and rails.startswith(want_rails), probe.stdout
        assert mail == want_mail, probe.stdout
    return session


def mail_vars(server: SMTPTestServer, **extra: str) -> dict[str, str]:
    return smtp_config_vars(
        "localhost",
        server.port,
        login="apikey",
        password=PASSWORD,
        auth_method="plain",
        **extra,
    )


def start_dyno(
    session: ChrootSession,
    app_dir: Path,
    config_vars: Mapping[str, str],
    *,
    command: str = DYNO_COMMAND,
) -> subprocess.CompletedProcess[str]:
    """Puts ``app_dir`` at /app in the chroot (replacing any earlier app) and runs the mail
    delivery (or ``command``) as a dyno starts: config vars in the environment, .profile.d
    sourced."""
    deploy(session, app_dir)
    return run_on_dyno(session, config_vars, command=command)


def deploy(session: ChrootSession, app_dir: Path) -> None:
    """Puts ``app_dir`` at /app in the chroot, replacing any earlier app."""
    target = session.path("/app")
    if target.exists():
        shutil.rmtree(target)
    session.copy_in(app_dir, "/app")


def run_on_dyno(
    session: ChrootSession,
    config_vars: Mapping[str, str],
    *arguments: str,
    command: str = DYNO_COMMAND,
) -> subprocess.CompletedProcess[str]:
    """Runs the mail delivery (or ``command``, with ``arguments``) of the app at /app as a dyno
    starts: config vars in the environment, .profile.d sourced."""
    env = {**config_vars, "HOME": "/app", "RAILS_ENV": "production"}
    return session.run(
        ["bash", "-c", command, "dyno", *arguments], env=env, cwd="/app", timeout=120
    )


def build_app(
    world: World,
    tmp_path: Path,
    shape: Shape,
    config_vars: Mapping[str, str],
    provider_ca: trustme.CA,
) -> Path:
    """bin/compile on the host, the provider's root as the pinned bundle; returns the app."""
    build_dir = make_rails_app(tmp_path / "build_0123abcd", shape)
    bundle = world.bundle_vars(f"/{tmp_path.name}.crt", provider_ca.cert_pem.bytes())
    build = world.build(
        tmp_path, {**config_vars, **bundle, "SMTP_CA_CHECK": "strict"}, build_dir=build_dir
    )
    assert build.returncode == 0, build.output
    assert "verified" in build.stdout
    assert PASSWORD not in build.output
    return build_dir


# 1. The seed's failure, in its own form ---------------------------------------------------------


def test_ruby_27_trusts_only_ca_file_and_the_buildpack_gives_it_one(
    world: World,
    tmp_path: Path,
    provider_ca: trustme.CA,
    provider_server: SMTPTestServer,
) -> None:
    """The provider's root is in the system store (as SendGrid's is on any machine) and the app
    verifies peers with no ca_file: Ruby 2.7 still fails, Ruby 3.3 delivers."""
    config_vars = mail_vars(provider_server)
    app = make_rails_app(tmp_path / "plain-app", "mastodon-1.3")
    old, new = era_session("bullseye", tmp_path), era_session("trixie", tmp_path)
    for session in (old, new):
        add_to_system_store(session, "provider", provider_ca.cert_pem.bytes())

    seed = start_dyno(old, app, config_vars)
    assert seed.returncode != 0, delivery_output(seed)
    assert "certificate verify failed" in seed.stderr, delivery_output(seed)
    assert provider_server.messages == ()

    modern = start_dyno(new, app, config_vars)
    assert modern.returncode == 0, delivery_output(modern)
    provider_server.wait_for_messages(1)

    built = build_app(world, tmp_path / "build", "mastodon-1.3", config_vars, provider_ca)
    fixed = start_dyno(old, built, config_vars)
    assert fixed.returncode == 0, delivery_output(fixed)
    assert "DELIVERED" in fixed.stdout
    _, message = provider_server.wait_for_messages(2)
    assert message.tls
    assert message.authenticated_as == "apikey"


# 2. Each Mastodon settings shape on the Ruby its era ran -----------------------------------------


@pytest.mark.parametrize(
    ("suite", "shape"),
    [
        ("bullseye", "mastodon-1.3"),
        ("bullseye", "mastodon-1.4"),
        ("trixie", "mastodon-3.5"),
        ("trixie", "mastodon-1.3"),
    ],
)
def test_each_mastodon_shape_delivers_on_its_eras_ruby(
    world: World,
    tmp_path: Path,
    suite: str,
    shape: Shape,
    provider_ca: trustme.CA,
    provider_server: SMTPTestServer,
) -> None:
    session = era_session(suite, tmp_path)
    config_vars = mail_vars(provider_server)

    before = start_dyno(session, make_rails_app(tmp_path / "plain-app", shape), config_vars)
    assert before.returncode != 0, delivery_output(before)
    assert "certificate verify failed" in before.stderr, delivery_output(before)

    built = build_app(world, tmp_path / "build", shape, config_vars, provider_ca)
    after = start_dyno(session, built, config_vars)
    assert after.returncode == 0, delivery_output(after)
    assert "DELIVERED" in after.stdout
    (message,) = provider_server.wait_for_messages(1)
    assert message.tls
    assert message.authenticated_as == "apikey"


def test_mail_28_refuses_mastodon_1x_starttls_auto_true_and_the_build_said_so(
    world: World, tmp_path: Path, provider_server: SMTPTestServer
) -> None:
    """Mastodon 1.x's ``ENV['SMTP_ENABLE_STARTTLS_AUTO'] || true`` passes the string "true"
    when the config var is set: mail 2.7 takes it, mail 2.8 raises before connecting. The
    build, reading the app's Gemfile.lock, warned with the very error Ruby raises."""
    config_vars = mail_vars(provider_server, SMTP_ENABLE_STARTTLS_AUTO="true")
    app = make_rails_app(tmp_path / "build_0123abcd", "mastodon-1.3")
    shutil.copy(GEMFILE_LOCKS / "mastodon-4.3.lock", app / "Gemfile.lock")
    build = world.build(
        tmp_path, {**config_vars, **godaddy_vars(), "SMTP_CA_CHECK": "off"}, build_dir=app
    )
    assert build.returncode == 0, build.output

    modern = start_dyno(era_session("trixie", tmp_path), app, config_vars)
    assert modern.returncode != 0, delivery_output(modern)
    error = 'ArgumentError: Unrecognized :enable_starttls_auto value "true"'
    assert error in modern.stderr, delivery_output(modern)
    assert error in build.stderr
    assert provider_server.messages == ()

    # mail 2.7 takes the string and goes on to the handshake (which the GoDaddy bundle, not
    # the provider's, cannot verify).
    old = start_dyno(era_session("bullseye", tmp_path), app, config_vars)
    assert "ArgumentError" not in old.stderr, delivery_output(old)
    assert "certificate verify failed" in old.stderr, delivery_output(old)


# 3. The dyno check, with each era's Ruby ---------------------------------------------------------


@pytest.mark.parametrize(
    ("suite", "shape", "trust_line", "store_saves_it"),
    [
        (
            "bullseye",
            "mastodon-1.3",
            "Nothing else is trusted: this net/smtp has no default store",
            False,
        ),
        ("trixie", "mastodon-3.5", "Also trusted: OpenSSL's default store", True),
    ],
    ids=["ruby-2.7", "ruby-3.3"],
)
def test_the_dyno_check_runs_on_each_eras_ruby_and_knows_its_trust(
    world: World,
    tmp_path: Path,
    provider_ca: trustme.CA,
    provider_server: SMTPTestServer,
    suite: str,
    shape: Shape,
    trust_line: str,
    store_saves_it: bool,
) -> None:
    """``ruby .smtp-ca/check.rb`` passes with the build's wiring on Ruby 2.7 and 3.3. With the
    provider's root only in the system store and SMTP_CA_FILE naming another CA, Ruby 2.7's
    check fails as its mail would, and Ruby 3.3's passes as its mail would."""
    session = era_session(suite, tmp_path)
    config_vars = mail_vars(provider_server)
    built = build_app(world, tmp_path / "build", shape, config_vars, provider_ca)
    (built / "other-ca.pem").write_bytes(trustme.CA().cert_pem.bytes())

    check = start_dyno(session, built, config_vars, command=DYNO_CHECK_COMMAND)
    assert check.returncode == 0, delivery_output(check)
    assert trust_line in check.stdout, delivery_output(check)
    assert f"localhost:{provider_server.port} (STARTTLS): verified" in check.stdout
    assert PASSWORD not in check.stdout + check.stderr
    assert provider_server.messages == ()  # the check sends no mail

    add_to_system_store(session, "provider", provider_ca.cert_pem.bytes())
    elsewhere = {**config_vars, "SMTP_CA_FILE": "/app/other-ca.pem"}
    check = start_dyno(session, built, elsewhere, command=DYNO_CHECK_COMMAND)
    mail = start_dyno(session, built, elsewhere)
    assert (check.returncode == 0) is store_saves_it, delivery_output(check)
    assert (mail.returncode == 0) is store_saves_it, delivery_output(mail)


# 4. heroku-26: a build with Python 3.14 and no pip, inside sid ----------------------------------


def test_heroku_26_builds_cold_and_warm_with_python_314_inside_sid(
    world: World, tmp_path: Path, provider_ca: trustme.CA, provider_server: SMTPTestServer
) -> None:
    session = era_session("sid", tmp_path)
    version = session.run(["python3", "-c", "import sys; print(sys.version_info[:2])"])
    assert version.stdout.strip() == "(3, 14)", delivery_output(version)
    assert session.run(["python3", "-m", "pip", "--version"]).returncode != 0

    heroku26 = Heroku26Build(session, world.inputs)
    bundle_vars = heroku26.bundle_vars("provider.pem", provider_ca.cert_pem.bytes())
    cold = heroku26.compile(
        "cold", {**mail_vars(provider_server), **bundle_vars, "SMTP_CA_CHECK": "strict"}
    )
    assert cold.returncode == 0, delivery_output(cold)
    assert re.search(r"\(\d+ packages\) with pip \S+ in ", cold.stdout), delivery_output(cold)
    assert f"localhost:{provider_server.port} (STARTTLS): verified" in cold.stdout
    built = heroku26.app("cold")
    assert (built / ".smtp-ca" / "ca-bundle.pem").is_file()
    assert (built / ".profile.d" / "smtp-ca.sh").is_file()
    deps = session.path("/cache/smtp-ca/python-deps")
    assert list(deps.glob("*/markupsafe/_speedups.cpython-314-*.so")), delivery_output(cold)
    # The dependencies' bytecode, compiled for 3.14 at install time.
    assert list(deps.glob("*/jinja2/__pycache__/*.cpython-314.pyc")), delivery_output(cold)

    # Warm: the same cache, no pip; a server no bundle anchors fails strict.
    with SMTPTestServer(mode="starttls", ca=trustme.CA()) as stranger:
        warm = heroku26.compile(
            "warm", {**mail_vars(stranger), **bundle_vars, "SMTP_CA_CHECK": "strict"}
        )
    assert warm.returncode == 1, delivery_output(warm)
    assert "Using cached dependencies" in warm.stdout
    assert "Installing the buildpack's Python dependencies" not in warm.stdout
    assert " !     " in warm.stderr
    assert "certificate verify failed" in warm.stderr, delivery_output(warm)
    assert "Traceback" not in warm.stdout + warm.stderr
    assert PASSWORD not in warm.stdout + warm.stderr
    assert not heroku26.app("warm").joinpath(".smtp-ca").exists()


# 5. Every Rails app shape on Ruby 2.7 -------------------------------------------------------------


@pytest.fixture(scope="module")
def shape_ca() -> trustme.CA:
    """The provider's CA for the app shapes: in no store; only the bundle the build has it."""
    return trustme.CA(organization_name="Shape Provider CA")


@pytest.fixture(scope="module")
def shape_servers(shape_ca: trustme.CA) -> Iterator[dict[ServerMode, SMTPTestServer]]:
    credentials = (SHAPE_LOGIN, SHAPE_PASSWORD)
    with (
        SMTPTestServer(mode="starttls", ca=shape_ca, credentials=credentials) as starttls,
        SMTPTestServer(mode="implicit-tls", ca=shape_ca, credentials=credentials) as implicit,
    ):
        yield {"starttls": starttls, "implicit-tls": implicit}


def build_shape(world: World, where: Path, case: ShapeCase, port: int, ca: trustme.CA) -> Path:
    """bin/compile on the host with the app's config vars and the provider's CA as the bundle."""
    build_dir = make_rails_app(where / "build_0123abcd", case.shape)
    config_vars = {**shape_config_vars(case, port), **bundle_config_vars(ca.cert_pem.bytes())}
    build = world.build(where, config_vars, build_dir=build_dir)
    assert build.returncode == 0, build.output
    return build_dir


@pytest.mark.parametrize("shape", APP_SHAPES)
def test_every_app_shape_on_ruby_27_delivers_as_its_dyno_check_says(
    world: World,
    tmp_path: Path,
    shape_ca: trustme.CA,
    shape_servers: dict[ServerMode, SMTPTestServer],
    shape: AppShape,
) -> None:
    """Ruby 2.7's net/smtp trusts only ca_file and verifies only with a mode: each shape's
    delivery gets both from the delivery rules, and reaches a server whose CA is only in the
    bundle; the app with its own ca_file fails as before. The dyno check, with the same Ruby,
    exits as the delivery went."""
    case = CASES[shape]
    server = shape_servers[case.server]
    server.clear()
    session = era_session("bullseye", tmp_path)
    config_vars = shape_config_vars(case, server.port)
    deploy(session, build_shape(world, tmp_path / "build", case, server.port, shape_ca))

    delivery = run_on_dyno(session, config_vars)
    assert_delivery_settings(case, delivery_settings(delivery), "/app")
    if case.delivers:
        assert delivery.returncode == 0, delivery_output(delivery)
        (message,) = server.wait_for_messages(1)
        assert message.tls and message.authenticated_as == SHAPE_LOGIN
    else:
        assert "certificate verify failed" in delivery.stderr, delivery_output(delivery)
        assert server.messages == ()

    arguments = case.check_arguments(server.port)
    check = run_on_dyno(session, config_vars, *arguments, command=DYNO_CHECK_COMMAND)
    assert check.returncode == case.check_status, delivery_output(check)
    assert "Nothing else is trusted: this net/smtp has no default store" in check.stdout
    if case.delivers:
        assert "verified, TLSv1." in check.stdout, delivery_output(check)
    else:
        assert "and the buildpack leaves settings that name a ca_file" in check.stderr
    if arguments:
        assert run_on_dyno(session, config_vars, command=DYNO_CHECK_COMMAND).returncode == 3
    assert len(server.messages) == (1 if case.delivers else 0)  # the check sent none
    assert SHAPE_PASSWORD not in delivery.stdout + delivery.stderr + check.stdout + check.stderr


def test_ruby_27_an_app_that_names_no_verify_mode_now_refuses_a_server_whose_ca_is_nowhere(
    world: World,
    tmp_path: Path,
    shape_ca: trustme.CA,
    shape_servers: dict[ServerMode, SMTPTestServer],
) -> None:
    """Before: Ruby 2.7 sends its mail and password to any server that answers. After the
    buildpack: refused, and the dyno check fails as the delivery does. SMTP_CA_VERIFY_DEFAULT=off
    brings the old behaviour back, and the check never passes it."""
    case = CASES["no-verify-mode"]
    session = era_session("bullseye", tmp_path)
    provider = shape_servers["starttls"]
    provider.clear()
    built = build_shape(world, tmp_path / "build", case, provider.port, shape_ca)
    with SMTPTestServer(
        mode="starttls", ca=trustme.CA(), credentials=(SHAPE_LOGIN, SHAPE_PASSWORD)
    ) as impostor:
        impostor_vars = shape_config_vars(case, impostor.port)
        before = start_dyno(session, make_rails_app(tmp_path / "plain", case.shape), impostor_vars)
        assert before.returncode == 0, delivery_output(before)
        assert impostor.wait_for_messages(1)[0].authenticated_as == SHAPE_LOGIN

        deploy(session, built)
        after = run_on_dyno(session, impostor_vars)
        assert after.returncode == 1, delivery_output(after)
        assert "certificate verify failed" in after.stderr
        check = run_on_dyno(session, impostor_vars, command=DYNO_CHECK_COMMAND)
        assert check.returncode == 1, delivery_output(check)
        assert "certificate verify failed" in check.stderr

        off = {**impostor_vars, "SMTP_CA_VERIFY_DEFAULT": "off"}
        turned_off = run_on_dyno(session, off)
        assert turned_off.returncode == 0, delivery_output(turned_off)
        assert len(impostor.wait_for_messages(2)) == 2
        assert run_on_dyno(session, off, command=DYNO_CHECK_COMMAND).returncode == 1

    # Off, against the real provider: the handshake would verify, but the delivery does not.
    off = shape_config_vars(case, provider.port, SMTP_CA_VERIFY_DEFAULT="off")
    check = run_on_dyno(session, off, command=DYNO_CHECK_COMMAND)
    assert check.returncode == 1, delivery_output(check)
    assert (
        "Verify mode: none (openssl_verify_mode: not set, and SMTP_CA_VERIFY_DEFAULT=off leaves "
        "it so: without one, this mail gem and net/smtp verify nothing)" in check.stdout
    )
    assert f"localhost:{provider.port} (STARTTLS): verified, TLSv1." in check.stdout
    assert (
        "its deliveries verify nothing, since its settings name no openssl_verify_mode and "
        "SMTP_CA_VERIFY_DEFAULT=off." in check.stderr
    ), delivery_output(check)
    assert (
        " !     Fix: Let the buildpack fill in peer at each delivery: heroku config:unset "
        "SMTP_CA_VERIFY_DEFAULT" in check.stderr
    )
    assert provider.messages == ()
