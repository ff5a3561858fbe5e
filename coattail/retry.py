"""One retry helper for every outside dependency: exponential backoff with jitter and a total deadline.

``retry(fn, what=..., deadline_seconds=..., retryable=...)`` calls ``fn`` until it returns, an error
that ``retryable`` rejects escapes unchanged (a bug is not an outage), or the deadline passes; then it
raises :class:`RetryExhaustedError` (or the caller's own error class) with one line: what was tried,
for how long, and the last cause. Each retry logs one line. Clock, sleep and randomness are
parameters, so the behaviour is testable without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from coattail.errors import CoattailError

T = TypeVar("T")
log = logging.getLogger("coattail.retry")


class RetryExhaustedError(CoattailError):
    """A dependency stayed unavailable for the whole deadline; the message is one line."""


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (0-based): ``initial * factor**n`` capped at ``maximum``, minus jitter.

    ``jitter`` is the fraction of each delay that is random (0: fixed delays, 1: "full jitter"), so
    many clients that failed together do not retry in lockstep.
    """

    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 5.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.maximum < self.initial or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return ceiling * (1 - self.jitter * (rng or random).random())


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, short enough for a log line or an error."""
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    deadline_seconds: float,
    retryable: Callable[[BaseException], bool],
    backoff: Backoff = Backoff(),  # frozen, so one shared default is safe
    describe: Callable[[BaseException], str] = one_line,
    give_up: Callable[[str], BaseException] = RetryExhaustedError,
    logger: logging.Logger = log,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """``fn()``, retried on retryable errors until ``deadline_seconds`` after the first attempt.

    ``what`` names the dependency and the operation (``"DynamoDB table 'x' at http://…: write"``); it
    starts the log lines and the final error. ``deadline_seconds`` 0 means one attempt, no retry.
    """
    started = clock()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not retryable(exc):
                raise
            elapsed = clock() - started
            remaining = deadline_seconds - elapsed
            cause = describe(exc)
            if remaining <= 0:
                raise give_up(
                    f"{what} still failing after {elapsed:.0f} s ({attempt + 1} attempt(s)): {cause}"
                ) from None
            pause = min(backoff.delay(attempt, rng), remaining)
            attempt += 1
            logger.warning(
                "%s failed (%s); retry %d in %.1f s, giving up in %.0f s",
                what,
                cause,
                attempt,
                pause,
                remaining,
            )
            sleep(pause)
