"""Command line: turns argv into one pipeline run and every failure into a readable message.

Stdlib only at import time: the third-party dependencies are installed by ``bootstrap`` and
imported by ``build`` after that. Users never see a Python traceback: a ``BuildError`` is
printed as an error with its hint, anything else as an internal error whose trace is shown
only with SMTP_CA_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from smtp_ca.bootstrap import ensure_dependencies
from smtp_ca.errors import BuildError
from smtp_ca.output import Log, Redactor
from smtp_ca.settings import SECRET_VARIABLES, load_settings, read_env_dir

BUILDPACK_DIR = Path(__file__).resolve().parents[2]
LOCK_FILE = BUILDPACK_DIR / "requirements.lock"
REPORT_TO = "the issue tracker of heroku-buildpack-smtp-ca, with this build log"


def _compile(arguments: argparse.Namespace, log: Log) -> int:
    build_dir = Path(arguments.build_dir).resolve()
    cache_dir = Path(arguments.cache_dir).resolve()
    env_dir = Path(arguments.env_dir) if arguments.env_dir else None
    if not build_dir.is_dir():
        raise BuildError(f"BUILD_DIR {build_dir} is not a directory.")
    variables = read_env_dir(env_dir)
    for name in SECRET_VARIABLES:
        if variables.get(name):
            log.redact.add(variables[name])
    settings = load_settings(variables, os.environ.get("STACK"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    dependencies = ensure_dependencies(
        cache_dir, stack=settings.stack, env_dir=env_dir, lock_file=LOCK_FILE, log=log
    )
    sys.path.insert(0, str(dependencies))
    from smtp_ca.build import build  # needs the dependencies on sys.path

    build(settings, build_dir=build_dir, cache_dir=cache_dir, buildpack_dir=BUILDPACK_DIR, log=log)
    return 0


def _check(arguments: argparse.Namespace, log: Log) -> int:
    cache_dir = Path(
        os.environ.get("SMTP_CA_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "heroku-buildpack-smtp-ca"
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    dependencies = ensure_dependencies(
        cache_dir,
        stack=os.environ.get("STACK") or "local",
        env_dir=None,
        lock_file=LOCK_FILE,
        log=log,
    )
    sys.path.insert(0, str(dependencies))
    from smtp_ca import check_command  # needs the dependencies on sys.path

    return check_command.run(arguments, cache_dir, log)


def _timeout(text: str) -> float:
    value = float(text)
    if not 0 < value <= 120:
        raise argparse.ArgumentTypeError("must be above 0 and at most 120 seconds")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smtp_ca")
    commands = parser.add_subparsers(dest="command", required=True)
    compile_command = commands.add_parser("compile", help="Heroku's bin/compile")
    compile_command.add_argument("build_dir")
    compile_command.add_argument("cache_dir")
    compile_command.add_argument("env_dir", nargs="?")
    compile_command.set_defaults(run=_compile)
    check_command = commands.add_parser(
        "check", help="handshake with an SMTP server and say why it does or does not verify"
    )
    check_command.add_argument("address", metavar="HOST[:PORT]")
    check_command.add_argument("--ca-file", type=Path, help="trust this bundle (default: build's)")
    check_command.add_argument("--tls", action="store_true", help="TLS from the first byte")
    check_command.add_argument("--timeout", type=_timeout, default=10.0, metavar="SECONDS")
    check_command.set_defaults(run=_check)
    return parser


def _debug_enabled(arguments: argparse.Namespace) -> bool:
    if os.environ.get("SMTP_CA_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    env_dir = getattr(arguments, "env_dir", None)
    flag = Path(env_dir) / "SMTP_CA_DEBUG" if env_dir else None
    try:
        return bool(flag and flag.read_text().strip().lower() in ("1", "true", "yes"))
    except OSError:
        return False


def main(argv: list[str], log: Log | None = None) -> int:
    log = log or Log(Redactor())
    arguments = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace, Log], int] = arguments.run
    try:
        return run(arguments, log)
    except BuildError as error:
        log.error(error.message)
        if error.hint:
            log.alert(error.hint)
        return 1
    except KeyboardInterrupt:
        log.error("Interrupted.")
        return 130
    except Exception as error:
        log.error(
            f"Internal error in the SMTP CA buildpack ({error.__class__.__name__}). "
            "This is a bug, not a problem with your app."
        )
        log.alert(f"Please report it to {REPORT_TO}.")
        if _debug_enabled(arguments):
            log.alert("".join(traceback.format_exception(error)))
        else:
            log.alert("Set SMTP_CA_DEBUG=1 to see the details.")
        return 1
