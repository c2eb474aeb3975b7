"""The SMTP settings an app writes in its own Ruby config, read as text.

Many Rails apps name their server in code, not in a config var::

    config.action_mailer.smtp_settings = { address: "smtp.example.com", port: 587 }
    ActionMailer::Base.smtp_settings = { :address => 'mx.example.com', :port => 465, :tls => true }
    delivery_method :smtp, address: "smtp.example.com", port: 587          # Mail.defaults
    ActionMailer::Base.add_delivery_method :relay, Mail::SMTP, address: "smtp.example.com"

The build finds such a literal host in ``config/environments/production.rb`` and the
initializers (``config/initializers/**/*.rb``, as Rails loads them) and checks it. It never
runs the app's Ruby: it reads the files as text, with comments and ``=begin`` blocks left
out, and takes only values written as literals there (a string, a number, ``true``,
``false``, ``:none``, ``OpenSSL::SSL::VERIFY_NONE``). A value that comes from ``ENV`` or any
other code is not known at build time and is ignored: the app's config vars are the mail
add-ons' business (smtp_ca.settings.addons), and the build reads no other config var. Settings
inside ``if Rails.env.development?`` (or ``test?``, or ``unless ...production?``) are skipped:
production never uses them.

What the build learns here besides servers: whether the app's settings name an
``openssl_verify_mode`` at all, which files set it to ``none``, and whether the app reads
Mastodon's ``SMTP_OPENSSL_VERIFY_MODE`` (smtp_ca.settings.verify_advice words its advice by that).

Bounded like every input: at most ``MAX_FILES`` files of at most ``MAX_FILE_BYTES`` each and
``MAX_TOTAL_BYTES`` in all, ``MAX_BLOCKS_PER_FILE`` settings blocks a file of at most
``MAX_BLOCK`` characters each (and as far back for the condition around one), and regular
expressions without nested repetition. A file that cannot be read, is too large, is
not a regular file or is not text is a warning that names it, never a failure.

Stdlib only, like ``load``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from smtp_ca.settings.smtp import (
    DEFAULT_SMTP_PORT,
    Origin,
    SmtpServer,
    StartTls,
    VerifyMode,
    host_value,
)
from smtp_ca.untrusted import echoed

PRODUCTION_RB = "config/environments/production.rb"
INITIALIZERS = "config/initializers"
# Mastodon 4.x reads its mail config vars here, not in production.rb.
MASTODON_EMAIL_YML = "config/email.yml"
# The buildpack's own initializer: it names no server.
OWN_INITIALIZER = "config/initializers/smtp_ca.rb"
MASTODON_VERIFY_VARIABLE = "SMTP_OPENSSL_VERIFY_MODE"

# A config file written by hand is a few kilobytes; production.rb rarely passes 20.
MAX_FILE_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
MAX_FILES = 200
# Directory entries looked at under config/initializers, and how deep.
MAX_ENTRIES = 5000
MAX_DEPTH = 8
# One settings hash, or the arguments of one call; and how far back the scan looks for the
# condition a block sits in.
MAX_BLOCK = 16 * 1024
# Settings blocks read in one file: an app has a handful.
MAX_BLOCKS_PER_FILE = 50
# A port the check assumes when the app's port is not written as a number.
ASSUMED_PORT = 587
IMPLICIT_TLS_PORT = 465

# Comments, =begin blocks and strings: what the scan must not mistake for code. Strings may be
# unterminated at the end of the file; each alternative repeats one character class only.
_LEXEMES = re.compile(
    r"""
    ^=begin\b[\s\S]*?(?:^=end\b[^\n]*|\Z)
    | \#[^\n]*
    | "[^"\\]*(?:\\[\s\S][^"\\]*)*"?
    | '[^'\\]*(?:\\[\s\S][^'\\]*)*'?
    """,
    re.MULTILINE | re.VERBOSE,
)
# Where settings for the mail gem's SMTP delivery begin.
_ANCHOR = re.compile(
    r"""
    \bsmtp_settings\b[ \t]*(?:=(?![=~])|\.merge!?[ \t]*\(?|\.update[ \t]*\(?)
    | \bdelivery_method[ \t]*\(?[ \t]*:smtp\b[ \t]*,?
    | \bMail::SMTP\b[ \t]*,?
    """,
    re.VERBOSE,
)
_KEYS = "address|port|tls|ssl|enable_starttls_auto|enable_starttls|openssl_verify_mode"
# address: / :address => / "address" => / "address": (a key, and nothing that only ends in one).
_KEY = re.compile(
    rf"""
    (?<![\w:@.$])(?P<bare>{_KEYS}):(?!:)
    | (?<![\w:]):(?P<symbol>{_KEYS})[ \t]*=>
    | (?P<quote>["'])(?P<quoted>{_KEYS})(?P=quote)[ \t]*(?:=>|:(?!:))
    """,
    re.VERBOSE,
)
_VALUE = re.compile(
    r"""
    [ \t]*(?:
        (?P<single>'[^'\\\n]*(?:\\.[^'\\\n]*)*')
      | (?P<double>"[^"\\\n]*(?:\\.[^"\\\n]*)*")
      | (?P<number>[0-9]{1,9})\b
      | (?P<word>true|false|nil)\b
      | :(?P<symbol>[A-Za-z_]+)\b
      | (?:::)?OpenSSL::SSL::VERIFY_(?P<constant>[A-Z_]+)\b
    )[ \t]*(?=,|\}|\)|\n|\Z|(?:if|unless)\b)
    """,
    re.VERBOSE,
)
_ENV_NAMES = re.compile(
    r"""Rails\.env\.(?P<method>\w+)\?|Rails\.env[ \t]*(?P<op>[!=]=)[ \t]*['":](?P<name>\w+)"""
)
_CONDITION = re.compile(r"^[ \t]*(?P<keyword>if|elsif|unless|else|when|case)\b(?P<rest>[^\n]*)")
_MODIFIER = re.compile(r"^[ \t]*(?P<keyword>if|unless)\b(?P<rest>[^\n]*)")


@dataclass(frozen=True)
class AppMailSettings:
    """What the app's own config says about its mail."""

    servers: tuple[SmtpServer, ...] = ()
    """Literal hosts, in the order Rails runs the files, each once."""
    notices: tuple[str, ...] = ()
    """Files the build could not read, and values it could not use: warnings."""
    names_verify_mode: bool = False
    """Whether any settings block names ``openssl_verify_mode`` (whatever its value)."""
    verify_none_files: tuple[str, ...] = ()
    """Files whose settings set ``openssl_verify_mode`` to none, other than for a server the
    check names (its step says so)."""
    reads_mastodon_verify_mode: bool | None = None
    """Whether the app's config reads SMTP_OPENSSL_VERIFY_MODE; None when it has neither
    production.rb nor config/email.yml, so its files cannot tell."""
    production_rb: str | None = None
    """The text of production.rb as read here (None when the app has none, or it was skipped):
    the Gemfile.lock step's advice looks at it too, without reading it again."""


class _NotLiteral:
    """A value written as code (ENV, a method call): not known at build time."""


NOT_LITERAL = _NotLiteral()
Literal = str | int | bool | None | _NotLiteral


@dataclass
class _Block:
    """One settings hash or argument list: the literal values found in it (a symbol's name
    starts with ``:``)."""

    path: str
    values: dict[str, Literal] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)  # keys present, literal or not


@dataclass
class _Reader:
    app_dir: Path
    notices: list[str] = field(default_factory=list)
    total: int = 0

    def read(self, relative: str, *, quiet_if_missing: bool = True) -> str | None:
        """The text of ``relative``, or None (with a notice when something is odd)."""
        path = self.app_dir / relative
        what = f"{relative} in the app"
        try:
            info = path.stat()
        except FileNotFoundError:
            if path.is_symlink():
                self.notices.append(f"{what} is a symbolic link to nothing: {_SKIPPED}")
            elif not quiet_if_missing:
                self.notices.append(f"{what} is gone: {_SKIPPED}")
            return None
        except OSError as error:
            self.notices.append(f"{what} cannot be read ({_reason(error)}): {_SKIPPED}")
            return None
        if not stat.S_ISREG(info.st_mode):
            if not stat.S_ISDIR(info.st_mode):
                self.notices.append(f"{what} is not a regular file: {_SKIPPED}")
            return None
        if info.st_size > MAX_FILE_BYTES:
            self.notices.append(
                f"{what} is {info.st_size:,} bytes, larger than a config file written by hand "
                f"({MAX_FILE_BYTES // 1024} KiB at most): {_SKIPPED}"
            )
            return None
        if self.total + info.st_size > MAX_TOTAL_BYTES:
            self.notices.append(
                f"The app's config files pass {MAX_TOTAL_BYTES // (1024 * 1024)} MiB together: "
                f"the build read no further, and {relative} and the files after it were not "
                "read for an SMTP server."
            )
            return None
        data = _read_regular(path, what, self.notices)
        if data is None:
            return None
        self.total += len(data)
        if b"\0" in data:
            self.notices.append(f"{what} holds NUL bytes, so it is not Ruby source: {_SKIPPED}")
            return None
        return data.decode("utf-8", errors="replace").replace("\r\n", "\n")


_SKIPPED = "the build did not read it for the app's SMTP server, and checks none named there."


def _reason(error: OSError) -> str:
    return error.strerror or error.__class__.__name__


def _read_regular(path: Path, what: str, notices: list[str]) -> bytes | None:
    """At most MAX_FILE_BYTES of a regular file, opened without blocking (a FIFO swapped in
    after the stat must not hang the build) and checked again once open."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        notices.append(f"{what} cannot be read ({_reason(error)}): {_SKIPPED}")
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            notices.append(f"{what} is not a regular file: {_SKIPPED}")
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(descriptor, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        reason = "it is a directory" if error.errno == errno.EISDIR else _reason(error)
        notices.append(f"{what} cannot be read ({reason}): {_SKIPPED}")
        return None
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        notices.append(
            f"{what} grew past {MAX_FILE_BYTES // 1024} KiB while it was read: {_SKIPPED}"
        )
        return None
    return data


def read_app_mail_settings(app_dir: Path) -> AppMailSettings:
    """Reads production.rb and the initializers for literal SMTP settings (see the module)."""
    reader = _Reader(app_dir)
    blocks: list[_Block] = []
    mastodon: bool | None = None
    production_rb = None
    for relative in [PRODUCTION_RB, *_initializers(app_dir, reader.notices)]:
        text = reader.read(relative)
        if text is None:
            continue
        if relative == PRODUCTION_RB:
            production_rb = text
        if MASTODON_VERIFY_VARIABLE in text:
            mastodon = True
        blocks += _blocks(relative, text)
    if mastodon is None:
        email_yml = reader.read(MASTODON_EMAIL_YML)
        if email_yml is not None and MASTODON_VERIFY_VARIABLE in email_yml:
            mastodon = True
        elif (app_dir / PRODUCTION_RB).is_file() or (app_dir / MASTODON_EMAIL_YML).is_file():
            mastodon = False
    servers, none_files, notices = _servers(blocks)
    return AppMailSettings(
        servers=tuple(servers),
        notices=(*reader.notices, *notices),
        names_verify_mode=any("openssl_verify_mode" in block.named for block in blocks),
        verify_none_files=tuple(dict.fromkeys(none_files)),
        reads_mastodon_verify_mode=mastodon,
        production_rb=production_rb,
    )


def _initializers(app_dir: Path, notices: list[str]) -> list[str]:
    """config/initializers/**/*.rb as Rails loads them (sorted), ours left out, bounded."""
    root = app_dir / INITIALIZERS
    if not root.is_dir():
        return []
    found: list[str] = []
    for seen, relative in enumerate(_walk(root, INITIALIZERS, 0), start=1):
        if seen > MAX_ENTRIES:
            notices.append(
                f"{INITIALIZERS} holds more than {MAX_ENTRIES:,} entries: the build read the "
                "first it found for the app's SMTP server and no more."
            )
            break
        if relative.endswith(".rb") and relative != OWN_INITIALIZER:
            found.append(relative)
    found.sort()
    if len(found) > MAX_FILES:
        notices.append(
            f"{INITIALIZERS} holds {len(found):,} .rb files: the build read the first "
            f"{MAX_FILES} (by name) for the app's SMTP server."
        )
    return found[:MAX_FILES]


def _walk(directory: Path, relative: str, depth: int) -> Iterator[str]:
    """Every entry below ``directory`` as a path relative to the app, directories entered
    only when they are real (a link may point anywhere) and at most MAX_DEPTH deep."""
    try:
        with os.scandir(directory) as entries:
            listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:
        return  # an unreadable directory: Rails cannot load from it either
    for name, is_directory in listed:
        path = f"{relative}/{name}"
        yield path
        if is_directory and depth < MAX_DEPTH:
            yield from _walk(directory / name, path, depth + 1)


# --- the scan -----------------------------------------------------------------------------------


def _code(text: str) -> tuple[str, str]:
    """``text`` with comments blanked (``code``), and the same with the inside of every
    string blanked too (``masked``): both as long as ``text``, line breaks kept, so one offset
    means the same place in all three."""
    code: list[str] = []
    masked: list[str] = []
    done = 0
    for lexeme in _LEXEMES.finditer(text):
        start, end = lexeme.span()
        code.append(text[done:start])
        masked.append(text[done:start])
        piece = lexeme.group()
        if piece[0] in "\"'":
            code.append(piece)
            inside = re.sub(r"[^\n]", "x", piece[1:])
            masked.append(piece[0] + inside[:-1] + (piece[-1] if piece[-1] == piece[0] else "x"))
        else:
            blank = re.sub(r"[^\n]", " ", piece)
            code.append(blank)
            masked.append(blank)
        done = end
    code.append(text[done:])
    masked.append(text[done:])
    return "".join(code), "".join(masked)


def _blocks(relative: str, text: str) -> list[_Block]:
    code, masked = _code(text)
    blocks: list[_Block] = []
    for number, anchor in enumerate(_ANCHOR.finditer(masked)):
        if number == MAX_BLOCKS_PER_FILE:
            break
        goes_on = anchor.group().rstrip().endswith((",", "(", "="))
        start, end = _region(masked, anchor.end(), goes_on=goes_on)
        if _guarded_off_production(masked, anchor.start(), end):
            continue
        block = _Block(relative)
        for key in _KEY.finditer(code, start, end):
            if masked[key.start()] != code[key.start()]:
                continue  # inside a string
            name = key.group("bare") or key.group("symbol") or key.group("quoted")
            block.named.add(name)
            block.values[name] = _literal(code, key.end(), end)
        blocks.append(block)
    return blocks


def _literal(code: str, position: int, end: int) -> Literal:
    """The literal value at ``position``: a str (``:name`` for a symbol, ``VERIFY_NONE`` for
    OpenSSL's constant), an int, a bool, None for nil, or NOT_LITERAL for anything else."""
    match = _VALUE.match(code, position, end)
    if match is None:
        return NOT_LITERAL
    if match.group("single") is not None:
        return re.sub(r"\\(['\\])", r"\1", match.group("single")[1:-1])
    if match.group("double") is not None:
        text = match.group("double")[1:-1]
        return NOT_LITERAL if "#{" in text or "\\" in text else text
    if match.group("number") is not None:
        return int(match.group("number"))
    if match.group("word") is not None:
        return {"true": True, "false": False, "nil": None}[match.group("word")]
    if match.group("symbol") is not None:
        return f":{match.group('symbol')}"
    return f"VERIFY_{match.group('constant')}"


def _region(masked: str, start: int, *, goes_on: bool) -> tuple[int, int]:
    """Where the settings that begin at ``start`` end: the matching brace or parenthesis, or
    the end of the statement (a line that ends with a comma goes on; so does the anchor's own
    line when it ends with one, ``goes_on``)."""
    position = start
    while position < len(masked) and masked[position] in " \t\n":
        position += 1
    limit = min(len(masked), position + MAX_BLOCK)
    if position < limit and masked[position] in "{(":
        opening = masked[position]
        closing = "}" if opening == "{" else ")"
        depth = 0
        for index in range(position, limit):
            character = masked[index]
            if character == opening:
                depth += 1
            elif character == closing:
                depth -= 1
                if depth == 0:
                    return position, index + 1
        return position, limit
    line_end = start
    while line_end < limit:
        line_end = masked.find("\n", line_end + 1, limit)
        line_end = limit if line_end < 0 else line_end
        so_far = masked[start:line_end].rstrip()
        if not so_far and not goes_on:
            return start, start
        if so_far and not so_far.endswith((",", "\\")):
            return start, line_end
    return start, limit


def _guarded_off_production(masked: str, anchor: int, region_end: int) -> bool:
    """Whether the settings at ``anchor`` only apply outside production: an ``if`` modifier
    after them, or an enclosing ``if``/``unless``/``else``/``when`` about Rails.env."""
    line_end = masked.find("\n", region_end)
    after = masked[region_end : len(masked) if line_end < 0 else line_end]
    modifier = _MODIFIER.match(after)
    if modifier and (verdict := _env_verdict(modifier["keyword"], modifier["rest"])) is not None:
        return not verdict
    lines = masked[max(0, anchor - MAX_BLOCK) : anchor].split("\n")
    indent = _indent(lines[-1]) if lines[-1].strip() else len(lines[-1])
    for number in range(len(lines) - 2, -1, -1):
        line = lines[number]
        if not line.strip() or _indent(line) >= indent:
            continue
        indent = _indent(line)
        condition = _CONDITION.match(line)
        if condition is None:
            if indent == 0:
                break
            continue
        keyword = condition["keyword"]
        if keyword == "else":
            opening = _opening_if(lines, number, indent)
            if opening is not None:
                verdict = _env_verdict(opening["keyword"], opening["rest"])
                if verdict is not None:
                    return verdict  # the else of a production condition is everything else
            continue
        if keyword == "when":
            names = re.findall(r"""['":](\w+)""", condition["rest"])
            if names and _case_on_env(lines, number, indent):
                return "production" not in names
            continue
        verdict = _env_verdict(keyword, condition["rest"])
        if verdict is not None:
            return not verdict
    return False


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _opening_if(lines: list[str], number: int, indent: int) -> re.Match[str] | None:
    for earlier in range(number - 1, -1, -1):
        line = lines[earlier]
        if line.strip() and _indent(line) == indent:
            match = _CONDITION.match(line)
            if match and match["keyword"] in ("if", "unless", "elsif"):
                return match
            if match is None or match["keyword"] not in ("else",):
                return None
        elif line.strip() and _indent(line) < indent:
            return None
    return None


def _case_on_env(lines: list[str], number: int, indent: int) -> bool:
    for earlier in range(number - 1, -1, -1):
        line = lines[earlier]
        if line.strip() and _indent(line) <= indent:
            match = _CONDITION.match(line)
            if match and match["keyword"] == "case":
                return "Rails.env" in match["rest"]
            if match is None or match["keyword"] != "when":
                return False
    return False


def _env_verdict(keyword: str, condition: str) -> bool | None:
    """Whether code under ``keyword condition`` runs in production, when the condition is
    about Rails.env; None when it is about something else."""
    production = others = False
    for match in _ENV_NAMES.finditer(condition):
        name = match["method"] or match["name"]
        negated = match["op"] == "!=" or condition[: match.start()].rstrip().endswith("!")
        if (name == "production") != negated:
            production = True
        else:
            others = True
    if not production and not others:
        return None
    if keyword == "unless":
        return not production
    return production


# --- what the blocks say ------------------------------------------------------------------------


def _servers(blocks: list[_Block]) -> tuple[list[SmtpServer], list[str], list[str]]:
    servers: dict[tuple[str, int, bool], SmtpServer] = {}
    none_files: list[str] = []
    notices: list[str] = []
    for block in blocks:
        verify_mode = _verify_mode(block.values.get("openssl_verify_mode"))
        address = block.values.get("address")
        if not isinstance(address, str) or address.startswith((":", "VERIFY_")):
            if verify_mode == "none":
                none_files.append(block.path)
            continue
        server = _server(block, address, verify_mode, notices)
        if server is None:
            if verify_mode == "none":
                none_files.append(block.path)
            continue
        servers.setdefault(server.endpoint, server)
    return list(servers.values()), none_files, notices


def _server(
    block: _Block, address: str, verify_mode: VerifyMode | None, notices: list[str]
) -> SmtpServer | None:
    path = block.path
    host = host_value(address.strip())
    if host is None:
        notices.append(
            f"{path} names the SMTP address {echoed(address, 60, render=repr)}, which is not a "
            "host name or an IP address as the app's Ruby takes them (an IPv6 address goes "
            "without brackets, an IPv4 address in the usual dotted form): the build does not "
            "check it."
        )
        return None
    notes: list[str] = []
    port_value = block.values.get("port", DEFAULT_SMTP_PORT)
    if isinstance(port_value, str) and re.fullmatch(r"[0-9]{1,9}", port_value):
        port_value = int(port_value)
    if isinstance(port_value, bool) or not isinstance(port_value, int):
        port_value = ASSUMED_PORT
        notes.append(
            f"The port in {path} is not written there as a number: the check tries "
            f"{ASSUMED_PORT}, the usual STARTTLS port."
        )
    elif not 1 <= port_value <= 65535:
        notices.append(
            f"{path} names port {port_value} for {host}, which is not a port (1 to 65535): "
            "the build does not check it."
        )
        return None
    tls = block.values.get("tls") is True or block.values.get("ssl") is True
    unknown_tls = any(block.values.get(name) is NOT_LITERAL for name in ("tls", "ssl"))
    implicit_tls = tls or (unknown_tls and port_value == IMPLICIT_TLS_PORT)
    origin = Origin(
        found_in=path,
        server=f"the address in {path}",
        server_is=f"{{host}} (the address in {path})",
        use_name=f"address: '{{name}}' in {path}",
        port=f"the port in {path}",
        settings=path,
        in_file=True,
    )
    return SmtpServer(
        "",
        host,
        port_value,
        implicit_tls,
        _starttls(block),
        verify_mode,
        origin=origin,
        notes=tuple(notes),
    )


def _starttls(block: _Block) -> StartTls:
    """The mail gem's STARTTLS choice: ``enable_starttls: true`` always, an explicit
    ``enable_starttls_auto: false`` (and no ``enable_starttls``) never, else when offered."""
    if block.values.get("enable_starttls") is True:
        return "always"
    if block.values.get("enable_starttls_auto") is False and "enable_starttls" not in block.named:
        return "never"
    return "auto"


def _verify_mode(value: object) -> VerifyMode | None:
    """openssl_verify_mode as written: 'none', :none, "NONE" or OpenSSL::SSL::VERIFY_NONE (the
    mail gem upcases a string or symbol and looks up VERIFY_<IT>); likewise peer."""
    if not isinstance(value, str):
        return None
    mode = value.removeprefix(":").removeprefix("VERIFY_").lower()
    if mode == "none":
        return "none"
    if mode == "peer":
        return "peer"
    return None
