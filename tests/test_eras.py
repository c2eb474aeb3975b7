"""Real Rubies and Pythons of other eras, in Debian chroots made by .ci/prepare-chroots.

* bullseye: Ruby 2.7, Rails 6.0, mail 2.7.1. Its Net::SMTP.default_ssl_context is a bare
  SSLContext: with ``openssl_verify_mode: 'peer'``, ``ca_file`` is the only trust. The seed's
  client, run rather than modelled.
* trixie: Ruby 3.3, Rails 7.2, mail 2.8.1, net-smtp 0.5: modern Mastodon's.
* sid: python3.14 as python3 and no pip, like heroku-26's build image, with the release's real
  python3-pip served from a loopback apt repository.

Apps are built on the host with bin/compile (the session ``world``), copied into the chroot at
/app and started as a dyno: config vars in the environment, .profile.d sourced. The chroot shares
the host's network, so ActionMailer reaches the aiosmtpd server on the host's loopback. The
dyno check (``ruby .smtp-ca/check.rb``) runs there too, with each era's Ruby.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import trustme

from support.chroots import ChrootSession, add_to_system_store, require_chroot
from support.heroku26 import Heroku26Build
from support.rails_app import (
    DYNO_CHECK_COMMAND,
    DYNO_COMMAND,
    Shape,
    delivery_output,
    make_rails_app,
    smtp_config_vars,
)
from support.smtp_server import SMTPTestServer
from support.world import World, godaddy_vars

pytestmark = [pytest.mark.e2e, pytest.mark.needs_chroots]

PASSWORD = "SG.s3cret-password-never-printed"
GEMFILE_LOCKS = Path(__file__).parent / "fixtures" / "gemfile_lock"
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
    target = session.path("/app")
    if target.exists():
        shutil.rmtree(target)
    session.copy_in(app_dir, "/app")
    env = {**config_vars, "HOME": "/app", "RAILS_ENV": "production"}
    return session.run(["bash", "-c", command], env=env, cwd="/app", timeout=120)


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

    with Heroku26Build(session, world.inputs, tmp_path / "apt") as heroku26:
        bundle_vars = heroku26.bundle_vars("provider.pem", provider_ca.cert_pem.bytes())
        cold = heroku26.compile(
            "cold", {**mail_vars(provider_server), **bundle_vars, "SMTP_CA_CHECK": "strict"}
        )
        assert cold.returncode == 0, delivery_output(cold)
        assert "This python3 has no pip" in cold.stdout, delivery_output(cold)
        assert any("python3-pip" in path for path in heroku26.apt.requests)
        assert f"localhost:{provider_server.port} (STARTTLS): verified" in cold.stdout
        built = heroku26.app("cold")
        assert (built / ".smtp-ca" / "ca-bundle.pem").is_file()
        assert (built / ".profile.d" / "smtp-ca.sh").is_file()
        deps = session.path("/cache/smtp-ca/python-deps")
        assert list(deps.glob("*/markupsafe/_speedups.cpython-314-*.so")), delivery_output(cold)

        # Warm: the same cache, no apt, no pip; a server no bundle anchors fails strict.
        requests_before = len(heroku26.apt.requests)
        with SMTPTestServer(mode="starttls", ca=trustme.CA()) as stranger:
            warm = heroku26.compile(
                "warm", {**mail_vars(stranger), **bundle_vars, "SMTP_CA_CHECK": "strict"}
            )
        assert len(heroku26.apt.requests) == requests_before
    assert warm.returncode == 1, delivery_output(warm)
    assert "Using cached dependencies" in warm.stdout
    assert "This python3 has no pip" not in warm.stdout
    assert " !     " in warm.stderr
    assert "certificate verify failed" in warm.stderr, delivery_output(warm)
    assert "Traceback" not in warm.stdout + warm.stderr
    assert PASSWORD not in warm.stdout + warm.stderr
    assert not heroku26.app("warm").joinpath(".smtp-ca").exists()
