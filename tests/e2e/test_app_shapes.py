"""Every Rails app's mail, not only Mastodon's: the bundle reaches each SMTP delivery, whatever
shape the app's settings take, and the dyno check says what that delivery does.

Each shape of support.rails_app.APP_SHAPES (an initializer that sorts after smtp_ca.rb, settings
assigned after boot or in an after_initialize hook, per mailer, per message, in an after_action,
the mail gem without ActionMailer, the Mailgun add-on's config vars, a literal host, TLS from
the first byte, an app's own ca_file, no verify mode) is built once by bin/compile (a clean
buildpack copy, a pip-less python3, config vars in ENV_DIR), moved to another path and started
as a dyno (config vars in the environment, .profile.d sourced). It sends one real mail with
Debian's Rails through a loopback server whose CA is only in the bundle (SMTP_CA_CERTS), and
``ruby .smtp-ca/check.rb`` runs against the same server. See support.app_shapes for what each
shape is expected to do.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from smtp_ca.wiring import DELIVERY_PATH, INITIALIZER_PATH
from support.app_shapes import (
    BUNDLE,
    CASES,
    LOGIN,
    PASSWORD,
    ServerMode,
    ShapeCase,
    assert_delivery_settings,
    bundle_config_vars,
    shape_config_vars,
)
from support.heroku import move_to_dyno_path
from support.rails_app import (
    APP_SHAPES,
    AppShape,
    assert_no_secret_or_backtrace,
    delivery_output,
    delivery_settings,
    make_rails_app,
    require_ruby_rails,
    run_delivery,
    run_dyno_check,
)
from support.scratch import fixture_dir
from support.smtp_server import SMTPTestServer
from support.world import World

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def provider_ca() -> trustme.CA:
    """The mail provider's CA: in no default store; only the bundle the build writes has it."""
    return trustme.CA(organization_name="Shape Provider CA")


@pytest.fixture(scope="module")
def servers(provider_ca: trustme.CA) -> Iterator[dict[ServerMode, SMTPTestServer]]:
    """A STARTTLS server and a TLS-from-the-first-byte one, both asking for the app's login."""
    with (
        SMTPTestServer(mode="starttls", ca=provider_ca, credentials=(LOGIN, PASSWORD)) as starttls,
        SMTPTestServer(
            mode="implicit-tls", ca=provider_ca, credentials=(LOGIN, PASSWORD)
        ) as implicit,
    ):
        yield {"starttls": starttls, "implicit-tls": implicit}


@pytest.fixture(scope="module")
def built(
    world: World,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider_ca: trustme.CA,
    servers: dict[ServerMode, SMTPTestServer],
) -> Callable[[AppShape], Path]:
    """Each shape's app, built once (when a test first asks for it) with all its config vars
    and the provider's CA as the bundle, and moved to its dyno path."""
    require_ruby_rails()
    where = fixture_dir(request, tmp_path_factory, "shapes")
    apps: dict[AppShape, Path] = {}

    def build(shape: AppShape) -> Path:
        if shape not in apps:
            case = CASES[shape]
            config_vars = {
                **shape_config_vars(case, servers[case.server].port),
                **bundle_config_vars(provider_ca.cert_pem.bytes()),
            }
            build_dir = make_rails_app(where / shape / "build_0123abcd", shape)
            result = world.build(where / shape, config_vars, build_dir=build_dir)
            assert result.returncode == 0, result.output
            assert f"Wrote {DELIVERY_PATH}" in result.stdout
            assert PASSWORD not in result.output
            apps[shape] = move_to_dyno_path(build_dir, where / shape / "app")
        return apps[shape]

    return build


def _server(servers: dict[ServerMode, SMTPTestServer], case: ShapeCase) -> SMTPTestServer:
    server = servers[case.server]
    server.clear()
    return server


@pytest.mark.parametrize("shape", APP_SHAPES)
def test_each_shape_delivers_verified_with_the_bundle_and_the_check_agrees(
    built: Callable[[AppShape], Path],
    servers: dict[ServerMode, SMTPTestServer],
    shape: AppShape,
) -> None:
    case = CASES[shape]
    app = built(shape)
    server = _server(servers, case)
    config_vars = shape_config_vars(case, server.port)

    delivery = run_delivery(app, config_vars)
    assert_delivery_settings(case, delivery_settings(delivery), app)
    assert_no_secret_or_backtrace(delivery.stdout + delivery.stderr, PASSWORD)
    if case.delivers:
        assert delivery.returncode == 0, delivery_output(delivery)
        (message,) = server.wait_for_messages(1)
        assert message.tls
        assert message.authenticated_as == LOGIN
    else:
        assert delivery.returncode == 1, delivery_output(delivery)
        assert "certificate verify failed" in delivery.stderr, delivery_output(delivery)
        assert server.messages == ()

    check = run_dyno_check(app, config_vars, *case.check_arguments(server.port))
    output = check.stdout + check.stderr
    assert check.returncode == case.check_status, output
    assert_no_secret_or_backtrace(output, PASSWORD, LOGIN)
    assert len(server.messages) == (1 if case.delivers else 0), output  # the check sends none
    assert len(server.auth_commands) == (1 if case.delivers else 0), output  # nor logs in
    where = f"{case.host}:{server.port} ({'TLS' if case.server == 'implicit-tls' else 'STARTTLS'})"
    if case.delivers:
        assert f"{where}: verified, TLSv1." in check.stdout, output
        assert f"ca_file: {app}/{BUNDLE}, from the bundle the build wrote" in check.stdout, output
        assert (
            f"The settings name no ca_file or ca_path: {DELIVERY_PATH} fills in ca_file at each "
            "delivery." in check.stdout
        ), output
        assert check.stderr == "", output
    else:
        own = f"{app}/config/environments/gd_bundle-g2-g1.crt"
        assert f"ca_file: {own}, from the app's own settings (ca_file in " in check.stdout, output
        assert f"{where}: certificate verify failed: no certificate in {own}" in check.stderr
        assert (
            f" !     Fix: The app's settings name their own ca_file, {own}, and the buildpack "
            "leaves settings that name a ca_file or a ca_path as the app wrote them, so its "
            "deliveries do not get the bundle. Remove ca_file from "
            "ActionMailer::Base.smtp_settings (every delivery then gets the bundle the build "
            f"wrote, {app}/{BUNDLE})" in check.stderr
        ), output
        assert "deploy again" not in check.stderr, output


@pytest.mark.parametrize(
    "shape", [case.shape for case in CASES.values() if not case.base_names_server]
)
def test_where_the_base_settings_name_no_server_the_check_says_so_and_exits_3(
    built: Callable[[AppShape], Path],
    servers: dict[ServerMode, SMTPTestServer],
    shape: AppShape,
) -> None:
    case = CASES[shape]
    app = built(shape)
    server = _server(servers, case)
    check = run_dyno_check(app, shape_config_vars(case, server.port))
    assert check.returncode == 3, check.stdout + check.stderr
    assert (
        " !     nothing to check: ActionMailer::Base.smtp_settings name no server (ActionMailer's "
        "default, localhost:25)" in check.stderr
    ), check.stderr
    assert (
        " !     Next: To check the server those mailers use, with the app's other settings "
        "applied as a delivery applies them: ruby .smtp-ca/check.rb --address HOST --port PORT"
        in check.stderr
    ), check.stderr
    assert "-----> Checking" not in check.stdout
    assert (server.messages, server.auth_commands) == ((), ())


def test_the_mail_gem_on_its_own_is_checked_through_mail_defaults(
    built: Callable[[AppShape], Path], servers: dict[ServerMode, SMTPTestServer]
) -> None:
    case = CASES["mail-gem"]
    server = _server(servers, case)
    check = run_dyno_check(built("mail-gem"), shape_config_vars(case, server.port))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Settings: the mail gem's Mail.defaults (RAILS_ENV=production)" in check.stdout


def test_the_check_reads_the_verify_mode_the_rules_fill_in(
    built: Callable[[AppShape], Path], servers: dict[ServerMode, SMTPTestServer]
) -> None:
    case = CASES["no-verify-mode"]
    server = _server(servers, case)
    check = run_dyno_check(built("no-verify-mode"), shape_config_vars(case, server.port))
    assert check.returncode == 0, check.stdout + check.stderr
    assert (
        f"Verify mode: peer (openssl_verify_mode: not set; {DELIVERY_PATH} fills in peer at each "
        "delivery, as net-smtp 0.2.0 and later do)" in check.stdout
    )


def _copy_with_initializer(built_app: Path, destination: Path, old: str, new: str) -> Path:
    """A copy of a built app whose config/initializers/smtp_settings.rb says ``new`` where it
    said ``old``: the app's own code, changed after the build."""
    shutil.copytree(built_app, destination, symlinks=True)
    initializer = destination / "config" / "initializers" / "smtp_settings.rb"
    text = initializer.read_text()
    assert old in text
    initializer.write_text(text.replace(old, new))
    return destination


def test_a_delivery_that_verifies_nothing_never_passes_and_the_fix_names_the_apps_setting(
    built: Callable[[AppShape], Path],
    servers: dict[ServerMode, SMTPTestServer],
    tmp_path: Path,
) -> None:
    """An app that names openssl_verify_mode: 'none' itself: the rules leave it, its deliveries
    verify nothing, and the check says so (exit 1) although the server would verify. It is not
    Mastodon, so the fix speaks of its own setting, not SMTP_OPENSSL_VERIFY_MODE."""
    case = CASES["smtp-settings-initializer"]
    app = _copy_with_initializer(
        built(case.shape),
        tmp_path / "app",
        "openssl_verify_mode: 'peer'",
        "openssl_verify_mode: 'none'",
    )
    server = _server(servers, case)
    check = run_dyno_check(app, shape_config_vars(case, server.port))
    output = check.stdout + check.stderr
    assert check.returncode == 1, output
    assert "Verify mode: none (openssl_verify_mode: none)" in check.stdout
    where = f"localhost:{server.port} (STARTTLS)"
    assert f"{where}: verified, TLSv1." in check.stdout  # the check verified, with peer
    assert (
        f" !     {where}: not verified by the app: its deliveries verify nothing, since its "
        "settings name openssl_verify_mode none. This check verified the server with peer, so "
        "peer works." in check.stderr
    ), output
    assert (
        " !     Fix: Make the app's settings say openssl_verify_mode: 'peer' (where it sets "
        "ActionMailer::Base.smtp_settings)." in check.stderr
    ), output
    assert "SMTP_OPENSSL_VERIFY_MODE" not in output
    assert_no_secret_or_backtrace(output, PASSWORD, LOGIN)


def test_an_apps_own_initializer_in_place_of_the_buildpacks_and_the_check_agrees(
    built: Callable[[AppShape], Path],
    servers: dict[ServerMode, SMTPTestServer],
    tmp_path: Path,
) -> None:
    """The app took config/initializers/smtp_ca.rb over (the build keeps it) and it does not load
    the delivery rules: deliveries get no bundle and fail, and the check applies no rules
    either, fails as they do, and says why."""
    case = CASES["smtp-settings-initializer"]
    app = tmp_path / "app"
    shutil.copytree(built(case.shape), app, symlinks=True)
    (app / INITIALIZER_PATH).write_text("# The app's own: it sets nothing.\n")
    server = _server(servers, case)
    config_vars = shape_config_vars(case, server.port)

    delivery = run_delivery(app, config_vars)
    assert delivery.returncode == 1, delivery_output(delivery)
    assert "certificate verify failed" in delivery.stderr
    assert "ca_file" not in delivery_settings(delivery)

    check = run_dyno_check(app, config_vars)
    assert check.returncode == 1, check.stdout + check.stderr
    assert (
        "Not in place: .smtp-ca/delivery.rb, because the app's own config/initializers/smtp_ca.rb "
        "(the build keeps it) did not hook .smtp-ca/delivery.rb into the mail gem." in check.stdout
    )
    assert "certificate verify failed: no certificate in OpenSSL's default store" in check.stderr
    assert (
        " !     Fix: The app's own config/initializers/smtp_ca.rb (the build keeps it) did not "
        "hook .smtp-ca/delivery.rb into the mail gem, so deliveries do not get the bundle. Delete "
        "config/initializers/smtp_ca.rb from the app and deploy again" in check.stderr
    ), check.stderr
    assert server.messages == ()


def test_the_check_refuses_a_bad_address_or_port(
    built: Callable[[AppShape], Path], servers: dict[ServerMode, SMTPTestServer]
) -> None:
    case = CASES["mailer-options"]
    app = built(case.shape)
    config_vars = shape_config_vars(case, servers["starttls"].port)
    for arguments, message in [
        (("--port", "587"), "--port goes with --address HOST."),
        (("--address",), "--address needs the SMTP server's host name."),
        (("--address", "smtp.example.com:587"), "give the port on its own: --address "),
        (("--address", "smtp example.com"), "give a host name or an IP address"),
        (("--address", "localhost", "--port", "70000"), "give a port number from 1 to 65535"),
    ]:
        check = run_dyno_check(app, config_vars, *arguments)
        assert check.returncode == 2, check.stdout + check.stderr
        assert message in check.stderr, check.stderr
        assert re.search(r"Usage: ruby \.smtp-ca/check\.rb .*--address HOST", check.stderr)
