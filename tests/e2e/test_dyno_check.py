"""``ruby .smtp-ca/check.rb``: the check a dyno runs with the app's own Ruby, end to end.

Each Mastodon shape is built once by bin/compile (a clean buildpack copy, a pip-less python3,
config vars in ENV_DIR, the provider's root as the bundle), then moved to another path and run
as a dyno: config vars in the environment, .profile.d sourced, HOME the app. The check then
boots the app with Debian's real Rails and ActionMailer and handshakes with a local aiosmtpd
server that asks for a login: every case proves that nothing logs in, nothing is sent and no
secret is printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtp_ca.wiring import (
    BUNDLE_PATH,
    DELIVERY_PATH,
    DYNO_CHECK_PARTS,
    DYNO_CHECK_PARTS_DIR,
    DYNO_CHECK_PATH,
    DYNO_CHECK_SOURCE,
    GENERATED_MARKER,
    INITIALIZER_PATH,
    REVOCATION_PATH,
    commit,
    plan_wiring,
)
from support.certs import Chain, make_chain, make_leaf, make_root, make_self_signed_leaf
from support.crl import make_crl
from support.heroku import move_to_dyno_path
from support.http_server import LocalServer
from support.pki import server_context
from support.rails_app import (
    MASTODON_SHAPES,
    assert_no_secret_or_backtrace,
    make_rails_app,
    require_ruby_rails,
    run_delivery,
    run_dyno_check,
    smtp_config_vars,
    write_initializer,
)
from support.scratch import fixture_dir
from support.silent_server import SilentServer
from support.smtp_server import SMTPTestServer, free_port
from support.world import World

pytestmark = pytest.mark.e2e

LOGIN = "mastodon-mailer-login"
PASSWORD = "SG.dyno-s3cret-never-printed"
CRL_PATH = "/dyno-issuing.crl"
# Where the dyno check sends a certificate cause the build's check explains.
BUILD_EXPLAINS = (
    " !     Fix: The build's check explains the certificate's cause: see the build log, or run "
    "bin/check HOST:PORT from a checkout of this buildpack.\n"
)


@pytest.fixture(scope="module")
def crls() -> Iterator[LocalServer]:
    """Where the provider publishes its CRL (plain http://, as CRL distribution points are)."""
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="module")
def provider(crls: LocalServer) -> Chain:
    """The mail provider's PKI: a root in no default store, an intermediate, a localhost leaf
    that names the intermediate's CRL."""
    chain = make_chain(
        "localhost",
        "127.0.0.1",
        prefix="smtp-ca Dyno Provider",
        leaf_options={"crl": crls.url(CRL_PATH)},
    )
    crls.serve(CRL_PATH, make_crl(chain.issuer))
    return chain


@pytest.fixture(scope="module")
def server(provider: Chain) -> Iterator[SMTPTestServer]:
    """The provider's STARTTLS server. It asks for a login, so a check that logged in would."""
    with SMTPTestServer(
        mode="starttls",
        ssl_context=server_context(provider.leaf, *provider.intermediates),
        credentials=(LOGIN, PASSWORD),
    ) as running:
        yield running


def mail_vars(port: int, **extra: str) -> dict[str, str]:
    return smtp_config_vars(
        "localhost", port, login=LOGIN, password=PASSWORD, auth_method="plain", **extra
    )


@pytest.fixture(scope="module")
def apps(
    world: World,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider: Chain,
    server: SMTPTestServer,
) -> dict[str, Path]:
    """Each shape, built with the provider's root as its bundle and moved to its dyno path."""
    require_ruby_rails()
    bundle_vars = world.bundle_vars("/dyno-provider-root.crt", provider.root.pem)
    built: dict[str, Path] = {}
    for shape in MASTODON_SHAPES:
        where = fixture_dir(request, tmp_path_factory, f"dyno-{shape}")
        build_dir = make_rails_app(where / "build_0123abcd", shape)
        build = world.build(
            where,
            {**mail_vars(server.port), **bundle_vars, "SMTP_CA_CHECK": "strict"},
            build_dir=build_dir,
        )
        assert build.returncode == 0, build.output
        assert f"Wrote {DYNO_CHECK_PATH}" in build.stdout
        built[shape] = move_to_dyno_path(build_dir, where / "app")
    return built


@dataclass(frozen=True)
class DynoRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def run_check(app: Path, config_vars: Mapping[str, str], *arguments: str) -> DynoRun:
    """``heroku run ruby .smtp-ca/check.rb ARGS`` as a dyno starts it."""
    started = time.monotonic()
    completed = run_dyno_check(app, config_vars, *arguments)
    return DynoRun(
        completed.returncode, completed.stdout, completed.stderr, time.monotonic() - started
    )


def assert_harmless(run: DynoRun, *servers: SMTPTestServer) -> None:
    """No login tried, no message delivered, no secret and no Ruby backtrace printed."""
    for smtp in servers:
        assert smtp.auth_commands == (), run.output
        assert smtp.messages == (), run.output
    assert_no_secret_or_backtrace(run.output, PASSWORD, LOGIN)


@pytest.fixture
def fresh(server: SMTPTestServer) -> SMTPTestServer:
    server.clear()
    return server


# --- the build writes it -------------------------------------------------------------------


def test_the_build_plans_the_check_with_its_marker_and_no_build_path(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    plan = plan_wiring(tmp_path, b"", ())
    (planned,) = [item for item in plan.files if item.relative_path == DYNO_CHECK_PATH]
    # The file rubocop and tests/ruby check is the file the app gets, byte for byte.
    assert planned.content == DYNO_CHECK_SOURCE.read_bytes()
    # Its parts, beside it, each the file tests/ruby checks and each marked as the build's.
    parts = {item.relative_path: item for item in plan.files}
    required = re.findall(r"^require_relative 'check/(\w+)'$", planned.content.decode(), re.M)
    assert sorted(f"{name}.rb" for name in required) == [part.name for part in DYNO_CHECK_PARTS]
    for part in DYNO_CHECK_PARTS:
        written = parts[f"{DYNO_CHECK_PARTS_DIR}/{part.name}"]
        assert written.content == part.read_bytes()
        assert GENERATED_MARKER in written.content.decode()[:512]
    text = planned.content.decode()
    assert GENERATED_MARKER in text[:512]
    text += "".join(part.read_text() for part in DYNO_CHECK_PARTS)
    assert f"  BUNDLE_PATH = '{BUNDLE_PATH}'" in text  # where the build writes the bundle
    assert f"    PATH = '{REVOCATION_PATH}'" in text  # and what it found about revocation
    # Where the build writes the delivery rules and the initializer that loads them.
    assert f"    DELIVERY_PATH = '{DELIVERY_PATH}'" in text
    assert f"    INITIALIZER_PATH = '{INITIALIZER_PATH}'" in text
    assert f"    GENERATED = '{GENERATED_MARKER}'" in text
    assert planned.mode == 0o755
    assert str(tmp_path) not in text
    commit(tmp_path, plan)
    assert (tmp_path / DYNO_CHECK_PATH).read_bytes() == planned.content
    for part in DYNO_CHECK_PARTS:
        assert (tmp_path / DYNO_CHECK_PARTS_DIR / part.name).read_bytes() == part.read_bytes()


def test_an_app_without_config_gets_no_check(tmp_path: Path) -> None:
    plan = plan_wiring(tmp_path, b"", ())
    assert DYNO_CHECK_PATH not in [item.relative_path for item in plan.files]


@pytest.mark.parametrize(
    "relative_path",
    [
        DYNO_CHECK_PATH,
        *(f"{DYNO_CHECK_PARTS_DIR}/{part.name}" for part in DYNO_CHECK_PARTS),
        DELIVERY_PATH,
    ],
)
def test_the_check_and_the_delivery_rules_parse_and_use_no_method_newer_than_ruby_2_7(
    tmp_path: Path, relative_path: str
) -> None:
    """Syntax newer than Ruby 2.7 is rubocop's to find (TargetRubyVersion 2.7 in .rubocop.yml,
    run by scripts/test); this parses the file as written and looks for what a grammar cannot
    see: methods and names that 2.7 does not have."""
    if shutil.which("ruby") is None:
        require_ruby_rails()  # skips, or fails on CI
    (tmp_path / "config").mkdir()
    commit(tmp_path, plan_wiring(tmp_path, b"", ()))
    script = tmp_path / relative_path
    parsed = subprocess.run(
        ["ruby", "-wc", str(script)], capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0 and parsed.stderr == "", parsed.stdout + parsed.stderr
    newer = {
        "implicit it (3.4)": r"\{\s*it\b",
        "Hash#except (3.0)": r"\.except\(",
        "Array#intersect? (3.1)": r"\.intersect\?",
    }
    text = script.read_text()
    found = {name for name, pattern in newer.items() if re.search(pattern, text, re.MULTILINE)}
    assert not found, found


# --- passes where the build's wiring is in place -------------------------------------------


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_passes_with_the_builds_wiring(
    apps: dict[str, Path], fresh: SMTPTestServer, crls: LocalServer, shape: str
) -> None:
    app = apps[shape]
    run = run_check(app, mail_vars(fresh.port))
    assert run.returncode == 0, run.output
    bundle = app / ".smtp-ca/ca-bundle.pem"
    assert f"-----> Checking localhost:{fresh.port} (STARTTLS)" in run.stdout
    assert f"ca_file: {bundle}, from the bundle the build wrote" in run.stdout
    assert re.search(r"exists, \d{3} certificates", run.stdout)  # the root and certifi's
    assert "Verify mode: peer" in run.stdout
    assert f"localhost:{fresh.port} (STARTTLS): verified, TLSv1." in run.stdout
    assert "  1. localhost, issued by smtp-ca Dyno Provider Intermediate CA 1" in run.stdout
    assert f"Anchored by smtp-ca Dyno Provider Root CA, from {bundle}." in run.stdout
    # Ruby checks no revocation: the check says what the build found, from the file it wrote.
    assert re.search(
        r"\n       What the build's check found about revocation on \d{4}-\d\d-\d\d \d\d:\d\d "
        r"UTC \(Ruby's OpenSSL checks no revocation when the app sends mail\):\n"
        rf"         Revocation: not revoked, says the CRL at {re.escape(crls.url(CRL_PATH))} "
        r"\(issued [^)]+\)\.\n"
        r"         Revocation of the intermediate smtp-ca Dyno Provider Intermediate CA 1: not "
        r"checked, it names no CRL distribution point and no OCSP responder\.\n",
        run.stdout,
    ), run.stdout
    assert run.stderr == "", run.output
    assert_harmless(run, fresh)


def test_the_servers_recorder_sees_a_real_delivery(
    apps: dict[str, Path], fresh: SMTPTestServer
) -> None:
    """The control for every "no AUTH, no message" assertion here: the app's own delivery,
    through the same server and wiring, logs in and is recorded."""
    app = apps["mastodon-1.4"]
    delivered = run_delivery(app, mail_vars(fresh.port))
    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert fresh.auth_commands == ("PLAIN",)
    assert len(fresh.wait_for_messages(1)) == 1


def test_implicit_tls(apps: dict[str, Path], provider: Chain) -> None:
    with SMTPTestServer(
        mode="implicit-tls",
        ssl_context=server_context(provider.leaf, *provider.intermediates),
        credentials=(LOGIN, PASSWORD),
    ) as smtps:
        for shape in ("mastodon-1.4", "mastodon-3.5"):  # 1.3 has no :tls setting at all
            run = run_check(apps[shape], mail_vars(smtps.port, SMTP_TLS="true"))
            assert run.returncode == 0, run.output
            assert f"Server: localhost:{smtps.port}, TLS from the first byte" in run.stdout
            assert f"localhost:{smtps.port} (TLS): verified" in run.stdout
            assert_harmless(run, smtps)


def test_verify_mode_none_is_verified_anyway_but_never_passes(
    apps: dict[str, Path], fresh: SMTPTestServer
) -> None:
    """The app's deliveries verify nothing: a server that would verify is no pass (exit 1), and
    the fix is the config var Mastodon reads."""
    run = run_check(apps["mastodon-3.5"], mail_vars(fresh.port, SMTP_OPENSSL_VERIFY_MODE="none"))
    assert run.returncode == 1, run.output
    assert "Verify mode: none (openssl_verify_mode: none)" in run.stdout
    assert f"localhost:{fresh.port} (STARTTLS): verified, TLSv1." in run.stdout
    assert "deliveries do not verify the server's certificate" in run.stderr
    assert (
        f" !     localhost:{fresh.port} (STARTTLS): not verified by the app: its deliveries verify "
        "nothing, since its settings name openssl_verify_mode none. This check verified the "
        "server with peer, so peer works." in run.stderr
    ), run.output
    assert (
        " !     Fix: Set SMTP_OPENSSL_VERIFY_MODE to peer: heroku config:set "
        "SMTP_OPENSSL_VERIFY_MODE=peer\n" in run.stderr
    ), run.output
    assert_harmless(run, fresh)


# --- fails, naming the file or the cause ---------------------------------------------------


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_fails_naming_the_file_when_SMTP_CA_FILE_cannot_anchor_the_chain(
    apps: dict[str, Path], fresh: SMTPTestServer, shape: str
) -> None:
    app = apps[shape]
    other = app / "other-ca.pem"
    other.write_bytes(make_root("smtp-ca Dyno Stranger Root CA").pem)
    run = run_check(app, mail_vars(fresh.port, SMTP_CA_FILE=str(other)))
    assert run.returncode == 1, run.output
    assert f"ca_file: {other}, from the config var SMTP_CA_FILE" in run.stdout
    assert (
        f" !     localhost:{fresh.port} (STARTTLS): certificate verify failed: no certificate "
        f"in {other} or OpenSSL's default store anchors the server's chain (unable to get local "
        "issuer certificate)." in run.stderr
    )
    # What the chain lacks is the build's to explain; the fix names it for the app's own file.
    assert f"or add the CA certificate smtp-ca Dyno Provider Root CA to {other}." in run.stderr
    assert " !     Fix: SMTP_CA_FILE points at" in run.stderr
    # The bundle's path on this dyno, not $HOME's: on Fir HOME is not the app.
    assert (
        f"heroku config:unset SMTP_CA_FILE (dynos then set it to {app}/.smtp-ca/ca-bundle.pem)"
        in run.stderr
    )
    assert_harmless(run, fresh)


@pytest.mark.parametrize("shape", MASTODON_SHAPES)
def test_fails_naming_the_file_when_SMTP_CA_FILE_does_not_exist(
    apps: dict[str, Path], fresh: SMTPTestServer, shape: str
) -> None:
    missing = apps[shape] / "config" / "gd_bundle-g2-g1.crt"
    run = run_check(apps[shape], mail_vars(fresh.port, SMTP_CA_FILE=str(missing)))
    assert run.returncode == 1, run.output
    if shape == "mastodon-1.3":
        # Its settings have no ca_file; the delivery rules fill one in only with a file that
        # exists, so the app trusts OpenSSL's default store alone and fails on the chain.
        assert f"SMTP_CA_FILE is set to {missing}, which does not exist on this dyno." in (
            run.stderr
        )
        assert "no certificate in OpenSSL's default store anchors" in run.stderr
    else:
        assert f"the ca_file {missing} does not exist on this dyno" in run.stderr
        assert (
            "SMTP_CA_FILE names a file that is not on the dyno. Use the bundle: heroku "
            f"config:unset SMTP_CA_FILE (dynos then set it to {apps[shape]}/.smtp-ca/"
            "ca-bundle.pem); or set it to a file the app commits." in run.stderr
        )
    assert "heroku config:unset SMTP_CA_FILE" in run.stderr
    assert_harmless(run, fresh)


def test_an_expired_certificate_points_at_the_builds_explanation(
    apps: dict[str, Path], provider: Chain
) -> None:
    """Expiry is a certificate cause the build's check explains against the same bundle: the
    dyno check names OpenSSL's reason and points there."""
    expired = make_leaf(provider.issuer, "localhost", "127.0.0.1", expired=True)
    with SMTPTestServer(
        mode="starttls",
        ssl_context=server_context(expired, *provider.intermediates),
        credentials=(LOGIN, PASSWORD),
    ) as smtp:
        run = run_check(apps["mastodon-3.5"], mail_vars(smtp.port))
    assert run.returncode == 1, run.output
    assert (
        f" !     localhost:{smtp.port} (STARTTLS): certificate verify failed (certificate has "
        "expired, OpenSSL code 10).\n !     The server presented:\n" in run.stderr
    ), run.output
    assert BUILD_EXPLAINS in run.stderr, run.output
    assert_harmless(run, smtp)


def test_a_host_name_mismatch_points_at_the_builds_explanation(
    apps: dict[str, Path], provider: Chain
) -> None:
    elsewhere = make_leaf(provider.issuer, "smtp.provider.test")
    with SMTPTestServer(
        mode="starttls",
        ssl_context=server_context(elsewhere, *provider.intermediates),
        credentials=(LOGIN, PASSWORD),
    ) as smtp:
        run = run_check(apps["mastodon-1.3"], mail_vars(smtp.port))
    assert run.returncode == 1, run.output
    assert (
        f"localhost:{smtp.port} (STARTTLS): certificate verify failed (hostname mismatch, "
        "OpenSSL code 62)." in run.stderr
    ), run.output
    assert BUILD_EXPLAINS in run.stderr, run.output
    assert_harmless(run, smtp)


def test_a_silent_server_is_bounded_by_timeout(apps: dict[str, Path]) -> None:
    with SilentServer() as silent:
        run = run_check(apps["mastodon-1.4"], mail_vars(silent.port), "--timeout", "2")
    assert run.returncode == 1, run.output
    assert (
        f"localhost:{silent.port} (STARTTLS): no answer within 2 s "
        "(waiting for the SMTP greeting)." in run.stderr
    )
    assert "set SMTP_TLS=true" in run.stderr
    assert run.seconds < 2 + 15, run.seconds  # the app's boot, plus at most the timeout
    assert_harmless(run)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--timeout", "soon"), '--timeout "soon": give seconds from 0.001 to 120'),
        (("--timeout", "0"), '--timeout "0": give seconds'),
        (("--timeout",), "--timeout needs a number of seconds."),
        (("--verbose",), 'unknown argument "--verbose".'),
        (("--bulk",), "this app has no bulk mailer settings"),
    ],
)
def test_usage_mistakes_exit_2(
    apps: dict[str, Path], fresh: SMTPTestServer, arguments: tuple[str, ...], message: str
) -> None:
    run = run_check(apps["mastodon-3.5"], mail_vars(fresh.port), *arguments)
    assert run.returncode == 2, run.output
    assert f" !     {message}" in run.stderr
    assert (
        " !     Usage: ruby .smtp-ca/check.rb [--bulk] [--address HOST [--port N]] "
        "[--timeout SECONDS]" in run.stderr
    )
    assert "-----> Checking" not in run.stdout
    assert_harmless(run, fresh)


# --- Mastodon 4.4's bulk mailer ------------------------------------------------------------

# What Mastodon 4.4+ loads from config/email.yml (config_for(:email)): the bulk mailer's
# settings under Rails.configuration.x.email.bulk_mail, from the BULK_SMTP_* variables.
BULK_MAILER = """\
Rails.application.configure do
  config.x.email = ActiveSupport::OrderedOptions.new
  config.x.email.bulk_mail = {
    smtp_settings: {
      port: ENV['BULK_SMTP_PORT'],
      address: ENV['BULK_SMTP_SERVER'],
      user_name: ENV['BULK_SMTP_LOGIN'],
      password: ENV['BULK_SMTP_PASSWORD'],
      authentication: 'plain',
      ca_file: ENV.fetch('BULK_SMTP_CA_FILE', '/etc/ssl/certs/ca-certificates.crt'),
      openssl_verify_mode: 'peer',
      enable_starttls_auto: true,
    },
  }
end
"""


def test_bulk_checks_mastodons_bulk_mailer_settings(
    apps: dict[str, Path], fresh: SMTPTestServer, provider: Chain, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    shutil.copytree(apps["mastodon-3.5"], app, symlinks=True)
    write_initializer(app, "bulk_mail", BULK_MAILER)
    bulk_vars = {
        "BULK_SMTP_SERVER": "localhost",
        "BULK_SMTP_PORT": str(fresh.port),
        "BULK_SMTP_LOGIN": LOGIN,
        "BULK_SMTP_PASSWORD": PASSWORD,
    }
    # The main settings point at a port nothing listens on: --bulk must not use them.
    config_vars = {**mail_vars(1), **bulk_vars}
    run = run_check(app, config_vars, "--bulk")
    assert run.returncode == 0, run.output
    assert "Settings: the bulk mailer's settings" in run.stdout
    assert f"ca_file: {app}/.smtp-ca/ca-bundle.pem, from the bundle the build wrote" in run.stdout
    assert "named by BULK_SMTP_CA_FILE" in run.stdout
    assert f"localhost:{fresh.port} (STARTTLS): verified" in run.stdout
    assert_harmless(run, fresh)

    unset = run_check(app, mail_vars(fresh.port), "--bulk")
    assert unset.returncode == 2, unset.output
    assert "BULK_SMTP_SERVER is not set" in unset.stderr


def test_a_self_signed_server_no_starttls_and_a_refused_port_are_named(
    apps: dict[str, Path],
) -> None:
    app = apps["mastodon-3.5"]
    self_signed = make_self_signed_leaf("localhost", "127.0.0.1")
    with SMTPTestServer(
        mode="starttls", ssl_context=server_context(self_signed), credentials=(LOGIN, PASSWORD)
    ) as smtp:
        run = run_check(app, mail_vars(smtp.port))
        assert run.returncode == 1, run.output
        assert re.search(
            rf"localhost:{smtp.port} \(STARTTLS\): certificate verify failed \(self.signed "
            r"certificate, OpenSSL code 18\)\.",
            run.stderr,
        ), run.output
        assert BUILD_EXPLAINS in run.stderr, run.output
        assert_harmless(run, smtp)

    with SMTPTestServer(mode="plain") as smtp:
        run = run_check(app, mail_vars(smtp.port))
        assert run.returncode == 1, run.output
        assert (
            f"localhost:{smtp.port} (STARTTLS): the server does not offer STARTTLS, so mail "
            "would go unencrypted and nothing can be verified." in run.stderr
        )
        assert_harmless(run, smtp)

    closed = free_port()
    run = run_check(app, mail_vars(closed))
    assert run.returncode == 1, run.output
    assert f" !     localhost:{closed} (STARTTLS): connection refused." in run.stderr
    assert_harmless(run)


def test_the_login_and_password_are_redacted_wherever_they_would_appear(
    apps: dict[str, Path], fresh: SMTPTestServer
) -> None:
    """A path that happens to hold the login and the password is printed with both taken out."""
    app = apps["mastodon-1.4"]
    named = app / f"{LOGIN}-{PASSWORD}.pem"
    run = run_check(app, mail_vars(fresh.port, SMTP_CA_FILE=str(named)))
    assert run.returncode == 1, run.output
    assert f"the ca_file {app}/[REDACTED]-[REDACTED].pem does not exist" in run.stderr
    assert_harmless(run, fresh)
