"""Text that came from outside, made fit for the build log: one way for all of it.

SMTP replies, HTTP reason phrases, the names in a certificate a server sends, config values
quoted back, the text of a library's exception: none of it was written by the buildpack, and a
build log is read in terminals and in Heroku's build UI. Remote text is data, not terminal
input, so every piece of it reaches the log through ``shown``:

* control characters (newlines, ESC, BEL, DEL, C1 controls, and other characters Python does
  not call printable) are shown as escapes, ``\\x1b`` for ESC, ``\\n`` for a newline, so a
  server cannot clear the screen, retitle the window or write a line that looks like ours;
* it is cut to a length, with a note of how much was left out, so a server cannot turn one
  reply into a megabyte of log.

Lists of findings are kept short the same way (``at_most``): the first few, then how many
more. ``output.Log`` escapes control characters in every line it writes as a last safety net
(``escape_controls``); that net leaves backslashes alone, so text ``shown`` already escaped is
not escaped twice.

It lives apart from ``output`` (the log and its redaction) and from ``bundle.certificates`` because
both use it, as do the check and the bundle's steps, and it needs nothing from any of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

# How much of one piece of outside text a log line quotes: more than any honest reply, name or
# reason phrase needs, little enough that a line stays readable.
MAX_SHOWN = 300
# The last safety net: no line the log writes is longer than this.
MAX_LINE = 4000
# A list of findings prints at most this many entries, then says how many it left out.
MAX_LISTED = 10

# What the log's safety net escapes: C0 controls but the tab, DEL, and C1 controls. Line breaks
# never get here (the log splits lines first). Unlike ``shown``, nothing else: the buildpack's
# own lines and pip's output may hold any printable text, and a tab does nothing to a terminal.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escape(character: str) -> str:
    return character if character.isprintable() else repr(character)[1:-1]


def escaped(text: str) -> str:
    """``text`` with every character Python does not call printable shown as its escape."""
    return "".join(_escape(character) for character in text)


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` from outside as a log line may quote it: escaped, and cut after ``limit``
    characters of the escaped form with a note of how many characters of ``text`` were left
    out, "… (4,940 more characters)". Work stays in proportion to ``limit``, however long
    ``text`` is."""
    pieces: list[str] = []
    length = 0
    for position, character in enumerate(text):
        piece = _escape(character)
        if length + len(piece) > limit:
            return "".join(pieces) + _left_out(len(text) - position)
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)


def _left_out(count: int) -> str:
    return f"… ({count:,} more {'character' if count == 1 else 'characters'})"


def escape_controls(line: str) -> str:
    """The log's safety net for one line: control characters escaped, the line cut to
    ``MAX_LINE``. Idempotent on what ``shown`` returns, which holds no control character."""
    line = _CONTROLS.sub(lambda match: repr(match.group())[1:-1], line)
    if len(line) > MAX_LINE:
        line = line[:MAX_LINE] + _left_out(len(line) - MAX_LINE)
    return line


def at_most(
    lines: Sequence[str], limit: int = MAX_LISTED, *, last: int = 0, indent: str = ""
) -> list[str]:
    """``lines`` as a report lists them: all when there are at most ``limit``; else the first
    ``limit - last``, a line "… N more" (after ``indent``), and the last ``last``."""
    if len(lines) <= limit:
        return list(lines)
    first = limit - last
    tail = list(lines[len(lines) - last :]) if last else []
    return [*lines[:first], f"{indent}… {len(lines) - limit:,} more", *tail]


def echoed(value: str, limit: int = MAX_SHOWN, render: Callable[[str], str] = escaped) -> str:
    """A config value as a message quotes it back (a path in SMTP_CA_FILE): ``render``-ed
    (escaped; ``repr`` adds the quotes errors use) when it is at most ``limit`` characters
    long, else described by its length alone: a secret pasted into the wrong variable must not
    be printed even in part (redaction finds a secret only whole)."""
    if len(value) > limit:
        return f"a value of {len(value):,} characters"
    return render(value)
