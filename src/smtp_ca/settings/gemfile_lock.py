"""Advice tailored to the app's own gems: mail, net-smtp and Ruby, as its Gemfile.lock names them.

Most Rails apps commit Gemfile.lock. What the app's mail client does with the config vars
depends on those versions, so the warnings can be exact instead of general:

* ``SMTP_OPENSSL_VERIFY_MODE`` unset verifies no certificate only on net/smtp before 0.2.0: the
  ``net-smtp`` gem when the lock has it, else the net/smtp bundled with Ruby before 3.0 (Ruby 3.0
  bundles net-smtp 0.2.1). From 0.2.0, ``Net::SMTP.default_ssl_context`` verifies the peer
  against the system store; before, it is a bare ``SSLContext``, which verifies nothing unless
  told to and then trusts ``ca_file`` alone. What that means for the app, in its own words and
  given the buildpack's initializer, is smtp_ca.settings.verify_advice's business.
* mail 2.8 and later take only true, false or nil for ``:enable_starttls_auto`` and ``:tls``,
  and raise ``ArgumentError: Unrecognized :enable_starttls_auto value "true"`` for the string
  that Mastodon 1.x to 3.x's ``ENV['SMTP_ENABLE_STARTTLS_AUTO'] || true`` passes whenever that
  config var is set (and likewise for ``ENV['SMTP_TLS'].presence``). The app's
  config/environments/production.rb says whether it has those expressions.

Standard library only. A lock file that cannot be read or makes no sense is a note in the log,
never a failure: the build goes on with the general warnings.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from smtp_ca.output import Log
from smtp_ca.settings.app_config import PRODUCTION_RB
from smtp_ca.settings.load import Settings
from smtp_ca.settings.verify_advice import (
    MASTODON_WITHOUT_INITIALIZER,
    AppFacts,
    advise_bulk_unset_mode,
    advise_unset_mode,
)
from smtp_ca.untrusted import shown

LOCK_NAME = "Gemfile.lock"
# Real lock files are tens of kilobytes; anything this large is not one.
MAX_BYTES = 2 * 1024 * 1024
# How much of a version the log quotes: "2.8.1", "0.3.1", "3.3.6"; rc and platform suffixes.
MAX_VERSION_SHOWN = 40

# "    mail (2.8.1)" or "    nokogiri (1.16.0-x86_64-linux)": a spec, four spaces in. Its own
# dependencies are six spaces in and are not versions that are installed.
_SPEC = re.compile(r"^    (?P<name>[A-Za-z0-9_.-]+) \((?P<version>[^)\s]+)\)$", re.MULTILINE)
_RUBY = re.compile(r"^RUBY VERSION\n\s+ruby (?P<version>\d+(?:\.\d+)+)", re.MULTILINE)
_NUMBERS = re.compile(r"\d+(?:\.\d+)*")
# The expressions that pass a config var's string straight to the mail gem.
_STARTTLS_AUTO_AS_STRING = re.compile(
    r"""ENV\[\s*['"]SMTP_ENABLE_STARTTLS_AUTO['"]\s*\]\s*\|\|\s*true"""
)
_TLS_AS_STRING = re.compile(r"""ENV\[\s*['"]SMTP_TLS['"]\s*\]\.presence\s*(?:,|\}|$)""", re.M)

# net/smtp verifies the peer by default from net-smtp 0.2.0, which Ruby 3.0 bundles first.
_VERIFYING_NET_SMTP = (0, 2, 0)
_VERIFYING_RUBY = (3, 0)
# mail's strict checks of :tls and :enable_starttls_auto came with 2.8.0.
_STRICT_MAIL = (2, 8)


@dataclass(frozen=True)
class LockedGems:
    """What the lock file says; None for what it does not name."""

    mail: str | None
    net_smtp: str | None
    ruby: str | None


@dataclass(frozen=True)
class Advice:
    lines: tuple[str, ...]
    """Detail lines for the log: the versions found, or why none were."""
    notices: tuple[str, ...]
    """The settings' notices, with the general verify-mode notice made exact."""
    verify_mode_notice: str | None = None
    """The settings' general verify-mode notice, when it is still one of ``notices``."""
    mail_lines: tuple[str, ...] = ()
    """Details for the first mail step (what a delivery does with no verify mode)."""


def read_gemfile_lock(app_dir: Path) -> LockedGems | str | None:
    """The app's locked gems; a note (str) when Gemfile.lock is there but cannot be used; None
    when the app has none."""
    path = app_dir / LOCK_NAME
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        if not path.is_file():
            return f"{LOCK_NAME} is not a regular file"
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as error:
        return f"{LOCK_NAME} cannot be read: {error.strerror or error}"
    if len(data) > MAX_BYTES:
        return f"{LOCK_NAME} is larger than {MAX_BYTES // (1024 * 1024)} MiB"
    try:
        text = data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return f"{LOCK_NAME} is not UTF-8 text"
    specs = {match["name"]: match["version"] for match in _SPEC.finditer(text)}
    ruby = _RUBY.search(text)
    if not specs and ruby is None:
        return f"{LOCK_NAME} lists no gems (is it a Bundler lock file?)"
    return LockedGems(
        mail=_as_read(specs.get("mail")),
        net_smtp=_as_read(specs.get("net-smtp")),
        ruby=_as_read(ruby["version"] if ruby else None),
    )


def _as_read(version: str | None) -> str | None:
    """A version from the lock file as the log may quote it: it is the app's text, which may
    be anything (a version of a million digits), so it is escaped and cut like any outside
    text. Its leading numbers, all that the advice compares, survive the cut."""
    return None if version is None else shown(version, MAX_VERSION_SHOWN)


def advise(
    settings: Settings,
    variables: Mapping[str, str],
    lock: LockedGems | str | None,
    production_rb: str | None,
    app: AppFacts = MASTODON_WITHOUT_INITIALIZER,
) -> Advice:
    """The log lines and notices for ``settings`` on the gems of ``lock``.

    ``variables`` are the config vars as set; ``production_rb`` is the text of the app's
    config/environments/production.rb, None when it has none; ``app`` what the verify-mode
    advice must know about the app (smtp_ca.settings.verify_advice).
    """
    general = settings.verify_mode_notice
    lines: list[str] = []
    notices = list(settings.notices)
    client = None
    if isinstance(lock, LockedGems):
        lines.append(_versions_line(lock))
        client = _net_smtp(lock)
    elif isinstance(lock, str):
        lines.append(f"{lock}: the warnings below are general")
    verify = advise_unset_mode(app, client, has_general_notice=general is not None)
    if verify.drop_general and general is not None:
        notices.remove(general)
        general = None
    lines += verify.lock_lines
    notices += verify.notices
    bulk_lines = advise_bulk_unset_mode(app, notices)
    if client is not None and settings.verify_mode == "peer" and not client[1] and app.mastodon:
        lines.append(
            f"{client[0]} trusts nothing but the ca_file it is given (not the system store): "
            "the app gets the bundle as its ca_file"
        )
    if isinstance(lock, LockedGems):
        notices += _strict_mail_notices(lock, variables, production_rb)
    return Advice(tuple(lines), tuple(notices), general, verify.mail_lines + bulk_lines)


def tailor_to_gemfile_lock(
    settings: Settings,
    variables: Mapping[str, str],
    app_dir: Path,
    log: Log,
    app: AppFacts = MASTODON_WITHOUT_INITIALIZER,
    production_rb: str | None = None,
) -> Settings:
    """Reads the app's Gemfile.lock, logs what it says with ``production_rb`` (the text of the
    app's production.rb, as ``app_config`` read it), and returns the settings with exact
    notices. Logs nothing for an app without a Gemfile.lock."""
    lock = read_gemfile_lock(app_dir)
    advice = advise(settings, variables, lock, production_rb, app)
    if lock is not None:
        log.step(f"Reading the app's {LOCK_NAME}")
        for line in advice.lines:
            log.info(line)
    return dataclasses.replace(
        settings,
        notices=advice.notices,
        verify_mode_notice=advice.verify_mode_notice,
        mail_lines=settings.mail_lines + advice.mail_lines,
    )


def _versions_line(lock: LockedGems) -> str:
    named = [
        f"{label} {version}"
        for label, version in (("mail", lock.mail), ("net-smtp", lock.net_smtp))
        if version
    ]
    if lock.ruby:
        named.append(f"Ruby {lock.ruby}")
    if not named:
        return f"{LOCK_NAME} names neither mail nor net-smtp nor Ruby's version"
    return "The app's " + ", ".join(named)


def _net_smtp(lock: LockedGems) -> tuple[str, bool] | None:
    """(how to name the app's net/smtp, whether it verifies peers by default), when known."""
    if lock.net_smtp is not None:
        return f"net-smtp {lock.net_smtp}", _version(lock.net_smtp) >= _VERIFYING_NET_SMTP
    if lock.ruby is not None:
        return f"Ruby {lock.ruby}'s net/smtp", _version(lock.ruby) >= _VERIFYING_RUBY
    return None


def _strict_mail_notices(
    lock: LockedGems, variables: Mapping[str, str], production_rb: str | None
) -> list[str]:
    if lock.mail is None or production_rb is None or _version(lock.mail) < _STRICT_MAIL:
        return []
    notices = []
    for name, option, expression, pattern, fix in (
        (
            "SMTP_ENABLE_STARTTLS_AUTO",
            "enable_starttls_auto",
            "ENV['SMTP_ENABLE_STARTTLS_AUTO'] || true",
            _STARTTLS_AUTO_AS_STRING,
            # Unset, the expression gives the boolean true: STARTTLS when offered.
            "Unset it (STARTTLS stays on): heroku config:unset SMTP_ENABLE_STARTTLS_AUTO",
        ),
        (
            "SMTP_TLS",
            "tls",
            "ENV['SMTP_TLS'].presence",
            _TLS_AS_STRING,
            "Make that line pass a boolean, as Mastodon 3.5 does "
            "(ENV['SMTP_TLS'].presence && ENV['SMTP_TLS'] == 'true'), or unset it and use "
            "STARTTLS on port 587: heroku config:unset SMTP_TLS",
        ),
    ):
        value = variables.get(name)
        if value is None or not pattern.search(production_rb):
            continue
        if name == "SMTP_TLS" and not value.strip():
            continue  # .presence turns a blank value into nil, which mail accepts
        notices.append(
            f"{name} is set, and the app's {PRODUCTION_RB} passes it on as a string "
            f"({expression}): mail {lock.mail} then raises ArgumentError: Unrecognized "
            f":{option} value {json.dumps(value)}, and no mail is sent. {fix}"
        )
    return notices


def _version(text: str) -> tuple[int, ...]:
    """The leading numbers of a gem version ('2.8.0.rc1' -> (2, 8, 0)); () when there are none."""
    match = _NUMBERS.match(text)
    return tuple(int(part) for part in match[0].split(".")) if match else ()
