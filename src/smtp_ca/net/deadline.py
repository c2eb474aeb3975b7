"""One deadline shared by every step of the check: connect, SMTP, handshakes, AIA and OCSP.

Each step asks for what is left instead of taking its own timeout, so SMTP_CA_CHECK_TIMEOUT
bounds the whole check however many steps a diagnosis takes.
"""

from __future__ import annotations

import time


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` once there are none, so callers cannot wait on zero."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end
