"""Live alerts for /alerts/stream: one shared poll loop for all subscribers, fan-out via queues.

Alerts are ordered by ``detected_at`` (evidence time), but they are written later (window end plus
watermark), so "newer than the last one seen" would miss late writes. Each poll therefore re-reads
the last ``lookback`` seconds and sends what it has not sent before (a set of ids, pruned as they
age out of the lookback). The first poll only records what exists: the stream carries *new* alerts.

An SSE event's id is ``<detected_at>|<alert_id>``. Resuming with Last-Event-ID replays, from the
store, the alerts that sort after that position (same filters), then continues live. An alert that
is written while the client was away *and* whose detected_at is older than the resume position is
not replayed; clients that need every alert page through GET /alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.telemetry import Telemetry
from coattail.hotstore import AlertReader, StoreUnavailableError, StreamSpec, time_key

log = logging.getLogger(__name__)
MAX_ITEMS_PER_POLL = 5000
QUEUE_SIZE = 1000
READY_TIMEOUT = 20.0
UNSTARTED_GRACE = 30.0  # seconds a subscription may exist before its response starts reading it


def position(alert: dict[str, Any]) -> tuple[str, str]:
    """Sort position of an alert as given out by the API: (fixed-width time key, alert id).

    The API's ``detected_at`` is the store's sort key text already (``stored_time`` re-formats old items).
    """
    return alert["detected_at"], alert["alert_id"]


def event_id(alert: dict[str, Any]) -> str:
    return f"{alert['detected_at']}|{alert['alert_id']}"


def parse_event_id(value: str) -> tuple[str, str]:
    """Position from a Last-Event-ID; ValueError with a reason when it is not one of ours."""
    stamp, sep, alert_id = value.partition("|")
    if not sep or not alert_id or len(alert_id) > 64:
        raise ValueError("expected '<detected_at>|<alert_id>' as sent in an event's id")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise ValueError(f"{stamp[:60]!r} is not an ISO-8601 timestamp") from None
    if when.tzinfo is None:
        raise ValueError("the timestamp has no UTC offset")
    try:
        key = time_key(when)  # converting to UTC can leave datetime's range (year 9999 at -05:00)
    except (OverflowError, ValueError):
        raise ValueError(f"{stamp[:60]!r} is outside the range of UTC timestamps") from None
    return key, alert_id


@dataclass(frozen=True)
class AlertFilter:
    alert_type: str | None = None
    symbol: str | None = None

    def matches(self, alert: dict[str, Any]) -> bool:
        return (self.alert_type is None or alert["alert_type"] == self.alert_type) and (
            self.symbol is None or alert["symbol"] == self.symbol
        )


@dataclass(eq=False)
class Subscription:
    filter: AlertFilter
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    created: float = field(default_factory=time.monotonic)
    started: bool = False  # set when the response starts reading; see Broadcaster._reap


class Broadcaster:
    def __init__(
        self,
        store: AlertReader,
        streams: list[StreamSpec],
        *,
        poll_seconds: float,
        lookback_seconds: float,
        telemetry: Telemetry,
    ) -> None:
        self.store = store
        self.streams = streams
        self.poll_seconds = poll_seconds
        self.lookback = timedelta(seconds=lookback_seconds)
        self.telemetry = telemetry
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._baseline_error: str | None = None
        self._seen: dict[str, str] = {}  # alert_id -> time key, for the lookback window

    async def subscribe(self, alert_filter: AlertFilter) -> Subscription:
        """Register a subscriber; returns once the baseline is known (else StoreUnavailableError)."""
        sub = Subscription(alert_filter)
        self._subs.add(sub)
        self.telemetry.subscribers.set(len(self._subs))
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._baseline_error = None
            self._seen.clear()
            self._task = asyncio.create_task(self._run(), name="alert-stream-poller")
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT)
        except TimeoutError:
            self.unsubscribe(sub)
            raise StoreUnavailableError("the live stream could not read the store in time") from None
        if self._baseline_error:
            self.unsubscribe(sub)
            raise StoreUnavailableError(self._baseline_error)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        self.telemetry.subscribers.set(len(self._subs))

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

    async def _run(self) -> None:
        # Runs while anyone listens; the next subscriber starts a fresh loop (and a fresh baseline).
        while self._subs:
            started = time.perf_counter()
            try:
                fresh = await run_in_threadpool(self._poll)
            except Exception as exc:
                log.warning("live stream poll failed: %s", exc)
                if not self._ready.is_set():
                    # No baseline: waiting subscribers answer 503 now; the next one starts afresh.
                    self._baseline_error = (
                        str(exc) if isinstance(exc, StoreUnavailableError) else "poll failed"
                    )
                    self._ready.set()
                    return
            else:
                if self._ready.is_set():
                    self._publish(fresh)
                self._ready.set()
            self.telemetry.polls.observe(time.perf_counter() - started)
            self._reap()
            await asyncio.sleep(self.poll_seconds)

    def _reap(self) -> None:
        # A response that never started reading (client gone before the first byte, a HEAD request)
        # never runs its cleanup, so its subscription is dropped here.
        cutoff = time.monotonic() - UNSTARTED_GRACE
        for sub in [s for s in self._subs if not s.started and s.created < cutoff]:
            self.unsubscribe(sub)

    def _poll(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        since = now - self.lookback
        fresh = []
        for alert in self.store.walk(self.streams, since, now, MAX_ITEMS_PER_POLL):
            if alert["alert_id"] not in self._seen:
                key = position(alert)[0]
                self._seen[alert["alert_id"]] = key
                fresh.append(alert)
        floor = time_key(since)
        for alert_id in [a for a, key in self._seen.items() if key < floor]:
            del self._seen[alert_id]
        fresh.sort(key=position)
        return fresh

    def _publish(self, alerts: list[dict[str, Any]]) -> None:
        for sub in list(self._subs):
            for alert in alerts:
                if sub.filter.matches(alert):
                    try:
                        sub.queue.put_nowait(alert)
                    except asyncio.QueueFull:
                        # A reader this far behind is dropped; it reconnects with Last-Event-ID.
                        self.unsubscribe(sub)
                        while not sub.queue.empty():
                            sub.queue.get_nowait()
                        sub.queue.put_nowait(None)
                        break
