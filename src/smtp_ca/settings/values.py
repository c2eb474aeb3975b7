"""Reading config vars: the files of ENV_DIR (or a CNB platform's env/), and the primitives that
turn a value into a choice, a flag or a number of seconds, with messages that name the variable.

Stdlib only, like ``load``, which reads every config var through these.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from smtp_ca.errors import BuildError
from smtp_ca.output import Redactor
from smtp_ca.untrusted import echoed

# The Heroku mail add-ons' config vars that name their SMTP server (smtp_ca.settings.addons reads
# them; each is checked against the provider's documentation there).
ADDON_SERVER_VARIABLES = (
    "MAILGUN_SMTP_SERVER",
    "MAILGUN_SMTP_PORT",
    "SPARKPOST_SMTP_HOST",
    "SPARKPOST_SMTP_PORT",
)
# The add-ons' logins, passwords and keys. Some name a provider whose server is fixed (SendGrid,
# Mandrill): set, they say the app sends through it. All are redacted like SMTP_PASSWORD.
ADDON_SECRET_VARIABLES = (
    "MAILGUN_SMTP_LOGIN",
    "MAILGUN_SMTP_PASSWORD",
    "MAILGUN_API_KEY",
    "SENDGRID_USERNAME",
    "SENDGRID_PASSWORD",
    "SENDGRID_API_KEY",
    "SPARKPOST_SMTP_PASSWORD",
    "SPARKPOST_API_KEY",
    "MANDRILL_USERNAME",
    "MANDRILL_APIKEY",
    "CLOUDMAILIN_SMTP_URL",  # smtp://USER:PASSWORD@HOST:PORT: the host is read, the rest redacted
    "CLOUDMAILIN_PASSWORD",
)
# Values that must never reach a build log, even inside a library's exception text.
SECRET_VARIABLES = (
    "SMTP_PASSWORD",
    "SMTP_LOGIN",
    "BULK_SMTP_PASSWORD",
    "BULK_SMTP_LOGIN",
    *ADDON_SECRET_VARIABLES,
)
# Secret variables that hold a URL: its password is redacted on its own too, as written and
# percent-decoded (``output.url_secrets``), since a message may quote the URL's parts.
URL_SECRET_VARIABLES = ("CLOUDMAILIN_SMTP_URL",)

# Every config var the buildpack reads from ENV_DIR. It reads no other file there: the app's
# other config vars (DATABASE_URL, keys) are none of its business. The mail add-ons' variables
# are read because they name the server the app sends through (or hold its secrets, which the
# log must know to redact them).
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
    # Whether deliveries that name no openssl_verify_mode get peer (.smtp-ca/delivery.rb reads
    # it at runtime; the build refuses a value it does not know, and its verify-mode advice
    # depends on it: smtp_ca.settings.verify_advice).
    "SMTP_CA_VERIFY_DEFAULT",
    *ADDON_SERVER_VARIABLES,
    *SECRET_VARIABLES,
)
# Names in the buildpack's own namespace that it does not know are typos worth a warning.
OWN_NAMESPACE = re.compile(r"SMTP_CA_\w+")
# Heroku allows 32 KB for all of an app's config vars together: a bigger file in ENV_DIR was
# not written by Heroku.
MAX_VARIABLE_BYTES = 64 * 1024
# Longer values are described, not quoted, in error messages.
_MAX_QUOTED = 40


# SMTP_CA_DEBUG: the spellings its own documentation and messages use ("SMTP_CA_DEBUG=1").
DEBUG_ON = ("1", "true", "yes")
DEBUG_OFF = ("0", "false", "no")

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")

Choice = TypeVar("Choice", bound=str)


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
        if name in VARIABLES or OWN_NAMESPACE.fullmatch(name):
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


def quoted(raw: str) -> str:
    """A value as an error message quotes it: in quotes and escaped (``repr``), and only when
    it is short; a long one is described by its length, as :func:`untrusted.echoed` does."""
    return echoed(raw, _MAX_QUOTED, render=repr)


def one_of(value: str, choices: tuple[Choice, ...]) -> Choice | None:
    """``value`` as the member of ``choices`` it equals (typed as one), or None."""
    return next((choice for choice in choices if choice == value), None)


def choice(
    variables: Mapping[str, str], name: str, choices: tuple[Choice, ...], default: Choice
) -> Choice:
    raw = variables.get(name, "").strip()
    if not raw:
        return default
    value = one_of(raw.lower(), choices)
    if value is None:
        raise BuildError(
            f"{name} is {quoted(raw)}, which is not one of: {', '.join(choices)}.",
            hint=f"Set it with: heroku config:set {name}={default}",
        )
    return value


def flag(variables: Mapping[str, str], name: str, default: bool) -> bool:
    """This buildpack's own true/false variables: strict, so a typo never flips a default."""
    return choice(variables, name, ("true", "false"), "true" if default else "false") == "true"


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
        f"SMTP_CA_DEBUG is {quoted((raw or '').strip())}, which is not one of: "
        f"{', '.join(DEBUG_ON + DEBUG_OFF)}.",
        hint="Set it with: heroku config:set SMTP_CA_DEBUG=1 (or unset it).",
    )


# The shortest bound a setting may give, a millisecond, as the dyno check's --timeout takes: a
# shorter one could not even connect, and messages would print it as 1e-07 s.
MIN_SECONDS = 0.001


def seconds_within(text: str, maximum: float) -> float | None:
    """``text`` as a number of seconds from ``MIN_SECONDS`` to ``maximum``, or None. Plain ASCII
    decimal digits only: float() would also take "1_0", "1e-300", "inf" and other scripts'
    digits ("٣")."""
    value = float(text) if _SECONDS.fullmatch(text) else float("nan")
    return value if MIN_SECONDS <= value <= maximum else None


def seconds(variables: Mapping[str, str], name: str, default: float, maximum: float) -> float:
    raw = variables.get(name, "").strip()
    if not raw:
        return default
    value = seconds_within(raw, maximum)
    if value is None:
        raise BuildError(
            f"{name} is {quoted(raw)}; it must be a number of seconds from {MIN_SECONDS:g} to "
            f"{maximum:g}.",
            hint=f"Set it with: heroku config:set {name}={default:g}",
        )
    return value


def redact_secret_variables(redact: Redactor, variables: Mapping[str, str]) -> None:
    """Teaches ``redact`` the values of the secret config vars among ``variables`` (config
    vars, or an environment that may hold them), and the passwords of those that are URLs."""
    for name in SECRET_VARIABLES:
        if variables.get(name):
            redact.add(variables[name])
    for name in URL_SECRET_VARIABLES:
        if variables.get(name):
            redact.add_url_secrets(variables[name])
