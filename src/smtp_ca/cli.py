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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smtp_ca")
    commands = parser.add_subparsers(dest="command", required=True)
    compile_command = commands.add_parser("compile", help="Heroku's bin/compile")
    compile_command.add_argument("build_dir")
    compile_command.add_argument("cache_dir")
    compile_command.add_argument("env_dir", nargs="?")
    compile_command.set_defaults(run=_compile)
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
