"""The build log's logical lines back from its wrapped form: the inverse of ``output.wrap``.

The log wraps a long line at spaces and keeps the spaces of each break at the end of the line
before it; a line the log writes otherwise never ends in a space (see smtp_ca.output). So the
rule is exact: a line that ends in a space continues on the next one, whose prefix (``-----> ``,
`` !     `` or the detail indent) and indentation are dropped. Nothing else is joined, whatever
the widths::

    unwrap(" !     a long \\n !     message\\n !     next\\n")
    == " !     a long message\\n !     next\\n"

The build results of the test support (support.heroku's ``BuildResult`` and the others) give
their ``stdout``, ``stderr`` and ``output`` unwrapped, so assertions name whole messages as the
buildpack writes them; ``raw_stdout``, ``raw_stderr`` and ``raw_output`` are what the build
printed, wrapped, for the tests of the wrapping itself.
"""

from __future__ import annotations

import io
import re
import subprocess

from smtp_ca.output import WIDTH, WORD

# What a continuation line starts with before its text: a prefix, then its hanging indent.
# The alert prefix is " !" and spaces, the detail prefix only spaces.
_CONTINUATION_HEAD = re.compile(r"(?:-----> | !(?= ))? *")


def unwrap(text: str) -> str:
    """``text`` (a build log, or part of one) with each wrapped line joined back into one."""
    if " \n" not in text:
        return text
    joined: list[str] = []
    continued = False
    for line in text.split("\n"):
        if continued:
            head = _CONTINUATION_HEAD.match(line)
            joined[-1] += line[head.end() if head else 0 :]
        else:
            joined.append(line)
        continued = line.endswith(" ")
    return "\n".join(joined)


class LoggedProcess(subprocess.CompletedProcess[str]):
    """A finished build (``subprocess.run`` of bin/compile) whose ``stdout`` and ``stderr``
    are unwrapped; ``raw_stdout`` and ``raw_stderr`` as printed."""

    def __init__(self, completed: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            completed.args,
            completed.returncode,
            unwrap(completed.stdout or ""),
            unwrap(completed.stderr or ""),
        )
        self.raw_stdout: str = completed.stdout or ""
        self.raw_stderr: str = completed.stderr or ""


class LogBuffer(io.StringIO):
    """A stream for ``Log(out=..., err=...)`` in a test: ``getvalue()`` gives what was written
    with the log's wrapped lines joined back, ``raw_value()`` what was written."""

    def getvalue(self) -> str:
        return unwrap(super().getvalue())

    def raw_value(self) -> str:
        return super().getvalue()


def too_wide(text: str, width: int = WIDTH) -> list[str]:
    """The lines of ``text`` (as printed) wider than ``width`` that the log could have broken
    at a space: wider lines are allowed only for a single word (a URL, a path) that no line
    holds."""
    wide = []
    for line in text.splitlines():
        head = _CONTINUATION_HEAD.match(line)
        # What the log never breaks (a quoted argument, a heroku command) counts as one word.
        words = WORD.findall(line[head.end() if head else 0 :])
        if len(line) > width and len(words) > 1:
            wide.append(line)
    return wide
