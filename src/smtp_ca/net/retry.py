"""urllib3 retries that keep to a deadline and say what happened in the build's own words.

urllib3's own ``Retry`` logs ``Retrying (Retry(total=2, connect=2, ...)) after connection broken
by 'NameResolutionError(...)'`` and sleeps on its own schedule, whatever time is left. This one
hands each retry to the caller as a ``RetryNote`` (which attempt failed, why, how long until the
next), waits ``backoff_factor * 2**(n-1)`` seconds before the n-th retry, and gives up instead
of retrying unless, after the wait, the fetch's clock still has ``min_attempt`` seconds for
the retry: retries use what is left of the bound, never less than an attempt's worth.

Imported only by ``net.http.fetch_url``, after ``requests``: it adds nothing to what a download
loads already (``requests`` brings urllib3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from smtp_ca.net.connection import DownloadClock


@dataclass(frozen=True)
class RetryNote:
    """One failed attempt that will be tried again."""

    attempt: int  # the attempt that failed, from 1
    attempts: int  # how many attempts there are in all, the first included
    reason: str  # what failed, safe to print (no URL)
    wait: float  # seconds until the next attempt


def backoff(retry_number: int, factor: float) -> float:
    """The wait before the ``retry_number``-th retry (from 1)."""
    return factor * (1 << (retry_number - 1))


class ReportingRetry(Retry):
    """A ``Retry`` with a deadline and a reporter (see the module's docstring)."""

    def __init__(
        self,
        *args: Any,
        on_retry: Callable[[RetryNote], None] | None,
        describe: Callable[[Exception], str],
        clock: DownloadClock,
        min_attempt: float,
        attempts: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_retry = on_retry
        self.describe = describe
        self.clock = clock
        self.min_attempt = min_attempt
        self.attempts = attempts

    def new(self, **kw: Any) -> ReportingRetry:
        # urllib3 makes a new Retry for every increment; ours must keep its own fields.
        kw.setdefault("on_retry", self.on_retry)
        kw.setdefault("describe", self.describe)
        kw.setdefault("clock", self.clock)
        kw.setdefault("min_attempt", self.min_attempt)
        kw.setdefault("attempts", self.attempts)
        made = super().new(**kw)
        assert isinstance(made, ReportingRetry)
        return made

    def get_backoff_time(self) -> float:
        return backoff(len(self.history), self.backoff_factor) if self.history else 0.0

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> ReportingRetry:
        made = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(made, ReportingRetry)
        wait = made.get_backoff_time()
        if error is not None:
            reason = self.describe(error)
        else:
            reason = f"the server answered HTTP {getattr(response, 'status', '?')}"
        if not self.clock.has(wait + self.min_attempt):
            # No time for another attempt: fail now, as urllib3 does when retries run out.
            raise MaxRetryError(_pool, url, error or ResponseError(reason))
        if self.on_retry is not None:
            self.on_retry(RetryNote(len(made.history), self.attempts, reason, wait))
        return made
