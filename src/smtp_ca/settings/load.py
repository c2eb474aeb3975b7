"""Config vars in, one validated, frozen ``Settings`` out.

Stdlib only: settings are checked before the buildpack installs its dependencies, so a typo in
a config var fails the build in milliseconds, before any download.

Heroku does not put config vars in the environment during ``bin/compile``: each one is a file
in ENV_DIR whose name is the variable and whose content is the value.

This module is ``Settings`` and the order things are read in; reading ENV_DIR and the value
primitives are ``settings.values``, an SMTP server's variables ``settings.smtp``, and the bundle
source's ``settings.ca``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from smtp_ca.errors import BuildError
from smtp_ca.settings.addons import addon_servers as addon_servers_of

# Names other modules and the tests import from here, where each config var has its home:
# re-exported.
from smtp_ca.settings.ca import bundle_source, is_default_bundle, refuse_empty_bundle
from smtp_ca.settings.smtp import (
    MAIN_PREFIX,
    SmtpServer,
    StartTls,
    VerifyMode,
    read_bulk_server,
    read_port,
    read_tls_options,
    smtp_host,
)
from smtp_ca.settings.values import OWN_NAMESPACE, VARIABLES, choice, flag, parse_debug, seconds
from smtp_ca.untrusted import echoed

SUPPORTED_STACKS = ("heroku-22", "heroku-24", "heroku-26")
# Heroku's retired stacks: named so the refusal can say they are end of life, not unknown.
END_OF_LIFE_STACKS = ("cedar", "cedar-14", "heroku-16", "heroku-18", "heroku-20")

CheckMode = Literal["strict", "warn", "off"]
CHECK_MODES: tuple[CheckMode, ...] = get_args(CheckMode)
# SMTP_CA_VERIFY_DEFAULT: whether the initializer gives deliveries that name no verify mode peer.
VerifyDefault = Literal["peer", "off"]
VERIFY_DEFAULTS: tuple[VerifyDefault, ...] = get_args(VerifyDefault)
DEFAULT_CHECK_TIMEOUT = 10.0
MAX_CHECK_TIMEOUT = 120.0
# The whole bundle download, retries and redirects included: a hanging CA site costs at most this.
DEFAULT_FETCH_TIMEOUT = 30.0
MAX_FETCH_TIMEOUT = 120.0


@dataclass(frozen=True)
class Settings:
    """Everything the build reads from config vars, validated."""

    stack: str
    bundle_url: str | None  # None: SMTP_CA_BUNDLE_URL=none, nothing is downloaded
    bundle_sha256: str | None
    public_roots: bool
    check_mode: CheckMode
    check_timeout: float
    fetch_timeout: float
    smtp_server: str | None
    smtp_port: int
    implicit_tls: bool
    starttls: StartTls
    verify_mode: VerifyMode | None
    user_ca_file: str | None
    notices: tuple[str, ...]
    """Things about the app's mail worth a warning that do not fail the build (values Mastodon
    would read oddly): shown under the check's step."""
    user_bulk_ca_file: str | None = None
    ca_certs: str | None = None
    """SMTP_CA_CERTS: PEM text of CA certificates, checked and merged by the bundle stage."""
    config_notices: tuple[str, ...] = ()
    """The same about the buildpack's own config vars (a pin that checks nothing, a name it does
    not read): shown under the bundle's step, the buildpack's first."""
    bulk_server: SmtpServer | None = None
    """Mastodon's bulk mailer (BULK_SMTP_*), when BULK_SMTP_SERVER is set."""
    verify_mode_notice: str | None = None
    """The one of ``notices`` that says SMTP_OPENSSL_VERIFY_MODE is not set, in general words
    (None when it is set): smtp_ca.settings.verify_advice makes it exact, or drops it."""
    verify_default: VerifyDefault = "peer"
    """SMTP_CA_VERIFY_DEFAULT."""
    addon_servers: tuple[SmtpServer, ...] = ()
    """The servers the mail add-ons' config vars name (smtp_ca.settings.addons)."""
    app_servers: tuple[SmtpServer, ...] = ()
    """Literal hosts in the app's own config (smtp_ca.settings.app_config)."""
    mail_lines: tuple[str, ...] = ()
    """Details about the app's mail, shown under the first mail step before ``notices``."""

    @property
    def main_server(self) -> SmtpServer | None:
        """SMTP_SERVER and its variables, when it is set."""
        if self.smtp_server is None:
            return None
        return SmtpServer(
            MAIN_PREFIX,
            self.smtp_server,
            self.smtp_port,
            self.implicit_tls,
            self.starttls,
            self.verify_mode,
        )

    @property
    def servers(self) -> tuple[SmtpServer, ...]:
        """Every SMTP server the app sends through, in the order the build looks for them:
        SMTP_SERVER, Mastodon's bulk mailer, the mail add-ons' config vars, then literal
        hosts in the app's config. A server found again later (same host, port and TLS mode)
        is checked once, under the name it was found by first."""
        mastodon = [server for server in (self.main_server, self.bulk_server) if server]
        found = {server.endpoint for server in mastodon}
        others = []
        for server in (*self.addon_servers, *self.app_servers):
            if server.endpoint not in found:
                found.add(server.endpoint)
                others.append(server)
        return (*mastodon, *others)

    @property
    def default_bundle(self) -> bool:
        """Whether the bundle comes from the default source (GoDaddy's), not one the user set."""
        return is_default_bundle(self.bundle_url)


def check_stack(stack: str | None) -> str:
    if not stack:
        raise BuildError(
            "STACK is not set.",
            hint="Heroku sets STACK during builds. To build locally, run for example: "
            "STACK=heroku-24 bin/compile BUILD_DIR CACHE_DIR ENV_DIR",
        )
    if stack in SUPPORTED_STACKS:
        return stack
    supported = ", ".join(SUPPORTED_STACKS)
    if stack in END_OF_LIFE_STACKS:
        raise BuildError(
            f"The stack {stack} is end of life and not supported by this buildpack.",
            hint=f"Upgrade the app to a current stack ({supported}): "
            "heroku stack:set heroku-24, then deploy again.",
        )
    raise BuildError(
        f"Unknown stack {stack!r}: this buildpack supports {supported}.",
        hint="Set STACK to one of those, or run the build on one of those stacks.",
    )


def _unknown_own_variables(variables: Mapping[str, str]) -> list[str]:
    """A notice for each SMTP_CA_* name the buildpack does not read: most are typos."""
    notices = []
    for name in sorted(variables):
        if name in VARIABLES or not OWN_NAMESPACE.fullmatch(name):
            continue
        close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.75)
        guess = f"; did you mean {close[0]}?" if close else "."
        notices.append(f"{name} is not a config var this buildpack reads{guess}")
    return notices


def load_settings(variables: Mapping[str, str], stack: str | None) -> Settings:
    """Validates every variable the buildpack reads; the first bad one raises BuildError."""
    parse_debug(variables.get("SMTP_CA_DEBUG"))  # read by the CLI; a typo fails here, named
    url, pin, config_notices = bundle_source(variables)
    public_roots = flag(variables, "SMTP_CA_PUBLIC_ROOTS", default=True)
    ca_certs = variables.get("SMTP_CA_CERTS", "").strip() or None
    refuse_empty_bundle(url, public_roots, ca_certs)
    implicit_tls, starttls, verify_mode, notices = read_tls_options(variables, MAIN_PREFIX)
    verify_mode_notice = notices[-1] if verify_mode is None else None  # read_tls_options: last
    bulk_server, bulk_notices = read_bulk_server(variables)
    notices += bulk_notices
    addon_servers, addon_notices = addon_servers_of(variables)
    notices += addon_notices
    config_notices += _unknown_own_variables(variables)
    return Settings(
        stack=check_stack(stack),
        bundle_url=url,
        bundle_sha256=pin,
        public_roots=public_roots,
        check_mode=choice(variables, "SMTP_CA_CHECK", CHECK_MODES, "warn"),
        check_timeout=seconds(
            variables, "SMTP_CA_CHECK_TIMEOUT", DEFAULT_CHECK_TIMEOUT, MAX_CHECK_TIMEOUT
        ),
        fetch_timeout=seconds(
            variables, "SMTP_CA_FETCH_TIMEOUT", DEFAULT_FETCH_TIMEOUT, MAX_FETCH_TIMEOUT
        ),
        smtp_server=smtp_host(variables),
        smtp_port=read_port(variables),
        implicit_tls=implicit_tls,
        starttls=starttls,
        verify_mode=verify_mode,
        user_ca_file=variables.get("SMTP_CA_FILE", "").strip() or None,
        notices=tuple(notices),
        config_notices=tuple(config_notices),
        user_bulk_ca_file=variables.get("BULK_SMTP_CA_FILE", "").strip() or None,
        ca_certs=ca_certs,
        bulk_server=bulk_server,
        verify_mode_notice=verify_mode_notice,
        verify_default=choice(variables, "SMTP_CA_VERIFY_DEFAULT", VERIFY_DEFAULTS, "peer"),
        addon_servers=tuple(addon_servers),
    )


# SMTP_CA_FILE values that exist on no dyno of these stacks.
_REMOVED_CA_FILES = {"/usr/lib/ssl/cert.pem": ("heroku-24", "heroku-26")}
# Heroku builds apps in /tmp/build_<hash>; the dyno runs them at /app.
_BUILD_PATH = re.compile(r"/tmp/build_[^/]*(/|$)")  # noqa: S108 - matched, never written


def ca_file_warnings(settings: Settings, build_dir: Path) -> list[str]:
    """Warnings about a user-set SMTP_CA_FILE / BULK_SMTP_CA_FILE that the dyno cannot open."""
    warnings: list[str] = []
    for name, value in (
        ("SMTP_CA_FILE", settings.user_ca_file),
        ("BULK_SMTP_CA_FILE", settings.user_bulk_ca_file),
    ):
        if not value:
            continue
        quoted = echoed(value)  # the user's words: maybe long, maybe odd
        if value.startswith(f"{build_dir}/") or _BUILD_PATH.match(value):
            warnings.append(
                f"{name} is set to {quoted}, a path that exists only during the build: the app "
                "runs at /app, where Ruby fails with SSL_CTX_load_verify_file. Unset it: "
                f"heroku config:unset {name}"
            )
        elif settings.stack in _REMOVED_CA_FILES.get(value, ()):
            warnings.append(
                f"{name} is set to {quoted}, which {settings.stack} no longer has: use "
                f"/etc/ssl/certs/ca-certificates.crt, or unset it: heroku config:unset {name}"
            )
        elif "$" in value:
            warnings.append(
                f"{name} is set to {quoted}: config vars are not expanded by a shell, so the app "
                f"gets that text as it is. Unset it: heroku config:unset {name}"
            )
    return warnings
