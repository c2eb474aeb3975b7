"""The verify-mode advice (smtp_ca.settings.verify_advice): in the app's own words, and only where a
delivery would verify nothing.

A Mastodon app hears about SMTP_OPENSSL_VERIFY_MODE; any other app about openssl_verify_mode in
its smtp_settings, and only when its Gemfile.lock names an old net/smtp and nothing fills a mode
in (SMTP_CA_VERIFY_DEFAULT=off, or no initializer), or when it names none. The last tests run
the build in-process on apps of their own making.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jinja2
import pytest

from smtp_ca import pipeline
from smtp_ca.output import Log
from smtp_ca.platforms.classic import ClassicPlatform
from smtp_ca.settings.app_config import read_app_mail_settings
from smtp_ca.settings.gemfile_lock import LockedGems, advise
from smtp_ca.settings.load import Settings, load_settings
from smtp_ca.settings.smtp import VERIFY_MODE_UNSET_NOTICE
from smtp_ca.settings.verify_advice import BULK_UNSET_NOTICE, AppFacts, app_facts
from support.paths import GEMFILE_LOCKS
from support.rails_app import make_rails_app
from support.smtp_server import SMTPTestServer
from support.wrapped_log import LogBuffer

LOCKS = GEMFILE_LOCKS
OLD = LockedGems("2.7.1", None, "2.7.4")  # Ruby 2.7.4's net/smtp: verifies nothing by default
NEW = LockedGems("2.8.1", "0.5.0", "3.3.5")
FILLS_IN = AppFacts(mastodon=False, fills_in_peer=True)
TURNED_OFF = AppFacts(mastodon=False, fills_in_peer=False, turned_off=True)
NO_INITIALIZER = AppFacts(mastodon=False, fills_in_peer=False)
MASTODON_FILLS_IN = AppFacts(mastodon=True, fills_in_peer=True)
MASTODON_OFF = AppFacts(mastodon=True, fills_in_peer=False, turned_off=True)


def settings_for(variables: dict[str, str] | None = None) -> Settings:
    return load_settings(variables or {}, "heroku-24")


def said(advice: object) -> str:
    lines, notices, mail_lines = (
        getattr(advice, name) for name in ("lines", "notices", "mail_lines")
    )
    return "\n".join([*lines, *notices, *mail_lines])


# --- an app that does not read SMTP_OPENSSL_VERIFY_MODE ----------------------------------------


@pytest.mark.parametrize("lock", [None, OLD, NEW, "Gemfile.lock is not UTF-8 text"])
@pytest.mark.parametrize("app", [FILLS_IN, TURNED_OFF, NO_INITIALIZER])
def test_an_app_of_its_own_is_told_nothing_about_mastodons_variable(
    lock: LockedGems | str | None, app: AppFacts
) -> None:
    settings = settings_for()
    assert VERIFY_MODE_UNSET_NOTICE in settings.notices  # what load_settings alone says
    advice = advise(settings, {}, lock, None, app)
    assert "SMTP_OPENSSL_VERIFY_MODE" not in said(advice)
    assert advice.verify_mode_notice is None


def test_an_old_net_smtp_with_nothing_filled_in_is_a_warning_in_the_apps_words() -> None:
    advice = advise(settings_for(), {}, OLD, None, TURNED_OFF)
    (warning,) = advice.notices
    assert warning == (
        "The app's smtp_settings name no openssl_verify_mode, and its Ruby 2.7.4's net/smtp "
        "then verifies no certificate, so any server that answers gets the mail and the SMTP "
        "password. Add openssl_verify_mode: 'peer' to them, or let the buildpack fill it in: "
        "heroku config:unset SMTP_CA_VERIFY_DEFAULT."
    )
    (without_initializer,) = advise(settings_for(), {}, OLD, None, NO_INITIALIZER).notices
    assert without_initializer.endswith("Add openssl_verify_mode: 'peer' to them.")


def test_an_old_net_smtp_whose_mode_is_filled_in_is_a_detail_not_a_warning() -> None:
    advice = advise(settings_for(), {}, OLD, None, FILLS_IN)
    assert advice.notices == ()
    assert advice.lines == (
        "The app's mail 2.7.1, Ruby 2.7.4",
        "Ruby 2.7.4's net/smtp alone verifies no certificate when the app's smtp_settings name "
        "no openssl_verify_mode; the buildpack's initializer fills in peer at delivery "
        "(SMTP_CA_VERIFY_DEFAULT=peer), so the app verifies the server",
    )


@pytest.mark.parametrize("app", [FILLS_IN, TURNED_OFF])
def test_a_verifying_net_smtp_is_a_detail_in_the_apps_words(app: AppFacts) -> None:
    advice = advise(settings_for(), {}, NEW, None, app)
    assert advice.notices == ()
    assert advice.lines[-1] == (
        "net-smtp 0.5.0 verifies the server's certificate against the system store when the "
        "app's smtp_settings name no openssl_verify_mode"
    )


@pytest.mark.parametrize("lock", [None, "Gemfile.lock lists no gems"])
def test_without_a_known_net_smtp_nothing_is_said(lock: str | None) -> None:
    advice = advise(settings_for(), {}, lock, None, TURNED_OFF)
    assert advice.notices == () and advice.mail_lines == ()


def test_an_app_that_names_its_own_mode_is_told_nothing() -> None:
    app = AppFacts(mastodon=False, fills_in_peer=False, turned_off=True, names_verify_mode=True)
    assert advise(settings_for(), {}, OLD, None, app).notices == ()


@pytest.mark.parametrize("lock", [None, NEW])
@pytest.mark.parametrize("fills_in", [True, False])
def test_settings_that_name_none_are_a_warning_whatever_else_holds(
    lock: LockedGems | None, fills_in: bool
) -> None:
    app = AppFacts(
        mastodon=False,
        fills_in_peer=fills_in,
        names_verify_mode=True,
        verify_none_files=("config/initializers/mail.rb",),
    )
    (warning,) = advise(settings_for(), {}, lock, None, app).notices
    assert warning == (
        "config/initializers/mail.rb sets openssl_verify_mode to none in the app's "
        "smtp_settings: the app verifies no certificate, so any server that answers gets the "
        "mail and the SMTP password. Use peer there (openssl_verify_mode: 'peer')."
    )


# --- Mastodon ----------------------------------------------------------------------------------


def test_mastodon_with_the_mode_filled_in_is_told_so_not_warned() -> None:
    advice = advise(settings_for(), {}, None, None, MASTODON_FILLS_IN)
    assert VERIFY_MODE_UNSET_NOTICE not in advice.notices and advice.notices == ()
    assert advice.mail_lines == (
        "SMTP_OPENSSL_VERIFY_MODE is not set: the buildpack's initializer fills in peer at "
        "delivery (SMTP_CA_VERIFY_DEFAULT=peer), so the app verifies the server, whichever "
        "net/smtp it runs",
    )
    old = advise(settings_for(), {}, OLD, None, MASTODON_FILLS_IN)
    assert old.notices == ()
    assert old.lines[-1] == (
        "Ruby 2.7.4's net/smtp alone verifies no certificate when SMTP_OPENSSL_VERIFY_MODE is not "
        "set; the buildpack's initializer fills in peer at delivery (SMTP_CA_VERIFY_DEFAULT=peer), "
        "so the app verifies the server"
    )


def test_mastodon_with_nothing_filled_in_keeps_its_warnings() -> None:
    assert VERIFY_MODE_UNSET_NOTICE in advise(settings_for(), {}, None, None, MASTODON_OFF).notices
    (exact,) = advise(settings_for(), {}, OLD, None, MASTODON_OFF).notices
    assert exact.startswith(
        "SMTP_OPENSSL_VERIFY_MODE is not set: the app's Ruby 2.7.4's net/smtp then verifies no "
        "certificate"
    )
    assert "(SMTP_CA_VERIFY_DEFAULT=off: the buildpack fills in nothing)" in exact
    assert exact.endswith("heroku config:set SMTP_OPENSSL_VERIFY_MODE=peer")


def test_mastodons_bulk_mailer_is_told_the_same() -> None:
    settings = settings_for({"BULK_SMTP_SERVER": "bulk.example.com"})
    assert BULK_UNSET_NOTICE in settings.notices
    filled = advise(settings, {}, None, None, MASTODON_FILLS_IN)
    assert BULK_UNSET_NOTICE not in filled.notices
    assert filled.mail_lines[-1].startswith("BULK_SMTP_OPENSSL_VERIFY_MODE is not set: the ")
    assert BULK_UNSET_NOTICE in advise(settings, {}, None, None, MASTODON_OFF).notices


# --- which app is which ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "config", "mastodon_variables", "default", "expected"),
    [
        # Mastodon's production.rb reads SMTP_OPENSSL_VERIFY_MODE, whatever is set.
        ("mastodon-3.5", True, False, "peer", AppFacts(True, True, names_verify_mode=True)),
        (
            "mastodon-1.3",
            True,
            True,
            "off",
            AppFacts(True, False, turned_off=True, names_verify_mode=True),
        ),
        # A Rails app of its own, even with a config var named SMTP_SERVER.
        ("own", True, True, "peer", AppFacts(False, True)),
        # No production.rb to tell: Mastodon's variables decide; no config/, no initializer.
        (None, False, True, "peer", AppFacts(True, False)),
        (None, False, False, "off", AppFacts(False, False)),
    ],
)
def test_app_facts(
    tmp_path: Path,
    shape: str | None,
    config: bool,
    mastodon_variables: bool,
    default: str,
    expected: AppFacts,
) -> None:
    if shape == "own":
        production = tmp_path / "config/environments/production.rb"
        production.parent.mkdir(parents=True)
        production.write_text(
            "config.action_mailer.smtp_settings = { address: ENV['SMTP_SERVER'] }"
        )
    elif shape is not None:
        make_rails_app(tmp_path, shape)  # type: ignore[arg-type]
    elif config:
        (tmp_path / "config").mkdir()
    facts = app_facts(
        tmp_path,
        read_app_mail_settings(tmp_path),
        verify_default=default,
        mastodon_variables=mastodon_variables,
    )
    assert facts == expected


# --- in a build --------------------------------------------------------------------------------


class Build:
    """pipeline.run in-process, as bin/compile runs it; each call a build of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.builds = 0

    def __call__(self, app: Path, server: SMTPTestServer, **config_vars: str) -> str:
        self.builds += 1
        env_dir = self.root / f"env-{self.builds}"
        env_dir.mkdir()
        variables = {
            "SMTP_CA_BUNDLE_URL": "none",
            "SMTP_CA_PUBLIC_ROOTS": "false",
            "SMTP_CA_CERTS": server.ca_pem.decode(),
            **config_vars,
        }
        for name, value in variables.items():
            (env_dir / name).write_text(value)
        buildpack = self.root / "buildpack"
        buildpack.mkdir(exist_ok=True)
        out, err = LogBuffer(), LogBuffer()
        platform = ClassicPlatform(app, self.root / "cache", env_dir, buildpack)
        pipeline.run(platform, Log(out=out, err=err))
        return out.getvalue() + err.getvalue()


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Build:
    site_packages = Path(jinja2.__file__).resolve().parents[1]
    monkeypatch.setattr(pipeline, "ensure_dependencies", lambda *args, **kwargs: site_packages)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("STACK", "heroku-24")
    return Build(tmp_path)


def _own_rails_app(root: Path, lock: str) -> Path:
    """A Rails app of its own: the Mailgun add-on's variables in its production.rb."""
    app = root / "app"
    production = app / "config/environments/production.rb"
    production.parent.mkdir(parents=True)
    production.write_text(
        "Rails.application.configure do\n"
        "  config.action_mailer.delivery_method = :smtp\n"
        "  config.action_mailer.smtp_settings = {\n"
        "    address: ENV['MAILGUN_SMTP_SERVER'], port: ENV['MAILGUN_SMTP_PORT'],\n"
        "    user_name: ENV['MAILGUN_SMTP_LOGIN'], password: ENV['MAILGUN_SMTP_PASSWORD'],\n"
        "  }\nend\n"
    )
    shutil.copy(LOCKS / lock, app / "Gemfile.lock")
    return app


def test_a_rails_app_of_its_own_on_ruby_27_hears_about_its_own_setting(
    tmp_path: Path, build: Build
) -> None:
    with SMTPTestServer(mode="starttls") as server:
        app = _own_rails_app(tmp_path, "mastodon-3.4.lock")  # Ruby 2.7.4, no net-smtp gem
        mailgun = {"MAILGUN_SMTP_SERVER": "localhost", "MAILGUN_SMTP_PORT": str(server.port)}
        by_default = build(app, server, **mailgun)
        turned_off = build(app, server, **mailgun, SMTP_CA_VERIFY_DEFAULT="off")
    for output in (by_default, turned_off):
        assert "SMTP_OPENSSL_VERIFY_MODE" not in output
        assert f"localhost:{server.port} (STARTTLS): verified" in output
    assert " !     " not in by_default
    assert (
        "       Ruby 2.7.4's net/smtp alone verifies no certificate when the app's smtp_settings "
        "name no openssl_verify_mode; the buildpack's initializer fills in peer"
    ) in by_default
    assert (
        " !     Warning: The app's smtp_settings name no openssl_verify_mode, and its Ruby "
        "2.7.4's net/smtp then verifies no certificate"
    ) in turned_off


def test_mastodon_hears_about_its_config_var_as_before(tmp_path: Path, build: Build) -> None:
    with SMTPTestServer(mode="starttls") as server:
        app = make_rails_app(tmp_path / "app", "mastodon-1.4")
        shutil.copy(LOCKS / "mastodon-3.4.lock", app / "Gemfile.lock")
        mastodon = {"SMTP_SERVER": "localhost", "SMTP_PORT": str(server.port)}
        by_default = build(app, server, **mastodon)
        turned_off = build(app, server, **mastodon, SMTP_CA_VERIFY_DEFAULT="off")
    assert " !     Warning: SMTP_OPENSSL_VERIFY_MODE" not in by_default
    assert "SMTP_OPENSSL_VERIFY_MODE is not set; the buildpack's initializer fills in peer" in (
        by_default
    )
    assert (
        " !     Warning: SMTP_OPENSSL_VERIFY_MODE is not set: the app's Ruby 2.7.4's net/smtp "
        "then verifies no certificate"
    ) in turned_off
