"""coattail.retry: backoff growth and jitter, the deadline, what is retried, one log line per retry."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from coattail.retry import Backoff, RetryExhaustedError, one_line, retry

pytestmark = pytest.mark.unit


class FakeTime:
    """A clock that only moves when slept on, so deadlines are exact and the test never waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: int, exc: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc
        return "ok"

    return calls, fn


def test_delays_grow_exponentially_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=3, jitter=0)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert backoff.delay(10_000) == 3.0  # no overflow far out


def test_jitter_stays_within_its_fraction_and_varies() -> None:
    backoff = Backoff(initial=1, factor=2, maximum=8, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


@pytest.mark.parametrize("bad", [{"initial": 0}, {"factor": 0.5}, {"maximum": 0.01}, {"jitter": 1.5}])
def test_invalid_backoff_is_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**bad)


def test_retries_until_success_and_logs_one_line_per_retry(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    calls, fn = flaky(3, ConnectionRefusedError("refused\nsecond line"))
    with caplog.at_level(logging.WARNING, logger="coattail.retry"):
        result = retry(
            fn,
            what="store X: write",
            deadline_seconds=60,
            retryable=lambda e: isinstance(e, OSError),
            backoff=Backoff(initial=1, jitter=0),
            sleep=t.sleep,
            clock=t.clock,
        )
    assert result == "ok"
    assert len(calls) == 4
    assert t.sleeps == [1, 2, 4]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert all("\n" not in line for line in lines)
    assert (
        lines[0]
        == "store X: write failed (ConnectionRefusedError: refused); retry 1 in 1.0 s, giving up in 60 s"
    )


def test_gives_up_at_the_deadline_with_one_line() -> None:
    t = FakeTime()
    calls, fn = flaky(10_000, TimeoutError("timed out"))
    with pytest.raises(RetryExhaustedError) as caught:
        retry(
            fn,
            what="Kafka broker at h:9092: connect",
            deadline_seconds=10,
            retryable=lambda e: isinstance(e, OSError),
            backoff=Backoff(initial=1, maximum=4, jitter=0),
            sleep=t.sleep,
            clock=t.clock,
        )
    assert sum(t.sleeps) == pytest.approx(10)  # the last sleep is cut to the deadline
    assert t.sleeps == [1, 2, 4, 3]
    assert len(calls) == 5  # the last attempt happens at the deadline
    assert str(caught.value) == (
        "Kafka broker at h:9092: connect still failing after 10 s (5 attempt(s)): TimeoutError: timed out"
    )
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__  # no chained traceback behind the one line


def test_caller_chooses_the_error_class() -> None:
    class StoreDownError(Exception):
        pass

    t = FakeTime()
    _, fn = flaky(10_000, OSError("down"))
    with pytest.raises(StoreDownError, match=r"^S: write still failing"):
        retry(
            fn,
            what="S: write",
            deadline_seconds=1,
            retryable=lambda e: True,
            give_up=StoreDownError,
            sleep=t.sleep,
            clock=t.clock,
        )


def test_not_retryable_errors_escape_at_once_unchanged() -> None:
    t = FakeTime()
    calls, fn = flaky(1, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        retry(
            fn,
            what="x",
            deadline_seconds=60,
            retryable=lambda e: isinstance(e, OSError),
            sleep=t.sleep,
            clock=t.clock,
        )
    assert len(calls) == 1
    assert t.sleeps == []


def test_zero_deadline_means_one_attempt() -> None:
    t = FakeTime()
    calls, fn = flaky(1, OSError("down"))
    with pytest.raises(RetryExhaustedError, match=r"after 0 s \(1 attempt\(s\)\)"):
        retry(fn, what="x", deadline_seconds=0, retryable=lambda e: True, sleep=t.sleep, clock=t.clock)
    assert len(calls) == 1


def test_one_line_cause() -> None:
    assert one_line(OSError("first\nsecond")) == "OSError: first"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(RuntimeError("x" * 1000))) < 220


def test_max_attempts_gives_up_before_the_deadline() -> None:
    t = FakeTime()
    calls, fn = flaky(10, ConnectionError("refused"))
    with pytest.raises(RetryExhaustedError, match=r"\(3 attempt\(s\)\): ConnectionError: refused"):
        retry(
            fn, what="svc", deadline_seconds=3600, max_attempts=3, retryable=lambda e: True,
            backoff=Backoff(jitter=0), sleep=t.sleep, clock=t.clock,
        )  # fmt: skip
    assert len(calls) == 3
    assert len(t.sleeps) == 2


def test_a_wait_hint_replaces_the_backoff_delay_but_not_the_deadline() -> None:
    t = FakeTime()
    _, fn = flaky(2, TimeoutError("429"))
    result = retry(
        fn, what="rest", deadline_seconds=10, retryable=lambda e: True, wait_hint=lambda e: 7.0,
        backoff=Backoff(jitter=0), sleep=t.sleep, clock=t.clock,
    )  # fmt: skip
    assert result == "ok"
    assert t.sleeps == [7.0, 3.0]  # the second hint is cut to what the deadline leaves


def test_retry_async_has_the_same_policy() -> None:
    import asyncio

    t = FakeTime()
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    async def sleep(seconds: float) -> None:
        t.sleep(seconds)

    from coattail.retry import retry_async

    result = asyncio.run(
        retry_async(
            fn, what="ws", deadline_seconds=60, retryable=lambda e: isinstance(e, ConnectionError),
            backoff=Backoff(initial=1, jitter=0), sleep=sleep, clock=t.clock,
        )
    )  # fmt: skip
    assert (result, len(calls), t.sleeps) == ("ok", 3, [1.0, 2.0])
