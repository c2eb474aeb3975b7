"""The one exception type a user sees: a failure they can act on."""

from __future__ import annotations


class BuildError(Exception):
    """A failure with a message that names what is wrong and how to fix it.

    ``message`` says what happened and names the variable or file; ``hint`` says what to do.
    The CLI prints both with Heroku's error prefix and exits non-zero, without a traceback.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
