"""Heroku-style build output, with every secret redacted before it is written.

Steps go to stdout as ``-----> step``, details indented seven spaces; warnings and errors go
to stderr with the `` !     `` prefix, which Heroku's build UI highlights.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TextIO

STEP_PREFIX = "-----> "
DETAIL_PREFIX = "       "
ALERT_PREFIX = " !     "
REDACTED = "[REDACTED]"

# user:password@ in any URL, whatever the scheme: requests and urllib put whole URLs in errors.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


class Redactor:
    """Replaces known secret values and URL credentials with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        self._secrets = sorted({*self._secrets, secret} - {""}, key=len, reverse=True)
        self._secrets = [s for s in self._secrets if len(s) >= 3]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", text)


class Log:
    """The build log. Every line passes through the redactor."""

    def __init__(
        self,
        redactor: Redactor | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.redact = redactor or Redactor()
        self._out = out or sys.stdout
        self._err = err or sys.stderr

    def _write(self, stream: TextIO, prefix: str, message: str) -> None:
        for line in self.redact(message).splitlines() or [""]:
            stream.write(f"{prefix}{line}".rstrip() + "\n")
        stream.flush()

    def step(self, message: str) -> None:
        self._write(self._out, STEP_PREFIX, message)

    def info(self, message: str) -> None:
        self._write(self._out, DETAIL_PREFIX, message)

    def warn(self, message: str) -> None:
        self._write(self._err, ALERT_PREFIX, f"Warning: {message}")

    def error(self, message: str) -> None:
        self._write(self._err, ALERT_PREFIX, message)

    def alert(self, message: str) -> None:
        """A continuation line of a warning or error, on stderr with the alert prefix."""
        self._write(self._err, ALERT_PREFIX, message)
