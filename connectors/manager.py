"""ConnectorManager (``coattail connectors run``): connectors + writer in one asyncio event loop.

Connectors put trades and dead letters on one bounded queue (back-pressure reaches the sockets);
a single drain task hands batches to the writer in a worker thread so a blocking flush never stalls
the sockets. SIGTERM: stop reading, drain the queue, flush, exit 0 within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from coattail.settings import ConfigError, Settings
from connectors.base import BaseConnector, Item
from connectors.httpd import StatusServer
from connectors.metrics import Metrics
from connectors.registry import EXCHANGES
from connectors.writer import ProduceError, StreamWriter, build_writer

log = logging.getLogger("connectors")
BATCH = 1000


def plan_symbols(
    settings: Settings, symbols_env: str = "", exchanges: list[str] | None = None
) -> dict[str, list[str]]:
    """Exchange -> symbols this pod streams: configured instruments, narrowed by ``SYMBOLS``.

    ``SYMBOLS`` entries may be ``BTC-USDT``, exchange-native ``btcusdt`` or ``binance:BTC-USDT``.
    """
    names = exchanges or [n for n in settings.active_connectors if n in EXCHANGES]
    for name in names:
        if name not in EXCHANGES:
            raise ConfigError(f"unknown exchange {name!r}; known: {', '.join(sorted(EXCHANGES))}")
    wanted = parse_symbol_list(symbols_env)
    plan: dict[str, list[str]] = {}
    matched: set[str] = set()
    for name in names:
        chosen = []
        for symbol in settings.instruments.get(name, []):
            forms = {symbol, EXCHANGES[name].native(symbol), f"{name}:{symbol}"}
            hits = [w for w in wanted if w in forms or w.upper() in forms or w.lower() in forms]
            if not wanted or hits:
                chosen.append(symbol)
                matched.update(hits)
        if chosen:
            plan[name] = chosen
    unknown = [w for w in wanted if w not in matched]
    if unknown:
        configured = ", ".join(f"{n}:{s}" for n in names for s in settings.instruments.get(n, []))
        raise ConfigError(f"SYMBOLS names {', '.join(unknown)}, not configured instruments ({configured})")
    if not plan:
        raise ConfigError("no instruments to stream: check `instruments` in config/features.yaml and SYMBOLS")
    return plan


def parse_symbol_list(text: str) -> list[str]:
    """``SYMBOLS`` env: comma list of ``BTC-USDT`` or native ``btcusdt`` entries, blanks ignored."""
    return [part.strip() for part in text.split(",") if part.strip()]


class ConnectorManager:
    def __init__(
        self,
        settings: Settings,
        plan: dict[str, list[str]],
        *,
        writer: StreamWriter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.writer = writer or build_writer(settings, self.metrics)
        p = settings.producer
        self.connectors: list[BaseConnector] = [
            EXCHANGES[name].connector(
                EXCHANGES[name].settings_of(settings.connectors[name]),
                settings.reconnect,
                symbols,
                metrics=self.metrics,
                dedupe_size=p.dedupe_window,
                gap_fill_max_trades=p.gap_fill_max_trades,
            )
            for name, symbols in plan.items()
        ]
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=p.queue_size)
        self._stop = asyncio.Event()
        self._closing = False
        self.failed: str | None = None
        self.status = StatusServer(p.status_host, p.status_port, self.metrics.registry, self.health)

    def health(self) -> dict[str, bool]:
        checks = {c.name: c.health_check() for c in self.connectors}
        checks["writer"] = self.failed is None
        return checks

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        """Stream until SIGTERM/SIGINT (or ``stop``); 0 when everything buffered was delivered."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        port = await self.status.start()
        log.info("status server", extra={"port": port, "paths": ["/healthz", "/metrics"]})
        streams = [
            asyncio.create_task(c.stream(self.queue), name=f"stream-{c.name}") for c in self.connectors
        ]
        drain = asyncio.create_task(self._drain(), name="writer")
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait([stop_wait, drain, *streams], return_when=asyncio.FIRST_COMPLETED)
        for task in streams:
            if task.done() and not self._stop.is_set():
                # A connector loop only ends on shutdown; anything else is a bug: fail loudly.
                exc = task.exception()
                self.failed = f"{task.get_name()} ended unexpectedly: {exc!r}"
                log.error("connector ended", extra={"task": task.get_name(), "error": repr(exc)})
        stop_wait.cancel()
        return await self._shutdown(streams, drain)

    async def _shutdown(self, streams: list[asyncio.Task[None]], drain: asyncio.Task[None]) -> int:
        grace = self.settings.producer.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        log.info("shutting down", extra={"grace_s": grace, "queued": self.queue.qsize()})
        for connector in self.connectors:
            connector.shutdown()
        _, pending = await asyncio.wait(streams, timeout=grace * 0.3)
        for task in pending:
            task.cancel()
        self._closing = True
        if not drain.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(drain), max(0.1, deadline - time.monotonic() - grace * 0.2)
                )
            drain.cancel()  # out of time: what is still queued is reported as unsent below
        left = self.queue.qsize()
        try:
            remaining = await asyncio.to_thread(self.writer.flush, max(0.5, deadline - time.monotonic()))
        except ProduceError as exc:
            self.failed, remaining = str(exc), -1
        await asyncio.to_thread(self.writer.close)
        await self.status.stop()
        ok = self.failed is None and remaining == 0 and left == 0
        log.info("stopped", extra={"undelivered": remaining, "unsent_queue": left, "error": self.failed})
        return 0 if ok else 1

    async def _drain(self) -> None:
        queue, writer = self.queue, self.writer
        last_tick = time.monotonic()
        while True:
            try:
                batch = [await asyncio.wait_for(queue.get(), 0.2)]
            except TimeoutError:
                if self._closing and queue.empty():
                    return
                batch = []
            while batch and len(batch) < BATCH:
                try:
                    batch.append(queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                if batch:
                    await asyncio.to_thread(writer.write_many, batch)
                if not batch or time.monotonic() - last_tick > 0.5:
                    # Serve delivery reports / send lingering batches even under a steady trickle.
                    await asyncio.to_thread(writer.tick)
                    last_tick = time.monotonic()
            except ProduceError as exc:
                self.failed = str(exc)
                log.error("writer failed, stopping", extra={"error": str(exc)})
                self._stop.set()
                return
