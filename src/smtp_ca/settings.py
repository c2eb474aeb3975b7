"""Config vars in, one validated, frozen ``Settings`` out.

Stdlib only: settings are checked before the buildpack installs its dependencies, so a typo in
a config var fails the build in milliseconds, before any download.

Heroku does not put config vars in the environment during ``bin/compile``: each one is a file
in ENV_DIR whose name is the variable and whose content is the value.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, get_args
from urllib.parse import urlsplit

from smtp_ca.errors import BuildError
from smtp_ca.untrusted import echoed

DEFAULT_BUNDLE_URL = "https://certs.godaddy.com/repository/gd_bundle-g2-g1.crt"
DEFAULT_BUNDLE_SHA256 = "0aa4014e6a34e2553b6258c671946620a44e03aedf0fde497781fe8a6abfd858"
# SMTP_CA_BUNDLE_URL=none: no download; the bundle is SMTP_CA_CERTS and the public roots.
NO_BUNDLE_URL = "none"

SUPPORTED_STACKS = ("heroku-22", "heroku-24", "heroku-26")
# Heroku's retired stacks: named so the refusal can say they are end of life, not unknown.
END_OF_LIFE_STACKS = ("cedar", "cedar-14", "heroku-16", "heroku-18", "heroku-20")

CheckMode = Literal["strict", "warn", "off"]
CHECK_MODES: tuple[CheckMode, ...] = get_args(CheckMode)
DEFAULT_CHECK_TIMEOUT = 10.0
MAX_CHECK_TIMEOUT = 120.0
# The whole bundle download, retries and redirects included: a hanging CA site costs at most this.
DEFAULT_FETCH_TIMEOUT = 30.0
MAX_FETCH_TIMEOUT = 120.0
# net-smtp connects to port 25 when the app passes no port, and Mastodon passes SMTP_PORT as is.
DEFAULT_SMTP_PORT = 25
# SMTP_OPENSSL_VERIFY_MODE, lower-cased: the mail gem's OpenSSL::SSL::VERIFY_<VALUE> names.
VerifyMode = Literal["none", "peer", "client_once", "fail_if_no_peer_cert"]
VERIFY_MODES: tuple[VerifyMode, ...] = get_args(VerifyMode)
# SMTP_ENABLE_STARTTLS, as Mastodon reads it (exact, case-sensitive).
StartTls = Literal["auto", "always", "never"]
STARTTLS_MODES: tuple[StartTls, ...] = get_args(StartTls)

# Values that must never reach a build log, even inside a library's exception text.
SECRET_VARIABLES = ("SMTP_PASSWORD", "SMTP_LOGIN", "BULK_SMTP_PASSWORD", "BULK_SMTP_LOGIN")

# Every config var the buildpack reads from ENV_DIR. It reads no other file there: the app's
# other config vars (DATABASE_URL, keys) are none of its business.
VARIABLES = (
    "SMTP_CA_BUNDLE_URL",
    "SMTP_CA_BUNDLE_SHA256",
    "SMTP_CA_CERTS",
    "SMTP_CA_PUBLIC_ROOTS",
    "SMTP_CA_CHECK",
    "SMTP_CA_CHECK_TIMEOUT",
    "SMTP_CA_FETCH_TIMEOUT",
    "SMTP_CA_DEBUG",
    "SMTP_SERVER",
    "SMTP_PORT",
    "SMTP_TLS",
    "SMTP_SSL",
    "SMTP_ENABLE_STARTTLS",
    "SMTP_ENABLE_STARTTLS_AUTO",
    "SMTP_OPENSSL_VERIFY_MODE",
    "SMTP_CA_FILE",
    # Mastodon 4.4+'s bulk mailer (config/email.yml), checked like SMTP_SERVER when set.
    "BULK_SMTP_SERVER",
    "BULK_SMTP_PORT",
    "BULK_SMTP_TLS",
    "BULK_SMTP_SSL",
    "BULK_SMTP_ENABLE_STARTTLS",
    "BULK_SMTP_ENABLE_STARTTLS_AUTO",
    "BULK_SMTP_OPENSSL_VERIFY_MODE",
    "BULK_SMTP_CA_FILE",
    *SECRET_VARIABLES,
)
MAIN_PREFIX = "SMTP_"
BULK_PREFIX = "BULK_SMTP_"
# Names in the buildpack's own namespace that it does not know are typos worth a warning.
_OWN_NAMESPACE = re.compile(r"SMTP_CA_\w+")
# Heroku allows 32 KB for all of an app's config vars together: a bigger file in ENV_DIR was
# not written by Heroku.
MAX_VARIABLE_BYTES = 64 * 1024
# Longer values are described, not quoted, in error messages.
_MAX_QUOTED = 40

# SMTP_CA_DEBUG: the spellings its own documentation and messages use ("SMTP_CA_DEBUG=1").
DEBUG_ON = ("1", "true", "yes")
DEBUG_OFF = ("0", "false", "no")

# SMTP_CA_FILE values that exist on no dyno of these stacks.
_REMOVED_CA_FILES = {"/usr/lib/ssl/cert.pem": ("heroku-24", "heroku-26")}
# Heroku builds apps in /tmp/build_<hash>; the dyno runs them at /app.
_BUILD_PATH = re.compile(r"/tmp/build_[^/]*(/|$)")  # noqa: S108 - matched, never written

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")

_Choice = TypeVar("_Choice", bound=str)


@dataclass(frozen=True)
class SmtpServer:
    """One SMTP server the app sends through, read from its variables as Mastodon reads them.

    ``prefix`` is how its variables are named: ``SMTP_`` for the app's mailer (SMTP_SERVER,
    SMTP_PORT, ...), ``BULK_SMTP_`` for Mastodon 4.4's bulk mailer (BULK_SMTP_SERVER, ...).
    """

    prefix: str
    host: str
    port: int
    implicit_tls: bool  # SMTP_TLS or SMTP_SSL: TLS from the first byte
    starttls: StartTls
    verify_mode: VerifyMode | None  # as the mail gem takes it; None: unset

    def variable(self, suffix: str) -> str:
        """The name of one of its variables: ``variable("SERVER")`` is ``BULK_SMTP_SERVER``."""
        return f"{self.prefix}{suffix}"

    @property
    def is_bulk(self) -> bool:
        return self.prefix == BULK_PREFIX


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
        """Every SMTP server the app sends through, the main one first."""
        return tuple(server for server in (self.main_server, self.bulk_server) if server)

    @property
    def default_bundle(self) -> bool:
        """Whether the bundle comes from the default source (GoDaddy's), not one the user set."""
        return self.bundle_url == DEFAULT_BUNDLE_URL


def read_config_dir(config_dir: Path | None, dir_name: str = "ENV_DIR") -> dict[str, str]:
    """Reads a directory of config vars: one file per variable, its content the value.

    Heroku's ENV_DIR and a CNB platform's env/ directory have this one format; ``dir_name`` is
    how messages name the directory. Only the variables in ``VARIABLES`` are read, plus any
    other name in the buildpack's own SMTP_CA_ namespace (so that ``load_settings`` can point
    out a typo). A missing directory means no config vars. A variable whose file is not a
    regular file, is larger than any config var can be, or is not UTF-8 text fails the build
    with a message that names it (and never shows its content).
    """
    if config_dir is None or not (config_dir.exists() or config_dir.is_symlink()):
        return {}
    try:
        names = sorted(entry.name for entry in config_dir.iterdir())
    except OSError as error:
        raise BuildError(
            f"{dir_name} {config_dir} cannot be read: {error.strerror or error}.",
            hint=f"{dir_name} must be a directory with one file per config var.",
        ) from None
    variables: dict[str, str] = {}
    for name in names:
        if name in VARIABLES or _OWN_NAMESPACE.fullmatch(name):
            variables[name] = _read_variable(config_dir / name, dir_name)
    return variables


def read_config_var(config_dir: Path, name: str, dir_name: str = "ENV_DIR") -> str | None:
    """One config var, checked as ``read_config_dir`` checks it; None when unset."""
    path = config_dir / name
    if not (path.exists() or path.is_symlink()):
        return None
    return _read_variable(path, dir_name)


def _read_variable(path: Path, dir_name: str) -> str:
    name = path.name
    fix = f"Set it again with: heroku config:set {name}=..."
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise BuildError(
                f"The config var {name} in {dir_name} is {kind}: each config var must be a file "
                "whose content is its value.",
                hint=f"Remove {path} and write the value into a file of that name.",
            )
        if info.st_size > MAX_VARIABLE_BYTES:
            raise BuildError(
                f"The config var {name} is {info.st_size} bytes; Heroku allows 32 KB for all "
                "config vars together, so this file did not come from a config var.",
                hint=f"Check {path}. {fix}",
            )
        with path.open("rb") as stream:
            data = stream.read(MAX_VARIABLE_BYTES + 1)
    except FileNotFoundError:
        # A dangling symbolic link: stat() follows it to nothing.
        raise BuildError(
            f"The config var {name} in {dir_name} is a symbolic link to a file that does not "
            "exist.",
            hint=f"Remove {path} or make it a file holding the value.",
        ) from None
    except OSError as error:
        raise BuildError(
            f"Could not read the config var {name} from {path}: {error.strerror or error}.",
            hint=fix,
        ) from None
    if len(data) > MAX_VARIABLE_BYTES:
        raise BuildError(
            f"The config var {name} is larger than {MAX_VARIABLE_BYTES} bytes; Heroku allows "
            "32 KB for all config vars together, so this file did not come from a config var.",
            hint=f"Check {path}. {fix}",
        )
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BuildError(
            f"The config var {name} is not text: byte {error.start + 1} of its value is not UTF-8.",
            hint=f"Config vars are UTF-8 text. {fix}",
        ) from None
    if "\0" in value:
        raise BuildError(
            f"The config var {name} holds a NUL byte: it is binary data, not text.",
            hint=f"Config vars are UTF-8 text. {fix}",
        )
    # Heroku writes values without a trailing newline; a hand-made ENV_DIR often has one.
    return value.removesuffix("\n").removesuffix("\r")


def _shown(raw: str) -> str:
    """A value as an error message quotes it: escaped, and only when it is short. A long value
    is described instead, because a secret pasted into the wrong variable must not be printed
    in part (redaction finds a secret only whole)."""
    if len(raw) > _MAX_QUOTED:
        return f"a value of {len(raw)} characters"
    return repr(raw)


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


def _one_of(value: str, choices: tuple[_Choice, ...]) -> _Choice | None:
    """``value`` as the member of ``choices`` it equals (typed as one), or None."""
    return next((choice for choice in choices if choice == value), None)


def _choice(
    variables: Mapping[str, str], name: str, choices: tuple[_Choice, ...], default: _Choice
) -> _Choice:
    raw = variables.get(name, "").strip()
    if not raw:
        return default
    value = _one_of(raw.lower(), choices)
    if value is None:
        raise BuildError(
            f"{name} is {_shown(raw)}, which is not one of: {', '.join(choices)}.",
            hint=f"Set it with: heroku config:set {name}={default}",
        )
    return value


def _flag(variables: Mapping[str, str], name: str, default: bool) -> bool:
    """This buildpack's own true/false variables: strict, so a typo never flips a default."""
    return _choice(variables, name, ("true", "false"), "true" if default else "false") == "true"


def parse_debug(raw: str | None) -> bool:
    """SMTP_CA_DEBUG, from ENV_DIR or the environment: validated like the other flags.

    ``1``, ``true``, ``yes`` turn it on, ``0``, ``false``, ``no`` or unset leave it off (any
    case); anything else fails the build, so a typo does not silently hide the details asked for.
    """
    value = (raw or "").strip().lower()
    if not value or value in DEBUG_OFF:
        return False
    if value in DEBUG_ON:
        return True
    raise BuildError(
        f"SMTP_CA_DEBUG is {_shown((raw or '').strip())}, which is not one of: "
        f"{', '.join(DEBUG_ON + DEBUG_OFF)}.",
        hint="Set it with: heroku config:set SMTP_CA_DEBUG=1 (or unset it).",
    )


def _seconds(variables: Mapping[str, str], name: str, default: float, maximum: float) -> float:
    raw = variables.get(name, "").strip()
    if not raw:
        return default
    # Plain decimal digits only: float() would also take "1_0", "1e1", "inf" and other scripts'
    # digits.
    value = float(raw) if _SECONDS.fullmatch(raw) else float("nan")
    if not (0 < value <= maximum):
        raise BuildError(
            f"{name} is {_shown(raw)}; it must be a number of seconds above 0 and at most "
            f"{maximum:g}.",
            hint=f"Set it with: heroku config:set {name}={default:g}",
        )
    return value


def _port(variables: Mapping[str, str], name: str = "SMTP_PORT") -> int:
    raw = variables.get(name, "").strip()
    if not raw:
        return DEFAULT_SMTP_PORT
    if not _PORT.fullmatch(raw) or not 1 <= int(raw) <= 65535:
        raise BuildError(
            f"{name} is {_shown(raw)}; it must be a whole number from 1 to 65535.",
            hint=f"Most providers use 587 (STARTTLS) or 465 (TLS): heroku config:set {name}=587",
        )
    return int(raw)


def _bundle_source(variables: Mapping[str, str]) -> tuple[str | None, str | None, list[str]]:
    """SMTP_CA_BUNDLE_URL and its pin: (URL or None for none, pin or None, notices)."""
    url = variables.get("SMTP_CA_BUNDLE_URL", "").strip() or DEFAULT_BUNDLE_URL
    if url.lower() == NO_BUNDLE_URL:
        notices = []
        if variables.get("SMTP_CA_BUNDLE_SHA256", "").strip():
            notices.append(
                "SMTP_CA_BUNDLE_SHA256 is set, but SMTP_CA_BUNDLE_URL=none: nothing is "
                "downloaded, so the pin checks nothing. Unset it: "
                "heroku config:unset SMTP_CA_BUNDLE_SHA256"
            )
        return None, None, notices
    check_bundle_url(url)
    raw_pin = variables.get("SMTP_CA_BUNDLE_SHA256", "").strip()
    if raw_pin:
        pin = raw_pin.lower().removeprefix("sha256:")
        if not _SHA256_HEX.fullmatch(pin):
            raise BuildError(
                "SMTP_CA_BUNDLE_SHA256 must be 64 hexadecimal digits (a SHA-256 digest); "
                f"it has {len(raw_pin)} characters.",
                hint="Compute it with: sha256sum ca-bundle.crt",
            )
        return url, pin, []
    return url, (DEFAULT_BUNDLE_SHA256 if url == DEFAULT_BUNDLE_URL else None), []


def check_bundle_url(url: str) -> str:
    """The scheme of an SMTP_CA_BUNDLE_URL, ``https`` or ``file``; a ``BuildError`` for
    anything else. The one wording of that rule: the bundle stage asks here too."""
    try:
        parts = urlsplit(url)
        scheme, hostname = parts.scheme.lower(), parts.hostname
    except ValueError:
        # An unbalanced [ in the host, for example: no URL library can read it.
        raise BuildError(
            "SMTP_CA_BUNDLE_URL is not a valid URL (its host part cannot be read).",
            hint=f"Use an https:// URL or a file:// path; unset it to use {DEFAULT_BUNDLE_URL}",
        ) from None
    if any(not character.isprintable() for character in url):
        raise BuildError(
            "SMTP_CA_BUNDLE_URL holds a control character (a line break or a tab, perhaps from "
            "a copy and paste).",
            hint="Set it again, as one line: heroku config:set SMTP_CA_BUNDLE_URL=https://...",
        )
    if scheme == "http":
        raise BuildError(
            "SMTP_CA_BUNDLE_URL uses http://, which anyone on the network path can rewrite: "
            "a CA bundle decides whom the app trusts, so it must come over https:// or from a "
            "file:// path.",
            hint="Use the https:// address of the bundle.",
        )
    if scheme not in ("https", "file") or (scheme == "https" and not hostname):
        raise BuildError(
            "SMTP_CA_BUNDLE_URL must be an https:// URL, a file:// path, or none.",
            hint=f"Unset it to use the default, {DEFAULT_BUNDLE_URL}",
        )
    return scheme


def _smtp_server(variables: Mapping[str, str], prefix: str = MAIN_PREFIX) -> str | None:
    """SMTP_SERVER as the mail gem passes it to net-smtp: a host name or an IP address, and
    nothing else. ``smtp.example.com:587`` would be looked up as a host name and fail with a
    DNS error, on the dyno as in the check: the port goes in SMTP_PORT."""
    name, port_name = f"{prefix}SERVER", f"{prefix}PORT"
    server = variables.get(name, "").strip()
    if not server:
        return None
    if _HOSTNAME.fullmatch(server) or _is_ipv6(server):
        return server
    if server.startswith("[") and server.endswith("]") and _is_ipv6(server[1:-1]):
        return server[1:-1]  # [::1]: an IPv6 literal in brackets, as URLs write it
    host, holds, port = _url_parts(server)
    if host is not None and holds:
        with_port = f" {port_name}={port}" if port else ""
        raise BuildError(
            f"{name} is {_shown(server)}: it holds {' and '.join(holds)}, but must be the host "
            "name alone (the app would look the whole text up as a host name and fail to send "
            f"mail). The port goes in {port_name}.",
            hint=f"Set them with: heroku config:set {name}={host}{with_port}",
        )
    raise BuildError(
        f"{name} must be a host name or an IP address, such as smtp.sendgrid.net; "
        f"the port goes in {port_name}.",
        hint=f"Set it with: heroku config:set {name}=smtp.example.com {port_name}=587",
    )


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _url_parts(server: str) -> tuple[str | None, list[str], int | None]:
    """A URL-like SMTP_SERVER read as a URL: its host (None when it has no usable one), what
    else it holds ("a scheme (smtp://)", "a port", "a path"), and its port."""
    holds: list[str] = []
    scheme, separator, _ = server.partition("://")
    if separator:
        holds.append(f"a scheme ({scheme}://)")
    try:
        parts = urlsplit(server if separator else f"//{server}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, an unbalanced [
        return None, holds, None
    if port is not None:
        holds.append("a port")
    if parts.path or parts.query or parts.fragment:
        holds.append("a path")
    if not host or not (_HOSTNAME.fullmatch(host) or _is_ipv6(host)):
        return None, holds, port
    return (f"[{host}]" if ":" in host else host), holds, port


def _mastodon_transport(
    variables: Mapping[str, str], prefix: str = MAIN_PREFIX
) -> tuple[bool, StartTls, list[str]]:
    """Reads the TLS variables the way Mastodon does: exact strings.

    Mastodon 3.5 and later treat only the exact string 'true' as true for SMTP_TLS and SMTP_SSL
    (``ENV['SMTP_TLS'].presence && ENV['SMTP_TLS'] == 'true'``), and that is what the check does.
    Mastodon 1.4 to 3.4 pass ``ENV['SMTP_TLS'].presence``: any value that is set, 'false'
    included, turns TLS on. Only the exact string 'false' turns SMTP_ENABLE_STARTTLS_AUTO off.
    So a 'TRUE', 'yes' or 'false' is not an error here (the app accepts it) but a notice,
    because the app may not do what the user meant.

    The BULK_SMTP_ twins exist from Mastodon 4.4 on, whose config/email.yml reads them the same
    way, except that BULK_SMTP_ENABLE_STARTTLS=false means never, as 'never' does.
    """
    bulk = prefix == BULK_PREFIX
    tls_name, ssl_name = f"{prefix}TLS", f"{prefix}SSL"
    starttls_name, auto_name = f"{prefix}ENABLE_STARTTLS", f"{prefix}ENABLE_STARTTLS_AUTO"
    notices: list[str] = []
    for name in (tls_name, ssl_name):
        raw = variables.get(name)
        if not raw or not raw.strip() or raw == "true":
            continue  # unset, blank (Ruby's .presence is nil) or the one value that means TLS
        older = (
            " Mastodon 1.4 to 3.4 turn TLS on for any value that is set, even this one."
            if name == "SMTP_TLS"
            else ""
        )
        since = "Mastodon 4.4 and later" if bulk else "Mastodon 3.5 and later"
        notices.append(
            f"{name} is {_shown(raw)}; {since} only take the exact value 'true', "
            f"so the app will not use TLS from the first byte.{older} Set it to true or unset it."
        )
    implicit_tls = variables.get(tls_name) == "true" or variables.get(ssl_name) == "true"

    starttls_raw = variables.get(starttls_name, "")
    starttls = _one_of(starttls_raw, STARTTLS_MODES)
    if bulk and starttls_raw == "false":
        starttls = "never"
    if starttls is None:
        if starttls_raw:
            notices.append(
                f"{starttls_name} is {_shown(starttls_raw)}; Mastodon knows 'auto', "
                f"'always' and 'never' and falls back to {auto_name} for anything else."
            )
        auto_raw = variables.get(auto_name)
        starttls = "never" if auto_raw == "false" else "auto"
        if auto_raw and auto_raw not in ("true", "false"):
            notices.append(
                f"{auto_name} is {_shown(auto_raw)}; Mastodon only turns "
                "STARTTLS off for the exact value 'false', so the app will use it."
            )
    return implicit_tls, starttls, notices


def _verify_mode(
    variables: Mapping[str, str], name: str = "SMTP_OPENSSL_VERIFY_MODE"
) -> VerifyMode | None:
    raw = variables.get(name, "").strip()
    if not raw:
        return None
    # The mail gem upcases the value and looks up OpenSSL::SSL::VERIFY_<VALUE>.
    value = _one_of(raw.lower(), VERIFY_MODES)
    if value is None:
        raise BuildError(
            f"{name} is {_shown(raw)}; the mail gem accepts "
            f"{', '.join(VERIFY_MODES)}, and the app would fail to send mail.",
            hint=f"Use peer: heroku config:set {name}=peer",
        )
    return value


def _unknown_own_variables(variables: Mapping[str, str]) -> list[str]:
    """A notice for each SMTP_CA_* name the buildpack does not read: most are typos."""
    notices = []
    for name in sorted(variables):
        if name in VARIABLES or not _OWN_NAMESPACE.fullmatch(name):
            continue
        close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.75)
        guess = f"; did you mean {close[0]}?" if close else "."
        notices.append(f"{name} is not a config var this buildpack reads{guess}")
    return notices


def verify_mode_unset_notice(name: str = "SMTP_OPENSSL_VERIFY_MODE") -> str:
    """The general form; smtp_ca.gemfile_lock replaces it with an exact one when the app's
    Gemfile.lock names its net-smtp or Ruby."""
    return (
        f"{name} is not set: Ruby 2.7 and older then verify no certificate. "
        f"Set it: heroku config:set {name}=peer"
    )


VERIFY_MODE_UNSET_NOTICE = verify_mode_unset_notice()


def _verify_mode_notice(
    verify_mode: VerifyMode | None, name: str = "SMTP_OPENSSL_VERIFY_MODE"
) -> list[str]:
    return [verify_mode_unset_notice(name)] if verify_mode is None else []


def _bulk_server(variables: Mapping[str, str]) -> tuple[SmtpServer | None, list[str]]:
    """Mastodon's bulk mailer, read as config/email.yml reads it; None when BULK_SMTP_SERVER
    is not set (Mastodon then sends bulk mail through SMTP_SERVER)."""
    host = _smtp_server(variables, BULK_PREFIX)
    if host is None:
        return None, []
    implicit_tls, starttls, notices = _mastodon_transport(variables, BULK_PREFIX)
    verify_name = f"{BULK_PREFIX}OPENSSL_VERIFY_MODE"
    verify_mode = _verify_mode(variables, verify_name)
    notices += _verify_mode_notice(verify_mode, verify_name)
    server = SmtpServer(
        BULK_PREFIX,
        host,
        _port(variables, f"{BULK_PREFIX}PORT"),
        implicit_tls,
        starttls,
        verify_mode,
    )
    return server, notices


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


def load_settings(variables: Mapping[str, str], stack: str | None) -> Settings:
    """Validates every variable the buildpack reads; the first bad one raises BuildError."""
    parse_debug(variables.get("SMTP_CA_DEBUG"))  # read by the CLI; a typo fails here, named
    url, pin, config_notices = _bundle_source(variables)
    public_roots = _flag(variables, "SMTP_CA_PUBLIC_ROOTS", default=True)
    ca_certs = variables.get("SMTP_CA_CERTS", "").strip() or None
    if url is None and not public_roots and ca_certs is None:
        raise BuildError(
            "The CA bundle would be empty: SMTP_CA_BUNDLE_URL=none downloads nothing, "
            "SMTP_CA_PUBLIC_ROOTS=false adds no public roots, and SMTP_CA_CERTS is not set.",
            hint='Put your CA certificates in SMTP_CA_CERTS: heroku config:set SMTP_CA_CERTS="$('
            'cat relay-ca.pem)". Or unset SMTP_CA_PUBLIC_ROOTS or SMTP_CA_BUNDLE_URL.',
        )
    implicit_tls, starttls, notices = _mastodon_transport(variables)
    verify_mode = _verify_mode(variables)
    notices += _verify_mode_notice(verify_mode)
    bulk_server, bulk_notices = _bulk_server(variables)
    notices += bulk_notices
    config_notices += _unknown_own_variables(variables)
    return Settings(
        stack=check_stack(stack),
        bundle_url=url,
        bundle_sha256=pin,
        public_roots=public_roots,
        check_mode=_choice(variables, "SMTP_CA_CHECK", CHECK_MODES, "warn"),
        check_timeout=_seconds(
            variables, "SMTP_CA_CHECK_TIMEOUT", DEFAULT_CHECK_TIMEOUT, MAX_CHECK_TIMEOUT
        ),
        fetch_timeout=_seconds(
            variables, "SMTP_CA_FETCH_TIMEOUT", DEFAULT_FETCH_TIMEOUT, MAX_FETCH_TIMEOUT
        ),
        smtp_server=_smtp_server(variables),
        smtp_port=_port(variables),
        implicit_tls=implicit_tls,
        starttls=starttls,
        verify_mode=verify_mode,
        user_ca_file=variables.get("SMTP_CA_FILE", "").strip() or None,
        notices=tuple(notices),
        config_notices=tuple(config_notices),
        user_bulk_ca_file=variables.get("BULK_SMTP_CA_FILE", "").strip() or None,
        ca_certs=ca_certs,
        bulk_server=bulk_server,
    )
