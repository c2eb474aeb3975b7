"""smtp_ca.settings.gemfile_lock: the app's mail, net-smtp and Ruby, and the exact warnings
they allow.

The lock files are cut-down Mastodon locks of three eras (tests/fixtures/gemfile_lock); the
production.rb files are the Rails fixture's shapes. The last tests run whole builds.
"""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

import pytest

from smtp_ca.output import Log
from smtp_ca.settings.gemfile_lock import (
    LockedGems,
    advise,
    read_gemfile_lock,
    tailor_to_gemfile_lock,
)
from smtp_ca.settings.load import Settings, load_settings
from smtp_ca.settings.smtp import VERIFY_MODE_UNSET_NOTICE
from support.paths import GEMFILE_LOCKS
from support.rails_app import FIXTURE_ROOT, make_rails_app, smtp_config_vars
from support.unprivileged import give_to_nobody, sandbox
from support.world import World, godaddy_vars
from support.wrapped_log import LogBuffer

LOCKS = GEMFILE_LOCKS
ARGUMENT_ERROR = 'ArgumentError: Unrecognized :enable_starttls_auto value "true"'


def app_with_lock(tmp_path: Path, lock: str) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    shutil.copy(LOCKS / lock, app / "Gemfile.lock")
    return app


def production_rb(shape: str) -> str:
    return (FIXTURE_ROOT / "shapes" / shape / "config/environments/production.rb").read_text()


def settings_for(variables: dict[str, str]) -> Settings:
    return load_settings(variables, "heroku-24")


# Reading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        ("mastodon-1.3.lock", LockedGems(mail="2.6.5", net_smtp=None, ruby="2.4.1")),
        ("mastodon-3.4.lock", LockedGems(mail="2.7.1", net_smtp=None, ruby="2.7.4")),
        ("mastodon-4.3.lock", LockedGems(mail="2.8.1", net_smtp="0.5.0", ruby="3.3.5")),
    ],
)
def test_reads_the_locked_versions_not_the_dependency_lines(
    tmp_path: Path, lock: str, expected: LockedGems
) -> None:
    assert read_gemfile_lock(app_with_lock(tmp_path, lock)) == expected


def test_windows_line_endings_and_no_ruby_version(tmp_path: Path) -> None:
    text = (LOCKS / "mastodon-4.3.lock").read_text().split("RUBY VERSION")[0]
    (tmp_path / "Gemfile.lock").write_bytes(text.replace("\n", "\r\n").encode())
    assert read_gemfile_lock(tmp_path) == LockedGems(mail="2.8.1", net_smtp="0.5.0", ruby=None)


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        # 1.2 million characters: the log's line cap (4,000) used to be its only limit.
        (
            "3." * 600_000 + "3",
            "3.3.3.3.3.3.3.3.3.3.3.3.3.3.3.3.3.3.3.3.… (1,199,961 more characters)",
        ),
        # One number of 1.2 million digits: past what int() takes from text at all.
        (
            "3." + "1" * 1_200_000,
            "3.11111111111111111111111111111111111111… (1,199,962 more characters)",
        ),
    ],
)
def test_a_huge_version_is_cut_like_any_outside_text(
    tmp_path: Path, version: str, shown: str
) -> None:
    (tmp_path / "Gemfile.lock").write_text(
        f"GEM\n  specs:\n    mail (2.8.1)\n\nRUBY VERSION\n   ruby {version}\n"
    )
    out, err = LogBuffer(), LogBuffer()
    settings = settings_for({"SMTP_SERVER": "smtp.example.com"})
    tailored = tailor_to_gemfile_lock(settings, {}, tmp_path, Log(out=out, err=err))
    assert out.getvalue().splitlines() == [
        "-----> Reading the app's Gemfile.lock",
        f"       The app's mail 2.8.1, Ruby {shown}",
        f"       Ruby {shown}'s net/smtp verifies the server's certificate against the system "
        "store when SMTP_OPENSSL_VERIFY_MODE is not set",
    ]
    assert err.getvalue() == ""
    assert VERIFY_MODE_UNSET_NOTICE not in tailored.notices


def test_no_lock_file_is_none(tmp_path: Path) -> None:
    assert read_gemfile_lock(tmp_path) is None


@pytest.mark.parametrize(
    ("make", "note"),
    [
        (lambda p: p.mkdir(), "Gemfile.lock is not a regular file"),
        (lambda p: p.symlink_to(p.parent / "gone"), "Gemfile.lock is not a regular file"),
        (lambda p: p.write_bytes(b"GEM\n  specs:\n    mail (2.8.1\xff)\n"), "is not UTF-8"),
        (lambda p: p.write_text("<<<<<<< HEAD\nmerge conflict\n"), "lists no gems"),
        (lambda p: p.write_bytes(b" " * (2 * 1024 * 1024 + 1)), "larger than 2 MiB"),
    ],
    ids=["directory", "dangling-symlink", "not-utf8", "not-a-lock", "too-large"],
)
def test_an_odd_lock_file_is_a_note(tmp_path: Path, make: object, note: str) -> None:
    make(tmp_path / "Gemfile.lock")  # type: ignore[operator]
    found = read_gemfile_lock(tmp_path)
    assert isinstance(found, str) and note in found


def test_an_unreadable_lock_file_is_a_note() -> None:
    # Run as nobody when the tests run as root: root reads any file whatever its mode.
    with sandbox("smtp-ca-unreadable-lock-") as box:
        lock = app_with_lock(box.root, "mastodon-4.3.lock") / "Gemfile.lock"
        lock.chmod(0)
        give_to_nobody([lock.parent, lock])
        completed = box.python(
            "import sys; from pathlib import Path\n"
            "from smtp_ca.settings.gemfile_lock import read_gemfile_lock\n"
            "print(repr(read_gemfile_lock(Path(sys.argv[1]))))\n",
            str(lock.parent),
        )
    assert completed.returncode == 0, completed.stderr
    found = ast.literal_eval(completed.stdout)
    assert isinstance(found, str) and "cannot be read" in found


# Advice -----------------------------------------------------------------------------------------


def test_unset_verify_mode_on_ruby_before_3_is_an_exact_warning() -> None:
    settings = settings_for({})
    assert VERIFY_MODE_UNSET_NOTICE in settings.notices
    advice = advise(settings, {}, LockedGems("2.7.1", None, "2.7.4"), production_rb("mastodon-1.4"))
    assert advice.lines == ("The app's mail 2.7.1, Ruby 2.7.4",)
    assert VERIFY_MODE_UNSET_NOTICE not in advice.notices
    (exact,) = [n for n in advice.notices if "SMTP_OPENSSL_VERIFY_MODE" in n]
    assert "Ruby 2.7.4's net/smtp then verifies no certificate" in exact
    assert "heroku config:set SMTP_OPENSSL_VERIFY_MODE=peer" in exact


def test_the_general_notice_is_found_by_what_settings_recorded_not_by_its_words() -> None:
    # Settings say which of their notices is the general one: its wording may change (escaped,
    # reworded) without the exact notice appearing next to it.
    settings = settings_for({})
    reworded = "SMTP_OPENSSL_VERIFY_MODE is unset (reworded)."
    settings = dataclasses.replace(settings, notices=(reworded,), verify_mode_notice=reworded)
    advice = advise(settings, {}, LockedGems("2.7.1", None, "2.7.4"), None)
    assert reworded not in advice.notices
    assert advice.verify_mode_notice is None
    (exact,) = advice.notices
    assert "Ruby 2.7.4's net/smtp then verifies no certificate" in exact


@pytest.mark.parametrize(
    ("gems", "who"),
    [
        (LockedGems("2.8.1", "0.5.0", "3.3.5"), "net-smtp 0.5.0"),
        (LockedGems("2.8.1", "0.2.0", "2.7.4"), "net-smtp 0.2.0"),  # the gem, not Ruby's
        (LockedGems("2.7.1", None, "3.0.6"), "Ruby 3.0.6's net/smtp"),
    ],
)
def test_unset_verify_mode_on_a_verifying_net_smtp_is_no_warning(
    gems: LockedGems, who: str
) -> None:
    advice = advise(settings_for({}), {}, gems, None)
    assert not [n for n in advice.notices if "SMTP_OPENSSL_VERIFY_MODE" in n]
    assert f"{who} verifies the server's certificate against the system store" in "\n".join(
        advice.lines
    )


def test_an_old_net_smtp_gem_outranks_a_new_ruby() -> None:
    advice = advise(settings_for({}), {}, LockedGems("2.7.1", "0.1.0", "3.1.2"), None)
    assert any("net-smtp 0.1.0 then verifies no certificate" in n for n in advice.notices)


def test_peer_on_an_old_net_smtp_says_ca_file_is_its_only_trust() -> None:
    settings = settings_for({"SMTP_OPENSSL_VERIFY_MODE": "peer"})
    advice = advise(settings, {}, LockedGems("2.6.5", None, "2.4.1"), None)
    assert advice.notices == settings.notices
    assert any("trusts nothing but the ca_file" in line for line in advice.lines)


def test_without_net_smtp_or_ruby_the_general_notice_stays() -> None:
    settings = settings_for({})
    advice = advise(settings, {}, LockedGems("2.7.1", None, None), None)
    assert advice.notices == settings.notices
    assert advice.lines == ("The app's mail 2.7.1",)


def test_an_odd_lock_keeps_the_general_warnings_with_a_note() -> None:
    settings = settings_for({})
    advice = advise(settings, {}, "Gemfile.lock is not UTF-8 text", None)
    assert advice.notices == settings.notices
    assert advice.lines == ("Gemfile.lock is not UTF-8 text: the warnings below are general",)


@pytest.mark.parametrize("shape", ["mastodon-1.3", "mastodon-1.4", "mastodon-3.5"])
def test_mail_28_and_starttls_auto_as_a_string_is_the_argument_error(shape: str) -> None:
    variables = {"SMTP_ENABLE_STARTTLS_AUTO": "true", "SMTP_OPENSSL_VERIFY_MODE": "peer"}
    advice = advise(
        settings_for(variables),
        variables,
        LockedGems("2.8.1", "0.5.0", "3.3.5"),
        production_rb(shape),
    )
    (notice,) = advice.notices
    assert f"mail 2.8.1 then raises {ARGUMENT_ERROR}" in notice
    assert "heroku config:unset SMTP_ENABLE_STARTTLS_AUTO" in notice


def test_mail_27_takes_the_string() -> None:
    variables = {"SMTP_ENABLE_STARTTLS_AUTO": "true", "SMTP_OPENSSL_VERIFY_MODE": "peer"}
    advice = advise(
        settings_for(variables),
        variables,
        LockedGems("2.7.1", None, "2.7.4"),
        production_rb("mastodon-1.3"),
    )
    assert advice.notices == ()


def test_a_boolean_starttls_auto_line_is_no_warning() -> None:
    variables = {"SMTP_ENABLE_STARTTLS_AUTO": "true", "SMTP_OPENSSL_VERIFY_MODE": "peer"}
    modern = "enable_starttls_auto: ENV['SMTP_ENABLE_STARTTLS_AUTO'] != 'false',\n"
    advice = advise(
        settings_for(variables), variables, LockedGems("2.8.1", "0.5.0", "3.3.5"), modern
    )
    assert advice.notices == ()


@pytest.mark.parametrize(("shape", "warned"), [("mastodon-1.4", True), ("mastodon-3.5", False)])
def test_mail_28_and_tls_as_a_string(shape: str, warned: bool) -> None:
    variables = {"SMTP_TLS": "true", "SMTP_OPENSSL_VERIFY_MODE": "peer"}
    advice = advise(
        settings_for(variables),
        variables,
        LockedGems("2.8.1", "0.5.0", "3.3.5"),
        production_rb(shape),
    )
    tls = [n for n in advice.notices if 'Unrecognized :tls value "true"' in n]
    assert bool(tls) is warned


# In a build -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_build_names_the_apps_gems_and_warns_exactly(world: World, tmp_path: Path) -> None:
    build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-1.3")
    shutil.copy(LOCKS / "mastodon-4.3.lock", build_dir / "Gemfile.lock")
    config_vars = smtp_config_vars("localhost", 2525, verify_mode=None)
    build = world.build(
        tmp_path,
        {
            **config_vars,
            **godaddy_vars(),
            "SMTP_ENABLE_STARTTLS_AUTO": "true",
            "SMTP_CA_CHECK": "off",
        },
        build_dir=build_dir,
    )
    assert build.returncode == 0, build.output
    assert "-----> Reading the app's Gemfile.lock" in build.stdout
    assert "       The app's mail 2.8.1, net-smtp 0.5.0, Ruby 3.3.5" in build.stdout
    assert "net-smtp 0.5.0 verifies the server's certificate" in build.stdout
    assert "SMTP_OPENSSL_VERIFY_MODE is not set" not in build.stderr
    assert ARGUMENT_ERROR in build.stderr


@pytest.mark.e2e
def test_a_build_with_an_odd_lock_notes_it_and_goes_on(world: World, tmp_path: Path) -> None:
    build_dir = make_rails_app(tmp_path / "build_0123abcd", "mastodon-1.4")
    (build_dir / "Gemfile.lock").write_bytes(b"\xff\xfe not a lock")
    # SMTP_CA_VERIFY_DEFAULT=off: no verify mode is filled in, so the general warning stands.
    config_vars = {**godaddy_vars(), "SMTP_CA_CHECK": "off", "SMTP_CA_VERIFY_DEFAULT": "off"}
    build = world.build(tmp_path, config_vars, build_dir=build_dir)
    assert build.returncode == 0, build.output
    assert "Gemfile.lock is not UTF-8 text: the warnings below are general" in build.stdout
    assert "SMTP_OPENSSL_VERIFY_MODE is not set: Ruby 2.7 and older" in build.stderr
    assert "Traceback" not in build.output
