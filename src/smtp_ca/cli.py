"""Command line: turns argv into one pipeline run and every failure into a readable message.

Stdlib only at import time: the third-party dependencies are installed by
``dependencies.install`` and imported by ``build`` after that. Users never see a Python
traceback: a ``BuildError`` is printed as an error with its hint, a usage mistake as the usage,
anything else as an internal error that says where to report it, whose trace is shown only
with SMTP_CA_DEBUG=1.

Everything the buildpack prints goes through one ``Log``, which redacts secrets; while a command
runs, what libraries write with ``logging`` or ``warnings`` is sent there too, instead of to
stderr as it is.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import NoReturn

from smtp_ca import BUILDPACK_DIR, pipeline
from smtp_ca.cache.lock import CHECK, cache_lock, wait_bound
from smtp_ca.cache.owner import claim
from smtp_ca.errors import BuildError
from smtp_ca.output import Log, LogHandler, Redactor
from smtp_ca.platforms.classic import ClassicPlatform
from smtp_ca.platforms.cnb import CnbPlatform
from smtp_ca.settings.load import MAX_CHECK_TIMEOUT
from smtp_ca.settings.values import (
    MIN_SECONDS,
    parse_debug,
    read_config_var,
    redact_secret_variables,
    seconds_within,
)

REPORT_TO = "the issue tracker of heroku-buildpack-smtp-ca, with this build log"
EXIT_USAGE = 2
# 128 + the signal's number, as a shell reports a process the signal ended: Ctrl-C (SIGINT)
# and a cancelled build or a stopped dyno (SIGTERM), which platforms read as such.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM
# What bin/check with no or wrong arguments prints: its usage, in the buildpack's words.
CHECK_USAGE = (
    "Usage: bin/check HOST[:PORT] [--ca-file FILE] [--tls] [--timeout SECONDS]",
    "For example: bin/check smtp.sendgrid.net:587 (the port is 25 when none is given).",
)


def _compile(arguments: argparse.Namespace, log: Log) -> int:
    platform = ClassicPlatform.from_arguments(
        arguments.build_dir,
        arguments.cache_dir,
        arguments.env_dir,
        buildpack_dir=BUILDPACK_DIR,
    )
    pipeline.run(platform, log)
    return 0


def _build(arguments: argparse.Namespace, log: Log) -> int:
    platform = CnbPlatform.from_environment(os.environ, Path.cwd())
    pipeline.run(platform, log)
    return 0


def _check(arguments: argparse.Namespace, log: Log) -> int:
    if arguments.address is None:  # bin/check alone: what to type, before any work
        raise _UsageError(None, CHECK_USAGE)
    cache_dir = Path(
        os.environ.get("SMTP_CA_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "heroku-buildpack-smtp-ca"
    )
    what = f"The cache directory {cache_dir}"
    # Before anything is written there: a directory of the user's is refused, not emptied.
    claim(
        cache_dir,
        what=what,
        hint="Set SMTP_CA_CACHE_DIR to a new or empty directory, which bin/check makes its own.",
    )
    # Two bin/check runs on one cache (a first run in two terminals) take turns, as builds do.
    with cache_lock(cache_dir, what=what, wait=wait_bound(os.environ), log=log, user=CHECK):
        pipeline.load_dependencies(
            cache_dir,
            what=what,
            hint="Set SMTP_CA_CACHE_DIR to a writable directory.",
            stack=os.environ.get("STACK") or "local",
            config_dir=None,
            log=log,
        )
        from smtp_ca.check.command import run_command  # needs the dependencies on sys.path

        return run_command(arguments, cache_dir, log)


def _timeout(text: str) -> float:
    # Read as SMTP_CA_CHECK_TIMEOUT is: "1e-300", "inf" or "٣" are not a number of seconds.
    value = seconds_within(text, MAX_CHECK_TIMEOUT)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds from {MIN_SECONDS:g} to {MAX_CHECK_TIMEOUT:g}, "
            "in digits (such as 10 or 2.5)"
        )
    return value


def _ca_file(text: str) -> Path:
    # Path("") is ".", which the message would then name: say what was typed instead.
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name a file of PEM certificates")
    return Path(text)


class _UsageError(Exception):
    def __init__(self, message: str | None, usage: tuple[str, ...]) -> None:
        super().__init__(message)
        self.lines = (*([message] if message else []), *usage)


class _Parser(argparse.ArgumentParser):
    """Reports a usage mistake through the log (redacted, Heroku's prefix), not print().

    ``voiced_usage``: the usage in the buildpack's words, for a command users type (bin/check);
    without it, argparse's own (bin/compile and bin/build check their arguments before this).
    """

    voiced_usage: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, self.voiced_usage or (self.format_usage().strip(),))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="smtp_ca")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    compile_command = commands.add_parser("compile", help="Heroku's bin/compile")
    compile_command.add_argument("build_dir")
    compile_command.add_argument("cache_dir")
    compile_command.add_argument("env_dir", nargs="?")
    compile_command.set_defaults(run=_compile)
    build_command = commands.add_parser("build", help="the Cloud Native Buildpack bin/build")
    # Where SMTP_CA_DEBUG is read from after an internal error, as ENV_DIR is for compile.
    platform_dir = os.environ.get("CNB_PLATFORM_DIR")
    build_command.set_defaults(
        run=_build, env_dir=str(Path(platform_dir) / "env") if platform_dir else None
    )
    check_command = commands.add_parser(
        "check",
        help="handshake with an SMTP server and say why it does or does not verify",
        prog="bin/check",
        usage=CHECK_USAGE[0].removeprefix("Usage: "),
        epilog=CHECK_USAGE[1],
    )
    check_command.voiced_usage = CHECK_USAGE
    # Optional here so that bin/check alone prints the usage and nothing else.
    check_command.add_argument(
        "address", metavar="HOST[:PORT]", nargs="?", help="the SMTP server the app sends to"
    )
    check_command.add_argument(
        "--ca-file", type=_ca_file, metavar="FILE", help="trust this bundle (default: build's)"
    )
    check_command.add_argument("--tls", action="store_true", help="TLS from the first byte")
    check_command.add_argument(
        "--timeout",
        type=_timeout,
        default=10.0,
        metavar="SECONDS",
        help="how long the check may take (default 10)",
    )
    check_command.set_defaults(run=_check)
    return parser


def _debug_enabled(arguments: argparse.Namespace | None) -> bool:
    """SMTP_CA_DEBUG from the environment or ENV_DIR, read again after an internal error.

    An invalid value already failed the build before it could get here; if it did not (the
    internal error came first), it counts as off.
    """
    values = [os.environ.get("SMTP_CA_DEBUG")]
    env_dir = getattr(arguments, "env_dir", None)
    if env_dir:
        with suppress(BuildError):
            values.append(read_config_var(Path(env_dir), "SMTP_CA_DEBUG"))
    for value in values:
        try:
            if parse_debug(value):
                return True
        except BuildError:
            continue
    return False


@contextmanager
def _everything_through(log: Log) -> Iterator[None]:
    """While a command runs: library logging and warnings go through ``log``, and SIGTERM (a
    cancelled build) unwinds like Ctrl-C, so staged files are removed and undone.

    So do errors Python would otherwise print straight to stderr, unredacted: an exception in
    a thread (the check's name lookup runs in one) or in a finalizer. One line each, the
    class only: their text may hold what the redactor has not seen.
    """
    root = logging.getLogger()
    handler = LogHandler(log)
    root.addHandler(handler)
    logging.captureWarnings(True)
    previous_thread_hook, previous_unraisable_hook = threading.excepthook, sys.unraisablehook

    def thread_failed(args: threading.ExceptHookArgs) -> None:
        log.warn(f"A background task failed ({args.exc_type.__name__}); the build goes on.")

    def unraisable(args: sys.UnraisableHookArgs) -> None:
        log.warn(f"Ignored an error while cleaning up ({args.exc_type.__name__}).")

    threading.excepthook = thread_failed
    sys.unraisablehook = unraisable
    previous_sigterm: Callable[[int, FrameType | None], object] | int | None = None
    installed = False
    try:
        previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        installed = True
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        root.removeHandler(handler)
        logging.captureWarnings(False)
        threading.excepthook, sys.unraisablehook = previous_thread_hook, previous_unraisable_hook
        if installed:
            signal.signal(signal.SIGTERM, previous_sigterm or signal.SIG_DFL)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding as Ctrl-C does (staged files removed, the app as it was), but
    ending with its own exit status."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _lenient_streams() -> None:
    """A character the terminal's encoding lacks must not turn a message into a crash."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str], log: Log | None = None) -> int:
    if log is None:
        _lenient_streams()
        log = Log(Redactor())
    # On a dyno or a laptop the environment may hold the app's config vars.
    redact_secret_variables(log.redact, os.environ)
    arguments: argparse.Namespace | None = None
    with _everything_through(log):
        try:
            arguments = _parser().parse_args(argv)
            parse_debug(os.environ.get("SMTP_CA_DEBUG"))  # a typo fails here, named
            run: Callable[[argparse.Namespace, Log], int] = arguments.run
            return run(arguments, log)
        except _UsageError as error:
            log.error(*error.lines)
            return EXIT_USAGE
        except BuildError as error:
            log.error(error.message, *([error.hint] if error.hint else []))
            return 1
        except _Terminated:
            log.error("Terminated (SIGTERM).")
            return EXIT_TERMINATED
        except KeyboardInterrupt:
            log.error("Interrupted.")
            return EXIT_INTERRUPTED
        except Exception as error:
            log.error(
                f"Internal error in the SMTP CA buildpack ({error.__class__.__name__}). "
                "This is a bug, not a problem with your app.",
                f"Please report it to {REPORT_TO}.",
                "".join(traceback.format_exception(error))
                if _debug_enabled(arguments)
                else "Set SMTP_CA_DEBUG=1 to see the details.",
            )
            return 1
