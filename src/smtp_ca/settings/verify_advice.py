"""What the build says about the app's verify mode: in the app's own words, and only where it
changes what a delivery does.

An app whose settings name no ``openssl_verify_mode`` verifies the server on net-smtp 0.2.0
and later (Ruby 3.0 bundles 0.2.1), and verifies nothing on older net/smtp. The buildpack's
initializer closes that gap at delivery: when a delivery names no mode it fills in ``peer``,
unless the app sets ``SMTP_CA_VERIFY_DEFAULT=off``. So a missing mode matters only when the
initializer does not fill it in (``off``, or an app without a ``config/`` directory, which gets
no initializer), on an old net/smtp; and a mode of ``none`` always matters: the app asked for
no verification, and the initializer leaves that choice alone.

The words depend on what the app reads. Mastodon reads ``SMTP_OPENSSL_VERIFY_MODE``, so its
advice names that config var. Any other app sets ``openssl_verify_mode`` in its own
``settings.smtp``; telling it about a config var it never reads would send its owner to the
wrong place. An app reads Mastodon's variable when its production.rb, initializers or
config/email.yml say so (smtp_ca.settings.app_config); an app whose files cannot tell (no
production.rb) is taken to, when it sets Mastodon's SMTP_SERVER or BULK_SMTP_SERVER.

Stdlib only, like ``load``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smtp_ca.settings.app_config import AppMailSettings
from smtp_ca.settings.smtp import BULK_PREFIX, verify_mode_unset_notice

VERIFY_DEFAULT_VARIABLE = "SMTP_CA_VERIFY_DEFAULT"
FILLS_IN = "the buildpack's initializer fills in peer at delivery (SMTP_CA_VERIFY_DEFAULT=peer)"
FILLED_IN = f"{FILLS_IN}, so the app verifies the server"
APP_SETTINGS_NAME_NO_MODE = "the app's smtp_settings name no openssl_verify_mode"
UNVERIFIED = "so any server that answers gets the mail and the SMTP password"


@dataclass(frozen=True)
class AppFacts:
    """What the advice needs to know about the app besides its config vars and gems."""

    mastodon: bool
    """Whether the app reads SMTP_OPENSSL_VERIFY_MODE (Mastodon's variables)."""
    fills_in_peer: bool
    """Whether the buildpack's initializer gives deliveries that name no mode ``peer``."""
    turned_off: bool = False
    """Whether it would, but SMTP_CA_VERIFY_DEFAULT=off says not to."""
    names_verify_mode: bool = False
    """Whether the app's own smtp_settings name openssl_verify_mode (any value)."""
    verify_none_files: tuple[str, ...] = ()
    """Files whose smtp_settings set openssl_verify_mode to none (servers not checked by name)."""


# What an app looks like to the advice when nothing is known but its config vars: Mastodon,
# without the initializer (an empty app directory, as the unit tests build).
MASTODON_WITHOUT_INITIALIZER = AppFacts(mastodon=True, fills_in_peer=False)


def app_facts(
    app_dir: Path, app_mail: AppMailSettings, *, verify_default: str, mastodon_variables: bool
) -> AppFacts:
    """The facts for the app in ``app_dir``: ``verify_default`` is SMTP_CA_VERIFY_DEFAULT,
    ``mastodon_variables`` whether SMTP_SERVER or BULK_SMTP_SERVER is set."""
    mastodon = app_mail.reads_mastodon_verify_mode
    gets_initializer = (app_dir / "config").is_dir()
    return AppFacts(
        mastodon=mastodon_variables if mastodon is None else mastodon,
        fills_in_peer=gets_initializer and verify_default == "peer",
        turned_off=gets_initializer and verify_default == "off",
        names_verify_mode=app_mail.names_verify_mode,
        verify_none_files=app_mail.verify_none_files,
    )


@dataclass(frozen=True)
class VerifyAdvice:
    lock_lines: tuple[str, ...] = ()
    """Details for the Gemfile.lock step: what the app's net/smtp does with no mode."""
    mail_lines: tuple[str, ...] = ()
    """Details for the first mail step."""
    notices: tuple[str, ...] = ()
    """Warnings that replace the general one (which the caller removes when ``drop_general``)."""
    drop_general: bool = False


def advise_unset_mode(
    app: AppFacts, client: tuple[str, bool] | None, *, has_general_notice: bool
) -> VerifyAdvice:
    """The advice about a verify mode the app does not set. ``client`` is the app's net/smtp
    as the lock names it and whether it verifies by default (None: unknown);
    ``has_general_notice``: SMTP_OPENSSL_VERIFY_MODE is unset, and the settings hold the
    general warning about it."""
    none = tuple(
        f"{path} sets openssl_verify_mode to none in the app's smtp_settings: the app verifies "
        f"no certificate, {UNVERIFIED}. Use peer there (openssl_verify_mode: 'peer')."
        for path in app.verify_none_files
    )
    if app.mastodon:
        return _mastodon(app, client, has_general_notice, none)
    return _own_settings(app, client, has_general_notice, none)


def _mastodon(
    app: AppFacts, client: tuple[str, bool] | None, general: bool, none: tuple[str, ...]
) -> VerifyAdvice:
    if not general:
        return VerifyAdvice(notices=none)
    unset = "SMTP_OPENSSL_VERIFY_MODE is not set"
    if app.fills_in_peer:
        if client is None:
            return VerifyAdvice(
                mail_lines=(f"{unset}: {FILLED_IN}, whichever net/smtp it runs",),
                notices=none,
                drop_general=True,
            )
        name, verifies = client
        line = (
            f"{name} verifies the server's certificate against the system store when {unset}"
            if verifies
            else f"{name} alone verifies no certificate when {unset}; {FILLED_IN}"
        )
        return VerifyAdvice(lock_lines=(line,), notices=none, drop_general=True)
    off = " (SMTP_CA_VERIFY_DEFAULT=off: the buildpack fills in nothing)" if app.turned_off else ""
    if client is None:
        return VerifyAdvice(notices=none)  # the general warning stays
    name, verifies = client
    if verifies:
        line = f"{name} verifies the server's certificate against the system store when {unset}"
        return VerifyAdvice(lock_lines=(line,), notices=none, drop_general=True)
    exact = (
        f"{unset}: the app's {name} then verifies no certificate, so any server that answers "
        f"for SMTP_SERVER gets the mail and the SMTP password{off}. Set it: heroku config:set "
        "SMTP_OPENSSL_VERIFY_MODE=peer"
    )
    return VerifyAdvice(notices=(exact, *none), drop_general=True)


def _own_settings(
    app: AppFacts, client: tuple[str, bool] | None, general: bool, none: tuple[str, ...]
) -> VerifyAdvice:
    """An app that does not read SMTP_OPENSSL_VERIFY_MODE: its own smtp_settings decide."""
    if app.names_verify_mode or client is None:
        return VerifyAdvice(notices=none, drop_general=general)
    name, verifies = client
    if verifies:
        line = (
            f"{name} verifies the server's certificate against the system store when "
            f"{APP_SETTINGS_NAME_NO_MODE}"
        )
        return VerifyAdvice(lock_lines=(line,), notices=none, drop_general=general)
    if app.fills_in_peer:
        line = f"{name} alone verifies no certificate when {APP_SETTINGS_NAME_NO_MODE}; {FILLED_IN}"
        return VerifyAdvice(lock_lines=(line,), notices=none, drop_general=general)
    fix = "Add openssl_verify_mode: 'peer' to them"
    if app.turned_off:
        fix += f", or let the buildpack fill it in: heroku config:unset {VERIFY_DEFAULT_VARIABLE}"
    warning = (
        f"{APP_SETTINGS_NAME_NO_MODE[0].upper()}{APP_SETTINGS_NAME_NO_MODE[1:]}, and its {name} "
        f"then verifies no certificate, {UNVERIFIED}. {fix}."
    )
    return VerifyAdvice(notices=(warning, *none), drop_general=general)


BULK_VERIFY_VARIABLE = f"{BULK_PREFIX}OPENSSL_VERIFY_MODE"
BULK_UNSET_NOTICE = verify_mode_unset_notice(BULK_VERIFY_VARIABLE)


def advise_bulk_unset_mode(app: AppFacts, notices: list[str]) -> tuple[str, ...]:
    """Mastodon's bulk mailer with BULK_SMTP_OPENSSL_VERIFY_MODE unset: when the initializer
    fills in peer, its general warning (in ``notices``) is untrue and goes, and a detail line
    (returned) says why."""
    if not (app.mastodon and app.fills_in_peer) or BULK_UNSET_NOTICE not in notices:
        return ()
    notices.remove(BULK_UNSET_NOTICE)
    line = f"{BULK_VERIFY_VARIABLE} is not set: {FILLS_IN}, so the bulk mailer verifies its server"
    return (line,)
