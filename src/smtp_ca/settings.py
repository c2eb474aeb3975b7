"""Config vars in, one validated, frozen ``Settings`` out.

Stdlib only: settings are checked before the buildpack installs its dependencies, so a typo in
a config var fails the build in milliseconds, before any download.

Heroku does not put config vars in the environment during ``bin/compile``: each one is a file
in ENV_DIR whose name is the variable and whose content is the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from smtp_ca.errors import BuildError

DEFAULT_BUNDLE_URL = "https://certs.godaddy.com/repository/gd_bundle-g2-g1.crt"
DEFAULT_BUNDLE_SHA256 = "0aa4014e6a34e2553b6258c671946620a44e03aedf0fde497781fe8a6abfd858"

SUPPORTED_STACKS = ("heroku-22", "heroku-24", "heroku-26")
# Heroku's retired stacks: named so the refusal can say they are end of life, not unknown.
END_OF_LIFE_STACKS = ("cedar", "cedar-14", "heroku-16", "heroku-18", "heroku-20")

CHECK_MODES = ("strict", "warn", "off")
DEFAULT_CHECK_TIMEOUT = 10.0
MAX_CHECK_TIMEOUT = 120.0
# net-smtp connects to port 25 when the app passes no port, and Mastodon passes SMTP_PORT as is.
DEFAULT_SMTP_PORT = 25
VERIFY_MODES = ("none", "peer", "client_once", "fail_if_no_peer_cert")
STARTTLS_MODES = ("auto", "always", "never")

# Values that must never reach a build log, even inside a library's exception text.
SECRET_VARIABLES = ("SMTP_PASSWORD", "SMTP_LOGIN", "BULK_SMTP_PASSWORD", "BULK_SMTP_LOGIN")

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9._:\[\]-]+")


@dataclass(frozen=True)
class Settings:
    """Everything the build reads from config vars, validated."""

    stack: str
    bundle_url: str
    bundle_sha256: str | None
    public_roots: bool
    check_mode: str
    check_timeout: float
    smtp_server: str | None
    smtp_port: int
    implicit_tls: bool
    starttls: str
    verify_mode: str | None
    user_ca_file: str | None
    debug: bool
    secrets: tuple[str, ...]
    notices: tuple[str, ...]
    """Things worth a warning that do not fail the build (values Mastodon would read oddly)."""


def read_env_dir(env_dir: Path | None) -> dict[str, str]:
    """Reads Heroku's ENV_DIR: one file per config var. A missing directory means no vars."""
    if env_dir is None or not env_dir.is_dir():
        return {}
    variables: dict[str, str] = {}
    for path in sorted(env_dir.iterdir()):
        if not path.is_file():
            continue
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BuildError(
                f"Could not read the config var {path.name} from {path}: "
                f"{error.__class__.__name__}.",
                hint="Config vars must be UTF-8 text. Reset it with: heroku config:set "
                f"{path.name}=...",
            ) from None
        # Heroku writes values without a trailing newline; a hand-made ENV_DIR often has one.
        variables[path.name] = value.removesuffix("\n").removesuffix("\r")
    return variables


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


def _choice(variables: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = variables.get(name, "").strip()
    if not raw:
        return default
    value = raw.lower()
    if value not in choices:
        raise BuildError(
            f"{name} is {raw!r}, which is not one of: {', '.join(choices)}.",
            hint=f"Set it with: heroku config:set {name}={default}",
        )
    return value


def _flag(variables: Mapping[str, str], name: str, default: bool) -> bool:
    """This buildpack's own true/false variables: strict, so a typo never flips a default."""
    return _choice(variables, name, ("true", "false"), "true" if default else "false") == "true"


def _timeout(variables: Mapping[str, str]) -> float:
    name = "SMTP_CA_CHECK_TIMEOUT"
    raw = variables.get(name, "").strip()
    if not raw:
        return DEFAULT_CHECK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value <= MAX_CHECK_TIMEOUT):
        raise BuildError(
            f"{name} is {raw!r}; it must be a number of seconds above 0 and at most "
            f"{MAX_CHECK_TIMEOUT:g}.",
            hint=f"Set it with: heroku config:set {name}={DEFAULT_CHECK_TIMEOUT:g}",
        )
    return value


def _port(variables: Mapping[str, str]) -> int:
    raw = variables.get("SMTP_PORT", "").strip()
    if not raw:
        return DEFAULT_SMTP_PORT
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise BuildError(
            f"SMTP_PORT is {raw!r}; it must be a whole number from 1 to 65535.",
            hint="Most providers use 587 (STARTTLS) or 465 (TLS): heroku config:set SMTP_PORT=587",
        )
    return int(raw)


def _bundle_source(variables: Mapping[str, str]) -> tuple[str, str | None]:
    url = variables.get("SMTP_CA_BUNDLE_URL", "").strip() or DEFAULT_BUNDLE_URL
    scheme = urlsplit(url).scheme.lower()
    if scheme == "http":
        raise BuildError(
            "SMTP_CA_BUNDLE_URL uses http://, which anyone on the network path can rewrite: "
            "a CA bundle decides whom the app trusts, so it must come over https:// or from a "
            "file:// path.",
            hint="Use the https:// address of the bundle.",
        )
    if scheme not in ("https", "file") or (scheme == "https" and not urlsplit(url).hostname):
        raise BuildError(
            "SMTP_CA_BUNDLE_URL must be an https:// URL or a file:// path.",
            hint=f"Unset it to use the default, {DEFAULT_BUNDLE_URL}",
        )
    raw_pin = variables.get("SMTP_CA_BUNDLE_SHA256", "").strip()
    if raw_pin:
        pin = raw_pin.lower().removeprefix("sha256:")
        if not _SHA256_HEX.fullmatch(pin):
            raise BuildError(
                "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal digits (a SHA-256 digest); "
                f"it has {len(raw_pin)} characters.",
                hint="Compute it with: sha256sum ca-bundle.crt",
            )
        return url, pin
    return url, (DEFAULT_BUNDLE_SHA256 if url == DEFAULT_BUNDLE_URL else None)


def _smtp_server(variables: Mapping[str, str]) -> str | None:
    server = variables.get("SMTP_SERVER", "").strip()
    if not server:
        return None
    if not _HOSTNAME.fullmatch(server):
        raise BuildError(
            "SMTP_SERVER must be a host name or an IP address, such as smtp.sendgrid.net.",
            hint="Set it with: heroku config:set SMTP_SERVER=smtp.example.com",
        )
    return server.strip("[]")


def _mastodon_transport(variables: Mapping[str, str]) -> tuple[bool, str, list[str]]:
    """Reads the TLS variables the way Mastodon's production.rb does: exact strings.

    Mastodon treats only the exact string 'true' as true for SMTP_TLS and SMTP_SSL, and only
    the exact string 'false' as false for SMTP_ENABLE_STARTTLS_AUTO. A 'TRUE' or 'yes' is
    therefore not an error here (the app accepts it) but a notice, because the app will not do
    what the user probably meant.
    """
    notices: list[str] = []
    for name, meaning in (("SMTP_TLS", "true"), ("SMTP_SSL", "true")):
        raw = variables.get(name)
        if raw and raw != meaning and raw.strip().lower() in ("true", "yes", "1", "on"):
            notices.append(
                f"{name} is {raw!r}; Mastodon only takes the exact value 'true', so the app "
                "will not use TLS from the first byte."
            )
    implicit_tls = variables.get("SMTP_TLS") == "true" or variables.get("SMTP_SSL") == "true"

    starttls_raw = variables.get("SMTP_ENABLE_STARTTLS", "")
    if starttls_raw in STARTTLS_MODES:
        starttls = starttls_raw
    else:
        if starttls_raw:
            notices.append(
                f"SMTP_ENABLE_STARTTLS is {starttls_raw!r}; Mastodon knows 'auto', 'always' and "
                "'never' and falls back to SMTP_ENABLE_STARTTLS_AUTO for anything else."
            )
        auto_raw = variables.get("SMTP_ENABLE_STARTTLS_AUTO")
        starttls = "never" if auto_raw == "false" else "auto"
        if auto_raw and auto_raw not in ("true", "false"):
            notices.append(
                f"SMTP_ENABLE_STARTTLS_AUTO is {auto_raw!r}; Mastodon only turns STARTTLS off "
                "for the exact value 'false', so the app will use it."
            )
    return implicit_tls, starttls, notices


def _verify_mode(variables: Mapping[str, str]) -> str | None:
    raw = variables.get("SMTP_OPENSSL_VERIFY_MODE", "").strip()
    if not raw:
        return None
    # The mail gem upcases the value and looks up OpenSSL::SSL::VERIFY_<VALUE>.
    value = raw.lower()
    if value not in VERIFY_MODES:
        raise BuildError(
            f"SMTP_OPENSSL_VERIFY_MODE is {raw!r}; the mail gem accepts "
            f"{', '.join(VERIFY_MODES)}, and the app would fail to send mail.",
            hint="Use peer: heroku config:set SMTP_OPENSSL_VERIFY_MODE=peer",
        )
    return value


def load_settings(variables: Mapping[str, str], stack: str | None) -> Settings:
    """Validates every variable the buildpack reads; the first bad one raises BuildError."""
    url, pin = _bundle_source(variables)
    implicit_tls, starttls, notices = _mastodon_transport(variables)
    return Settings(
        stack=check_stack(stack),
        bundle_url=url,
        bundle_sha256=pin,
        public_roots=_flag(variables, "SMTP_CA_PUBLIC_ROOTS", default=True),
        check_mode=_choice(variables, "SMTP_CA_CHECK", CHECK_MODES, "warn"),
        check_timeout=_timeout(variables),
        smtp_server=_smtp_server(variables),
        smtp_port=_port(variables),
        implicit_tls=implicit_tls,
        starttls=starttls,
        verify_mode=_verify_mode(variables),
        user_ca_file=variables.get("SMTP_CA_FILE", "").strip() or None,
        debug=variables.get("SMTP_CA_DEBUG", "").strip().lower() in ("1", "true", "yes"),
        secrets=tuple(variables[name] for name in SECRET_VARIABLES if variables.get(name)),
        notices=tuple(notices),
    )
