"""Minimal Rails apps of the shapes people run, and running their mail delivery the way a dyno
starts.

The apps live in ``tests/fixtures/rails``: ``common/`` (application, environment, a production.rb
with no smtp_settings, the ``bin/send-test-mail`` script, ``lib/smtp_ca_test_mail.rb`` which says
how it sends, an empty ``config/initializers/``) plus one ``shapes/<shape>/`` overlay per shape.

Mastodon's generations (``MASTODON_SHAPES``), read from Mastodon's config vars (SMTP_SERVER ...):

* ``"mastodon-1.3"``: smtp_settings has no ``ca_file`` key at all;
* ``"mastodon-1.4"``: ``ca_file: ENV['SMTP_CA_FILE'].presence``;
* ``"mastodon-3.5"``: ``ca_file: ENV['SMTP_CA_FILE'].presence ||
  '/etc/ssl/certs/ca-certificates.crt'``.

Other Rails apps (``APP_SHAPES``), each with its settings in one of the places apps put them,
read from config vars of their own (``app_config_vars``: SMTP_ADDRESS, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD; the Mailgun add-on's for ``"mailgun-addon"``). Their header comments say which.

They run on Debian's ruby + ruby-actionmailer + ruby-railties (no Bundler, no Gemfile): Debian
12's Rails 6.1 here, and unchanged on bullseye's Rails 6.0 and trixie's 7.2 in
tests/e2e/test_eras.py.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from support.offline_inputs import skip_or_fail
from support.slices import E2E, require

MastodonShape = Literal["mastodon-1.3", "mastodon-1.4", "mastodon-3.5"]
MASTODON_SHAPES: tuple[MastodonShape, ...] = get_args(MastodonShape)
AppShape = Literal[
    "smtp-settings-initializer",
    "assigned-after-boot",
    "after-initialize-hook",
    "mailer-options",
    "message-options",
    "after-action",
    "mailer-smtp-settings",
    "mail-gem",
    "mailgun-addon",
    "literal-host",
    "implicit-tls",
    "own-ca-file",
    "no-verify-mode",
]
APP_SHAPES: tuple[AppShape, ...] = get_args(AppShape)
Shape = MastodonShape | AppShape

FIXTURE_ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "rails"
SEND_SCRIPT = "bin/send-test-mail"
APT_INSTALL_COMMAND = "apt-get install -y ruby ruby-actionmailer ruby-railties"

#: What a dyno runs before the app's command: every readable .profile.d/*.sh, sourced in order.
DYNO_COMMAND = (
    'for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; exec ruby bin/send-test-mail'
)
# ``heroku run ruby .smtp-ca/check.rb ARGS``: the same dyno start, the build's dyno check.
DYNO_CHECK_COMMAND = (
    'for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; exec ruby .smtp-ca/check.rb "$@"'
)

_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def make_rails_app(dest: Path, shape: Shape) -> Path:
    """Materialise the fixture app of ``shape`` into ``dest`` (created; may exist empty).

    Returns ``dest``. Files already in ``dest`` are kept unless the fixture overwrites them.
    """
    if shape not in MASTODON_SHAPES + APP_SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {MASTODON_SHAPES + APP_SHAPES}")
    shutil.copytree(FIXTURE_ROOT / "common", dest, dirs_exist_ok=True)
    shutil.copytree(FIXTURE_ROOT / "shapes" / shape, dest, dirs_exist_ok=True)
    (dest / SEND_SCRIPT).chmod(0o755)
    return dest


def write_initializer(app_dir: Path, name: str, ruby_code: str) -> Path:
    """Write ``config/initializers/<name>`` (``.rb`` appended if missing) in ``app_dir``."""
    filename = name if name.endswith(".rb") else f"{name}.rb"
    path = app_dir / "config" / "initializers" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ruby_code, encoding="utf-8")
    return path


def smtp_config_vars(
    host: str,
    port: int,
    *,
    verify_mode: str | None = "peer",
    login: str | None = None,
    password: str | None = None,
    auth_method: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """Mastodon's SMTP config vars for a server at ``host:port``.

    No login means ``SMTP_AUTH_METHOD=none`` (Mastodon would otherwise default to ``plain``).
    ``extra`` adds or overrides variables verbatim, e.g. ``SMTP_CA_FILE=...``, ``SMTP_TLS="true"``.
    """
    env: dict[str, str] = {
        "SMTP_SERVER": host,
        "SMTP_PORT": str(port),
        "SMTP_FROM_ADDRESS": "notifications@localhost",
        "LOCAL_DOMAIN": "localhost",
    }
    if verify_mode is not None:
        env["SMTP_OPENSSL_VERIFY_MODE"] = verify_mode
    if login is not None:
        env["SMTP_LOGIN"] = login
        if password is not None:
            env["SMTP_PASSWORD"] = password
        if auth_method is not None:
            env["SMTP_AUTH_METHOD"] = auth_method
    else:
        env["SMTP_AUTH_METHOD"] = auth_method or "none"
    env.update(extra)
    return env


def app_config_vars(
    host: str, port: int, *, login: str, password: str, shape: Shape | None = None, **extra: str
) -> dict[str, str]:
    """The config vars an app of ``APP_SHAPES`` reads for a server at ``host:port``: its own
    names, or the Mailgun add-on's for ``"mailgun-addon"`` (``"literal-host"`` reads no
    address: its production.rb names the loopback address). ``extra`` adds or overrides."""
    if shape == "mailgun-addon":
        env = {
            "MAILGUN_SMTP_SERVER": host,
            "MAILGUN_SMTP_PORT": str(port),
            "MAILGUN_SMTP_LOGIN": login,
            "MAILGUN_SMTP_PASSWORD": password,
        }
    else:
        env = {
            "SMTP_ADDRESS": host,
            "SMTP_PORT": str(port),
            "SMTP_USERNAME": login,
            "SMTP_PASSWORD": password,
        }
    env["SMTP_FROM_ADDRESS"] = "notifications@localhost"
    env.update(extra)
    return env


def dyno_environment(app_dir: Path, config_vars: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of the delivery process: config vars plus a minimal base.

    Nothing is inherited from the test process (no SSL_CERT_FILE and friends). HOME is the app
    directory, as ``/app`` is on a dyno; PATH is a fixed system path with ruby's directory
    first, unless the config vars set PATH themselves.
    """
    ruby = shutil.which("ruby")
    path = f"{Path(ruby).parent}:{_BASE_PATH}" if ruby else _BASE_PATH
    env = {"PATH": path, "LANG": "C.UTF-8", "RAILS_ENV": "production"}
    env.update(config_vars)
    env["HOME"] = str(app_dir)
    return env


def run_delivery(
    app_dir: Path, env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``bin/send-test-mail`` as a dyno would start it, in ``app_dir`` with HOME=app_dir.

    ``env`` are the app's config vars; see :func:`dyno_environment` for what is added. Never
    raises on a failed delivery: check ``returncode`` and :func:`delivery_output`.
    """
    return _start_as_dyno(DYNO_COMMAND, app_dir, env, timeout=timeout)


def run_dyno_check(
    app_dir: Path, env: Mapping[str, str], *arguments: str, timeout: float = 90.0
) -> subprocess.CompletedProcess[str]:
    """``ruby .smtp-ca/check.rb ARGS`` as ``heroku run`` starts it, like :func:`run_delivery`."""
    return _start_as_dyno(DYNO_CHECK_COMMAND, app_dir, env, *arguments, timeout=timeout)


def _start_as_dyno(
    command: str, app_dir: Path, env: Mapping[str, str], *arguments: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    require(E2E, "starts an app as a dyno")
    return subprocess.run(
        ["bash", "-c", command, "dyno", *arguments],
        cwd=app_dir,
        env=dyno_environment(app_dir, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def assert_no_secret_or_backtrace(output: str, *secrets: str) -> None:
    """What a dyno printed holds none of ``secrets``, no Python traceback and no Ruby
    backtrace line."""
    for secret in secrets:
        assert secret not in output
    assert "Traceback" not in output
    assert not re.search(r"\.rb:\d+:in ", output), output  # a Ruby backtrace line


def delivery_output(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr of a delivery run, for assertions and failure messages."""
    return f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def effective_smtp_settings(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``ActionMailer::Base.smtp_settings`` the run used (string keys, password redacted)."""
    for line in proc.stdout.splitlines():
        if line.startswith("SMTP-SETTINGS "):
            settings: dict[str, Any] = json.loads(line.removeprefix("SMTP-SETTINGS "))
            return settings
    raise AssertionError(f"no SMTP-SETTINGS line in the output\n{delivery_output(proc)}")


def delivery_settings(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The settings the mail gem's SMTP delivery ran with (string keys, password redacted):
    what the app and the buildpack's delivery rules made of them, read after the delivery."""
    for line in proc.stdout.splitlines():
        if line.startswith("DELIVERY-SETTINGS "):
            settings: dict[str, Any] = json.loads(line.removeprefix("DELIVERY-SETTINGS "))
            return settings
    raise AssertionError(f"no DELIVERY-SETTINGS line in the output\n{delivery_output(proc)}")


@functools.cache
def ruby_rails_problem() -> str | None:
    """Why the Ruby end-to-end tests cannot run here, or None when ruby + Rails are usable."""
    ruby = shutil.which("ruby")
    if ruby is None:
        return "ruby is not installed"
    probe = (
        'require "rails"; require "action_mailer/railtie"; require "mail"; require "net/smtp"; '
        'print "rails=#{Rails.version} mail=#{Mail::VERSION.version} "; '
        'print "net-smtp=#{Net::SMTP::VERSION}"'
    )
    try:
        proc = subprocess.run(
            [ruby, "-e", probe],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": os.environ.get("PATH", _BASE_PATH), "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ruby could not load Rails/ActionMailer: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"ruby could not load Rails/ActionMailer: {last}"
    return None


def require_ruby_rails() -> None:
    """Skip the calling test when ruby/Rails are missing; on CI (CI=true) fail instead."""
    require(E2E, "starts an app with ruby and ActionMailer")
    problem = ruby_rails_problem()
    if problem is None:
        return
    skip_or_fail(f"needs ruby, Rails and ActionMailer ({problem}): run `{APT_INSTALL_COMMAND}`")
