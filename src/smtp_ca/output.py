"""Heroku-style build output, with every secret redacted before it is written.

Steps go to stdout as ``-----> step``, details indented seven spaces; warnings and errors go
to stderr with the `` !     `` prefix, which Heroku's build UI highlights.

A line longer than ``WIDTH`` columns, prefix included, is wrapped at spaces, as Heroku's own
buildpacks wrap their messages (``wrap``): each continuation line has the same prefix (and, under
an indented or numbered list item, the item's indentation), no word, URL or path is broken (one
longer than the width stands whole on a line of its own), and the spaces where a line was broken
stay at its end. A line the log writes otherwise never ends in a space, so that trailing space
marks a soft break, as in email's format=flowed (RFC 3676): whoever needs the logical lines back
(the tests) joins each line that ends in a space with the next one, minus its prefix and
indentation. Redaction comes first, on the whole message: a secret is gone before any line is
broken, so no break can split one into halves the redactor would not recognise.

Everything the buildpack shows goes through ``Log``, and ``Log`` redacts every line: our own
messages, the text of exceptions raised by libraries, the output of pip and apt-get, a traceback
shown with SMTP_CA_DEBUG=1, and (through ``LogHandler``) what libraries write with ``logging`` or
``warnings``, such as urllib3's "Retrying ... /path?token=..." lines.

The redaction rule, for each secret value (SMTP_PASSWORD, SMTP_LOGIN, their BULK_ twins, the
mail add-ons' logins, passwords and keys, the password or token of a URL):

* a value of 8 characters or more is replaced wherever it occurs, even inside a longer word: at
  that length an accidental match in ordinary text does not happen, and libraries glue values
  to other text (``\\x00password`` in the repr of an SMTP AUTH string);
* a shorter value is replaced where it stands as a word of its own, not glued to a letter, digit
  or underscore. Replacing it inside other words would hit ordinary text (a login ``smtp`` would
  turn ``smtp_ca.rb`` into ``[REDACTED]_ca.rb``), and a secret that short protects little. A
  short value with no letter, digit or underscore at all (``--``) is not redacted: it cannot be
  told apart from punctuation;
* each value is also looked for in the forms Python and libraries print it in: repr() and JSON
  escapes, percent-encoding;
* ``scheme://user:password@`` in any URL is replaced whatever the scheme.

The rule looks at the text, not at who wrote it: the buildpack's own wording gets no exemption,
because telling our text from a value pasted into it is exactly where a leak would hide. So a
short login that is also an ordinary word (SendGrid's ``apikey``) is replaced where it stands
alone, even in our own sentences; our messages therefore never spell out example logins.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from smtp_ca.untrusted import escape_controls

STEP_PREFIX = "-----> "
DETAIL_PREFIX = "       "
ALERT_PREFIX = " !     "
REDACTED = "[REDACTED]"
# Values this long are redacted even inside longer words; shorter ones only as words of their own.
MIN_REDACTED_ANYWHERE = 8
# Shorter URL user names or query values are not treated as secrets: redacting "raw" or "true"
# everywhere in the log would hide more than it protects.
MIN_SECRET_QUERY_VALUE = 8

# Lines are wrapped to this many columns, prefix included.
WIDTH = 80

# user:password@ in any URL, whatever the scheme: requests and urllib put whole URLs in errors.
# The scheme's length is bounded: an unbounded ``[...]*`` before ``://`` would make the search
# quadratic in a long run of letters (every start rescans to its end), and a megabyte line from
# a server must not stall the build. A longer scheme still matches by its last characters, so
# the credentials after it are redacted all the same.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,63}://)[^/@\s]+@")
_WORD_CHARACTER = re.compile(r"\w")


def printed_forms(secret: str) -> list[str]:
    """``secret`` as written, and as Python and libraries print it: repr() and JSON escapes
    (a quote, a backslash, a control character), percent-encoding (in URLs)."""
    forms = [
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    ]
    return [form for form in dict.fromkeys(forms) if form]


def _pattern(form: str) -> str | None:
    """The regular expression that finds ``form`` under the rule above, or None."""
    escaped = re.escape(form)
    if len(form) >= MIN_REDACTED_ANYWHERE:
        return escaped
    if not _WORD_CHARACTER.search(form):
        return None
    before = r"(?<!\w)" if _WORD_CHARACTER.match(form[0]) else ""
    after = r"(?!\w)" if _WORD_CHARACTER.match(form[-1]) else ""
    return f"{before}{escaped}{after}"


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: its password (or a lone user name, how
    some services take a token: ``https://TOKEN@host/``) and query values of at least 8
    characters, as written and percent-decoded. Empty for a URL that cannot be parsed."""
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return []
    candidates = [password or ""]
    if password is None:
        candidates.append(username or "")
    candidates.extend(value for _, value in parse_qsl(parts.query, keep_blank_values=False))
    secrets: list[str] = []
    for secret in candidates:
        if len(secret) >= MIN_SECRET_QUERY_VALUE or (secret and secret == password):
            secrets.extend(form for form in dict.fromkeys((secret, unquote(secret))) if form)
    return secrets


class Redactor:
    """Replaces known secret values and URL credentials with ``[REDACTED]`` (rule above)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._patterns: list[re.Pattern[str]] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if not secret or secret in self._secrets:
            return
        self._secrets.add(secret)
        forms = sorted({form for value in self._secrets for form in printed_forms(value)})
        # A lookahead finds every occurrence, overlapping ones included: two secrets that
        # overlap in the text are both removed whole, not one of them and half the other.
        self._patterns = [
            re.compile(f"(?=({pattern}))")
            for form in forms
            if (pattern := _pattern(form)) is not None
        ]

    def add_url_secrets(self, url: str) -> None:
        """Learns the secrets of ``url`` (``url_secrets``), which library errors may quote."""
        for secret in url_secrets(url):
            self.add(secret)

    def __call__(self, text: str) -> str:
        spans = sorted(
            (match.start(1), match.end(1))
            for pattern in self._patterns
            for match in pattern.finditer(text)
        )
        if spans:
            pieces: list[str] = []
            done = 0
            start, end = spans[0]
            for next_start, next_end in spans[1:]:
                if next_start <= end:
                    end = max(end, next_end)
                    continue
                pieces += [text[done:start], REDACTED]
                done, (start, end) = end, (next_start, next_end)
            pieces += [text[done:start], REDACTED, text[end:]]
            text = "".join(pieces)
        return _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", text)


# What a continuation line repeats under the prefix: the line's own indentation and, for a list
# item ("  1. ", "- "), its marker's width, so the item's text stays aligned.
_HANGING_INDENT = re.compile(r" *(?:(?:\d{1,3}[.)]|[-*•]) +(?=\S))?")
# A word and the spaces after it: lines are broken only in a run of spaces, never inside double
# quotes, and never in a Heroku CLI command with its first argument, so what the user copies
# (heroku config:set SMTP_CA_CERTS="$(cat ca.pem)") stays on one line. A quote with no closing
# one is a character like any other.
WORD = re.compile(r'(?:heroku [^ ]+ )?(?:[^ "]|"[^"]*"|")+ *')


def wrap(prefix: str, line: str, width: int = WIDTH, continued: str | None = None) -> list[str]:
    """``prefix`` + ``line`` as the physical lines the log writes: broken at spaces into lines of
    at most ``width`` columns, the spaces of each break kept at the end of the line before it
    (the soft-break mark, see the module's docstring); every continuation line starts with
    ``continued`` (by default ``prefix``: a step's title goes on under the detail indent, as
    Heroku's do) and ``line``'s hanging indent. A word longer than what a line holds stands on a
    line of its own, whole. A line that fits, and a line with no prefix (``Log.verbatim``), is
    returned as it is. ``line`` must not end in a space (``Log`` strips lines)."""
    if not prefix or len(prefix) + len(line) <= width:
        return [prefix + line]
    indent = len(line) - len(line.lstrip(" "))
    marker = _HANGING_INDENT.match(line)
    hanging = (prefix if continued is None else continued) + " " * (
        marker.end() if marker else indent
    )
    lines: list[str] = []
    current = prefix + line[:indent]
    for match in WORD.finditer(line, indent):
        word = match.group()
        # The line must hold the word and the spaces after it, which stay at its end if the
        # line breaks there (none after the last word: ``line`` ends in no space). The first
        # word goes on the first line, however long.
        if match.start() > indent and len(current) + len(word) > width:
            lines.append(current)
            current = hanging
        current += word
    lines.append(current)
    return lines


class Log:
    """The build log. Every line passes through the redactor, then through the safety net
    for text from outside (``untrusted.escape_controls``)."""

    def __init__(
        self,
        redactor: Redactor | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.redact = redactor or Redactor()
        self._out = out or sys.stdout
        self._err = err or sys.stderr

    def _write(
        self, stream: TextIO, prefix: str, message: str, continued: str | None = None
    ) -> None:
        # Text from outside is escaped and cut where it is quoted (``untrusted.shown``); the
        # safety net catches what a message forgot: no control character reaches the terminal.
        # Redacted first, whole: then cut into lines, escaped, and wrapped (``wrap``).
        for line in self.redact(message).splitlines() or [""]:
            for physical in wrap(prefix, escape_controls(line).rstrip(), continued=continued):
                stream.write(physical.rstrip() if physical == prefix else physical)
                stream.write("\n")
        stream.flush()

    def step(self, message: str) -> None:
        self._write(self._out, STEP_PREFIX, message, continued=DETAIL_PREFIX)

    def info(self, message: str) -> None:
        self._write(self._out, DETAIL_PREFIX, message)

    def warn(self, message: str, *more: str) -> None:
        """A warning, on stderr with the alert prefix; ``more`` are its further lines (the
        details, the fix), each on lines of its own under it."""
        self._write(self._err, ALERT_PREFIX, f"Warning: {message}")
        for line in more:
            self._write(self._err, ALERT_PREFIX, line)

    def error(self, message: str, *more: str) -> None:
        """An error, on stderr with the alert prefix; ``more`` as for ``warn``."""
        for line in (message, *more):
            self._write(self._err, ALERT_PREFIX, line)

    def verbatim(self, text: str) -> None:
        """Text meant to be copied as is (a PEM block), on stdout with no prefix."""
        self._write(self._out, "", text)


class LogHandler(logging.Handler):
    """Sends what libraries log (and, with ``logging.captureWarnings``, Python warnings) through
    ``Log`` as detail lines, so they are redacted like everything else: Python's fallback
    handler would print them to stderr as they are."""

    def __init__(self, log: Log, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a library's bad format string must not end the build
            text = str(record.msg)
        self._log.info(f"{record.name}: {text}")
