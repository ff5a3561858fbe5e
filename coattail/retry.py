"""One retry helper for every outside dependency: exponential backoff with jitter and a total deadline.

``retry(fn, what=..., deadline_seconds=..., retryable=...)`` calls ``fn`` until it returns, an error
that ``retryable`` rejects escapes unchanged (a bug is not an outage), or the deadline passes; then it
raises :class:`RetryExhaustedError` (or the caller's own error class) with one line: what was tried,
for how long, and the last cause. Each retry logs one line. Clock, sleep and randomness are
parameters, so the behaviour is testable without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
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


@dataclass
class _Attempts:
    """The bookkeeping both :func:`retry` and :func:`retry_async` share: give up, or how long to wait."""

    what: str
    deadline_seconds: float
    max_attempts: int | None
    backoff: Backoff
    describe: Callable[[BaseException], str]
    give_up: Callable[[str], BaseException]
    logger: logging.Logger
    clock: Callable[[], float]
    rng: random.Random | None
    wait_hint: Callable[[BaseException], float | None]
    reraise: bool
    started: float = 0.0
    attempt: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def pause_after(self, exc: BaseException) -> float:
        """Seconds to wait before the next attempt; raises ``give_up(...)`` when none is left."""
        elapsed = self.clock() - self.started
        remaining = self.deadline_seconds - elapsed
        cause = self.describe(exc)
        out_of_attempts = self.max_attempts is not None and self.attempt + 1 >= self.max_attempts
        if (remaining <= 0 or out_of_attempts) and self.reraise:
            raise exc  # the caller wants the last error itself (its type means something to it)
        if remaining <= 0 or out_of_attempts:
            raise self.give_up(
                f"{self.what} still failing after {elapsed:.0f} s ({self.attempt + 1} attempt(s)): {cause}"
            ) from None
        hint = self.wait_hint(exc)  # e.g. a server's Retry-After: honoured, still within the deadline
        pause = min(hint if hint is not None else self.backoff.delay(self.attempt, self.rng), remaining)
        self.attempt += 1
        self.logger.warning(
            "%s failed (%s); retry %d in %.1f s, giving up in %.0f s",
            self.what,
            cause,
            self.attempt,
            pause,
            remaining,
        )
        return pause


def _no_hint(_: BaseException) -> float | None:
    return None


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    deadline_seconds: float,
    retryable: Callable[[BaseException], bool],
    max_attempts: int | None = None,
    backoff: Backoff = Backoff(),  # frozen, so one shared default is safe
    wait_hint: Callable[[BaseException], float | None] = _no_hint,
    reraise: bool = False,
    describe: Callable[[BaseException], str] = one_line,
    give_up: Callable[[str], BaseException] = RetryExhaustedError,
    logger: logging.Logger = log,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """``fn()``, retried on retryable errors until ``deadline_seconds`` after the first attempt (and at
    most ``max_attempts`` attempts when given).

    ``what`` names the dependency and the operation (``"DynamoDB table 'x' at http://…: write"``); it
    starts the log lines and the final error. ``deadline_seconds`` 0 means one attempt, no retry.
    ``wait_hint`` may return the server's own wait (``Retry-After``) for an error, used instead of the
    backoff delay. ``reraise``: when giving up, raise the last error itself instead of ``give_up``.
    """
    attempts = _Attempts(
        what,
        deadline_seconds,
        max_attempts,
        backoff,
        describe,
        give_up,
        logger,
        clock,
        rng,
        wait_hint,
        reraise,
    )
    while True:
        try:
            return fn()
        except Exception as exc:
            if not retryable(exc):
                raise
            sleep(attempts.pause_after(exc))


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    what: str,
    deadline_seconds: float,
    retryable: Callable[[BaseException], bool],
    max_attempts: int | None = None,
    backoff: Backoff = Backoff(),
    wait_hint: Callable[[BaseException], float | None] = _no_hint,
    reraise: bool = False,
    describe: Callable[[BaseException], str] = one_line,
    give_up: Callable[[str], BaseException] = RetryExhaustedError,
    logger: logging.Logger = log,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """:func:`retry` for coroutines (connectors): the same policy, waiting with ``asyncio.sleep``."""
    attempts = _Attempts(
        what,
        deadline_seconds,
        max_attempts,
        backoff,
        describe,
        give_up,
        logger,
        clock,
        rng,
        wait_hint,
        reraise,
    )
    while True:
        try:
            return await fn()
        except Exception as exc:
            if not retryable(exc):
                raise
            await sleep(attempts.pause_after(exc))
