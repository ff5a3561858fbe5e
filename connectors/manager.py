"""ConnectorManager (``coattail connectors run``): connectors + writer in one asyncio event loop.

Exchange connectors put trades, chain connectors OnchainEvents (valued from a price feed that reads the
trades stream), and both their dead letters on one bounded queue (back-pressure reaches the sockets);
a single drain task hands batches to the writer in a worker thread so a blocking flush never stalls
the sockets. SIGTERM: stop reading, drain the queue, flush, exit 0 within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import Any

from coattail.settings import ConfigError, Settings
from connectors.base import Item
from connectors.httpd import StatusServer
from connectors.metrics import Metrics
from connectors.registry import CHAINS, EXCHANGES
from connectors.writer import ProduceError, StreamWriter, build_writers

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


def plan_connectors(
    settings: Settings, symbols_env: str = "", names: list[str] | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """What one ``connectors run`` process streams: exchange -> symbols (``plan_symbols``) and chains.

    ``names`` may mix exchanges and chains (default: the tier's connectors).
    """
    chosen = names or list(settings.active_connectors)
    unknown = [n for n in chosen if n not in EXCHANGES and n not in CHAINS]
    if unknown:
        known = ", ".join(sorted({*EXCHANGES, *CHAINS}))
        raise ConfigError(f"unknown connector {unknown[0]!r}; known: {known}")
    exchanges = [n for n in chosen if n in EXCHANGES]
    chains = [n for n in chosen if n in CHAINS]
    plan = plan_symbols(settings, symbols_env, exchanges) if exchanges or not chains else {}
    return plan, chains


def chain_settings(settings: Settings, chain: str, env: dict[str, str] | None = None) -> Any:
    """A chain's connector settings; on the embedded profile Ethereum reads the anvil ``dev up`` started
    (unless COATTAIL_CONNECTORS__ETHEREUM__RPC_URL names another node)."""
    from coattail.settings.endpoints import local_chain_rpc

    spec = CHAINS[chain]
    entry = spec.settings_of(settings.connectors[chain])
    source = os.environ if env is None else env
    local = local_chain_rpc(settings) if chain == "ethereum" else None
    if local and not source.get("COATTAIL_CONNECTORS__ETHEREUM__RPC_URL"):
        entry = entry.model_copy(update={"rpc_url": local, "ws_url": ""})
    return entry


def parse_symbol_list(text: str) -> list[str]:
    """``SYMBOLS`` env: comma list of ``BTC-USDT`` or native ``btcusdt`` entries, blanks ignored."""
    return [part.strip() for part in text.split(",") if part.strip()]


class ConnectorManager:
    def __init__(
        self,
        settings: Settings,
        plan: dict[str, list[str]],
        *,
        chains: list[str] | None = None,
        writer: StreamWriter | None = None,
        metrics: Metrics | None = None,
        resume: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        chains = chains or []
        self.writer = writer or build_writers(settings, self.metrics, trades=bool(plan), onchain=bool(chains))
        p = settings.producer
        self.connectors: list[Any] = [
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
        self.price_feed = None
        if chains:
            from connectors.chain_resume import resume_point
            from connectors.price_feed import TradePriceFeed

            self.price_feed = TradePriceFeed(settings)
            for chain in chains:
                start = resume_point(settings, chain) if resume else None
                log.info("chain connector", extra={"chain": chain, "resume_from": start})
                self.connectors.append(
                    CHAINS[chain].connector()(
                        chain_settings(settings, chain),
                        settings.reconnect,
                        metrics=self.metrics,
                        book=self.price_feed.book,
                        dedupe_size=p.dedupe_window,
                        resume_from=start,
                    )
                )
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
        if self.price_feed is not None:
            self.price_feed.start()
            if not await asyncio.to_thread(self.price_feed.wait_ready, 60):
                log.warning("prices not loaded after 60 s; on-chain events go unpriced until they are")
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
        if self.price_feed is not None:
            await asyncio.to_thread(self.price_feed.stop)
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
