"""Which pip settings reach the install of the buildpack's own dependencies, and their secrets.

pip reads PIP_* environment variables and the file PIP_CONFIG_FILE names. The install gets the
build's own environment, plus each PIP_* config var the environment lacks (Heroku does not
export config vars to buildpacks; on CNB platforms they are in the environment already). Those
settings are how an app reaches its package index: a private index, a proxy, a certificate.

Settings that would decide where the install goes, what code runs or which files pip writes
are not passed, wherever they come from (:data:`NOT_PASSED`): the install's own command line
fixes the rest (``dependencies.pip.install_command``). A PIP_CONFIG_FILE is read like a config var
(a regular file, at most 64 KiB, UTF-8), and pip gets a copy without those settings; whatever
other config file pip reads, :data:`PINNED` values in its environment win over it. A config
var file in ENV_DIR is read with the checks every config var gets (``settings.values``): a FIFO
or a link to /dev/zero fails the build with a message, it does not hang it or fill its memory.

The URLs of the settings (index, extra index, find-links, proxy) may carry credentials: their
user info, long query values and path segments that look like tokens (``.../TOKEN/simple``)
are handed to the log's redactor before pip runs, so pip's output never shows them.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from smtp_ca.errors import BuildError
from smtp_ca.output import MIN_SECRET_QUERY_VALUE, url_secrets
from smtp_ca.settings.values import MAX_VARIABLE_BYTES, read_config_var
from smtp_ca.untrusted import echoed

CONFIG_FILE_VARIABLE = "PIP_CONFIG_FILE"
# pip's options that are not passed, by the name a config file gives them (``index-url``); the
# environment spells them PIP_ and the name in capitals with "_" for "-" (PIP_INDEX_URL).
NOT_PASSED = frozenset(
    {
        # Where the install goes, or whether pip accepts to make it.
        "target",
        "prefix",
        "root",
        "user",
        "require-virtualenv",
        # What is installed and how: the lock, its hashes and wheels only.
        "constraint",
        "requirement",
        "editable",
        "no-binary",
        "only-binary",
        "no-deps",
        # Code pip would run: another interpreter (pip re-runs itself with it), a keyring program.
        "python",
        "keyring-provider",
        # Files pip would write, anywhere the value says.
        "log",
        "log-file",
        "local-log",
        "report",
        "cache-dir",
        "src",
    }
)
# Values that win over any config file pip reads, wherever it lies: the machine's /etc, a home
# directory, or a directory XDG_CONFIG_DIRS or XDG_CONFIG_HOME names (config vars, on CNB
# platforms). pip takes the environment over config files, and the command line over both:
# what the command line fixes is in dependencies.pip.INSTALL_OPTIONS. pip ignores an empty value,
# so each is a harmless one. (A config file's prefix or editable can still make the install
# fail, which the build reports; it cannot move it or run anything.)
PINNED = {
    # pip re-runs itself with the interpreter a `python` setting names, unless it is that
    # re-run already (pip's own marker).
    "_PIP_RUNNING_IN_SUBPROCESS": "1",
    "PIP_LOG": os.devnull,  # log, log-file and local-log are one option
    "PIP_REPORT": os.devnull,
    "PIP_ROOT": "/",
    "PIP_USER": "0",
    "PIP_REQUIRE_VIRTUALENV": "0",
    # Requirements and constraints beyond the lock: pip adds the command line's to these.
    "PIP_REQUIREMENT": os.devnull,
    "PIP_CONSTRAINT": os.devnull,
}
# Settings whose values are URLs, which may carry credentials.
URL_OPTIONS = ("index-url", "extra-index-url", "find-links", "proxy")
# A URL path segment this long is taken for a token, whatever it holds; a shorter one from
# MIN_SECRET_QUERY_VALUE characters on when it mixes letters and digits ("simple", "pypi",
# "api", "v4" or a project number stay readable).
MIN_TOKEN_ANYHOW = 20

_PIP_VARIABLE = re.compile(r"PIP_[A-Z0-9_]+")
_NOT_PASSED_NOTE = (
    "the buildpack decides where its own dependencies go, what pip runs and which files it writes"
)


def option_name(setting: str) -> str:
    """A pip setting's option name: ``PIP_INDEX_URL``, ``index_url``, ``--index-url`` ->
    ``index-url`` (pip's own normalisation, for config files and the environment)."""
    name = setting.removeprefix("PIP_") if setting.startswith("PIP_") else setting
    return name.lower().replace("_", "-").removeprefix("--")


@dataclass
class PipSettings:
    """What pip runs with: its environment, notes for the build log (names, never values) and
    the secrets the log must redact."""

    env: dict[str, str]
    notes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


@contextmanager
def pip_settings(
    environ: Mapping[str, str],
    config_dir: Path | None,
    *,
    config_dir_name: str = "ENV_DIR",
    system_ca: Path,
    scratch: Path,
) -> Iterator[PipSettings]:
    """The settings pip runs with, for the time of the ``with`` block.

    ``config_dir`` holds the app's config vars (one file each). ``scratch`` is a directory of
    the buildpack's where pip's copy of a PIP_CONFIG_FILE is written for the block (named
    ``.pip-config.*.tmp``, which ``cache.lock.sweep_leftovers`` removes if a build is killed).
    Without PIP_CERT or REQUESTS_CA_BUNDLE, pip is pointed at the system trust store: a
    TLS-intercepting proxy's CA is installed there, not in the CA bundle vendored into pip.
    Raises ``BuildError`` for a config var or config file that cannot be read as one.
    """
    env = dict(environ)
    settings = PipSettings(env)
    from_config = _add_config_vars(env, config_dir, config_dir_name)
    ignored = sorted(name for name in env if _is_pip_variable(name) and _not_passed(name))
    for name in ignored:
        del env[name]
    used = [name for name in from_config if name not in ignored]
    if used:
        settings.notes.append(f"Using {', '.join(used)} from the app's config vars")
    if ignored:
        settings.notes.append(f"Not passing {', '.join(ignored)} to pip: {_NOT_PASSED_NOTE}")
    if "PIP_CERT" not in env and "REQUESTS_CA_BUNDLE" not in env and system_ca.is_file():
        env["PIP_CERT"] = str(system_ca)
    settings.secrets.extend(pip_url_secrets(env))

    copy: Path | None = None
    try:
        config_file = env.get(CONFIG_FILE_VARIABLE)
        if config_file is not None and config_file != os.devnull:
            copy = _sanitised_config_file(config_file, settings, scratch)
            if copy is None:
                del env[CONFIG_FILE_VARIABLE]
            else:
                env[CONFIG_FILE_VARIABLE] = str(copy)
        env.update(PINNED)
        yield settings
    finally:
        if copy is not None:
            with suppress(OSError):
                copy.unlink()


def _is_pip_variable(name: str) -> bool:
    return _PIP_VARIABLE.fullmatch(name) is not None


def _not_passed(setting: str) -> bool:
    return option_name(setting) in NOT_PASSED


def _add_config_vars(env: dict[str, str], config_dir: Path | None, dir_name: str) -> list[str]:
    """Adds each PIP_* config var of ``config_dir`` that ``env`` lacks; returns their names.
    Each is read with the checks of every config var (a regular file, a size cap, UTF-8)."""
    if config_dir is None:
        return []
    try:
        names = sorted(entry.name for entry in config_dir.iterdir())
    except OSError:
        return []
    added = []
    for name in names:
        if not _is_pip_variable(name) or name in env:
            continue
        value = read_config_var(config_dir, name, dir_name)
        if value is not None:
            env[name] = value
            added.append(name)
    return added


def _sanitised_config_file(value: str, settings: PipSettings, scratch: Path) -> Path | None:
    """pip's copy of the config file ``value`` names, without the settings that are not
    passed; None when no file is there (pip would read none either)."""
    path = Path(value)
    named = f"{CONFIG_FILE_VARIABLE} ({echoed(value)})"
    if not (path.exists() or path.is_symlink()):
        settings.notes.append(f"{named} names no file: pip reads no config file from it")
        return None
    parser = _parse_config_file(_read_config_file(path, named), named)
    dropped: set[str] = set()
    for section in [configparser.DEFAULTSECT, *parser.sections()]:
        options = parser.defaults() if section == configparser.DEFAULTSECT else parser[section]
        for key in list(options):
            name = option_name(key)
            if name in NOT_PASSED:
                dropped.add(name)
                parser.remove_option(section, key)
            elif name in URL_OPTIONS:
                for url in options[key].split():
                    settings.secrets.extend(_url_and_path_secrets(url))
    if dropped:
        settings.notes.append(
            f"Not passing {', '.join(sorted(dropped))} from {CONFIG_FILE_VARIABLE} to pip: "
            f"{_NOT_PASSED_NOTE}"
        )
    # Private to the build: the file may hold an index's credentials.
    descriptor, name = tempfile.mkstemp(dir=scratch, prefix=".pip-config.", suffix=".tmp")
    copy = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            parser.write(stream)
    except BaseException:
        copy.unlink()
        raise
    return copy


def _read_config_file(path: Path, named: str) -> str:
    """The text of a pip config file, read as a config var is: a regular file (opened without
    waiting, so a FIFO cannot hold the build), at most MAX_VARIABLE_BYTES, UTF-8."""
    fix = f"Point {CONFIG_FILE_VARIABLE} at a pip config file, or unset it."
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise BuildError(f"{named} cannot be read: {error.strerror or error}.", hint=fix) from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise BuildError(f"{named} is not a regular file: pip config is a text file.", hint=fix)
    with os.fdopen(descriptor, "rb") as stream:
        data = stream.read(MAX_VARIABLE_BYTES + 1)
    if len(data) > MAX_VARIABLE_BYTES:
        raise BuildError(
            f"{named} is larger than {MAX_VARIABLE_BYTES} bytes: that is no pip config file.",
            hint=fix,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BuildError(
            f"{named} is not text: byte {error.start + 1} is not UTF-8.", hint=fix
        ) from None


def _parse_config_file(text: str, named: str) -> configparser.RawConfigParser:
    """The file as pip parses it (a RawConfigParser). The error names a line, never its text:
    the line may hold a password."""
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as error:
        lines = getattr(error, "errors", None)
        line = lines[0][0] if lines else getattr(error, "lineno", None)
        where = f" (line {line})" if line else ""
        raise BuildError(
            f"{named} is not a pip config file pip could read{where}: {type(error).__name__}.",
            hint=f"Fix the file, or unset {CONFIG_FILE_VARIABLE}.",
        ) from None
    return parser


def pip_url_secrets(env: Mapping[str, str]) -> list[str]:
    """The secrets in the URL settings of ``env`` (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
    PIP_FIND_LINKS, PIP_PROXY; each may list several URLs): ``output.url_secrets`` (passwords,
    a token given as the user name, long query values) and path segments that look like
    tokens."""
    variables = [f"PIP_{name.upper().replace('-', '_')}" for name in URL_OPTIONS]
    return [
        secret
        for variable in variables
        for url in env.get(variable, "").split()
        for secret in _url_and_path_secrets(url)
    ]


def _url_and_path_secrets(url: str) -> list[str]:
    return [*url_secrets(url), *path_tokens(url)]


def path_tokens(url: str) -> list[str]:
    """Segments of ``url``'s path that look like tokens (``https://host/TOKEN/simple``), as
    written and percent-decoded: MIN_TOKEN_ANYHOW characters or more, or from
    MIN_SECRET_QUERY_VALUE on when they hold both a letter and a digit."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return []
    tokens: list[str] = []
    for segment in path.split("/"):
        decoded = unquote(segment)
        if _looks_like_token(decoded):
            tokens.extend(form for form in dict.fromkeys((segment, decoded)) if form)
    return tokens


def _looks_like_token(segment: str) -> bool:
    if len(segment) >= MIN_TOKEN_ANYHOW:
        return True
    return (
        len(segment) >= MIN_SECRET_QUERY_VALUE
        and any(character.isdigit() for character in segment)
        and any(character.isalpha() for character in segment)
    )
