"""The alert service: ``create_app(settings)`` builds the FastAPI app (routers, middleware, lifespan).

The store is created once per process in the lifespan and reached through dependencies, like
FastAPI's full-stack template; tests pass their own settings (endpoint, table) instead of patching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import api
from api import cursor_key, errors
from api.auth import load_api_keys, require_api_key
from api.modules import module_views
from api.routers import alerts, analytics, dashboard, health, meta, metrics, stream, wallets
from api.routers.dashboard import STATIC_DIR
from api.routers.health import may_create_table
from api.sse import Broadcaster
from api.telemetry import MetricsMiddleware, Telemetry
from coattail.hotstore import AlertReader, DynamoAlertStore, StoreUnavailableError, make_client, streams_for
from coattail.hotstore.analytics import AnalyticsStore, DynamoAnalyticsStore, MemoryAnalyticsStore
from coattail.hotstore.wallets import DynamoWalletStore, MemoryWalletStore, WalletStore
from coattail.hotstore.windows import DynamoWindowStore, MemoryWindowStore, WindowStore
from coattail.settings import Settings, load_settings
from coattail.settings.endpoints import dynamodb_endpoint

log = logging.getLogger(__name__)


def build_store(settings: Settings) -> DynamoAlertStore:
    """The process's store; ConfigError (one line) when no DynamoDB endpoint can be resolved."""
    client = make_client(dynamodb_endpoint(settings), settings.hot_store.region)
    return DynamoAlertStore(client, settings.hot_store.table)


def build_windows(store: AlertReader) -> WindowStore:
    """The recent-windows store beside the alert store (same table on DynamoDB)."""
    if isinstance(store, DynamoAlertStore):
        return DynamoWindowStore(store)
    return MemoryWindowStore()


def build_wallets(store: AlertReader) -> WalletStore:
    """The wallet store (leaderboards, scores, labels) beside the alert store (same table on DynamoDB)."""
    if isinstance(store, DynamoAlertStore):
        return DynamoWalletStore(store)
    return MemoryWalletStore()


def build_analytics(store: AlertReader) -> AnalyticsStore:
    """The analytics store (latest back-test, predictive scores) beside the alert store (same table)."""
    if isinstance(store, DynamoAlertStore):
        return DynamoAnalyticsStore(store)
    return MemoryAnalyticsStore()


def create_app(
    settings: Settings | None = None,
    *,
    store: AlertReader | None = None,
    windows: WindowStore | None = None,
    wallet_store: WalletStore | None = None,
    analytics_store: AnalyticsStore | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    # Checked before anything starts: configured keys fail closed, and eks needs a cursor secret.
    api_keys = load_api_keys(settings)
    cursor_key.require_configured_key(settings)
    the_store = store or build_store(settings)
    telemetry = Telemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.table_checked = False
        if may_create_table(settings):
            try:
                created = await run_in_threadpool(the_store.ensure_table)
                app.state.table_checked = True
                if created:
                    log.info("created alerts table %s", the_store.table)
            except StoreUnavailableError as exc:
                log.warning("alert store not ready at start-up (%s); /readyz retries", exc)
        else:
            app.state.table_checked = True
        if app.state.cursor_key is None:
            try:
                app.state.cursor_key = await run_in_threadpool(cursor_key.key_for_store, the_store)
            except StoreUnavailableError as exc:
                log.warning("cursor key not loaded at start-up (%s); loaded on first use", exc)
        broadcaster = Broadcaster(
            the_store,
            streams_for(None, None, settings.alert_types()),
            poll_seconds=settings.api.stream_poll_seconds,
            lookback_seconds=settings.api.stream_lookback_seconds,
            telemetry=telemetry,
        )
        app.state.broadcaster = broadcaster
        try:
            yield
        finally:
            await broadcaster.close()
            if store is None:
                the_store.close()

    app = FastAPI(
        title="Coat Tail Capital alert API",
        version=api.__version__,
        description="Smart-money alerts from the detector pipeline (hot store: the last 24 hours).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.windows = windows or build_windows(the_store)
    app.state.wallets = wallet_store or build_wallets(the_store)
    app.state.analytics = analytics_store or build_analytics(the_store)
    app.state.modules = module_views(settings)  # the active modules' own panels (no module named here)
    app.state.telemetry = telemetry
    app.state.api_keys = api_keys
    # None until read from (or created in) the alerts table, unless api.cursor_secret is set.
    app.state.cursor_key = cursor_key.configured_key(settings.api.cursor_secret)
    app.state.cursor_key_lock = asyncio.Lock()
    app.state.table_checked = False

    errors.install(app)
    # With no keys configured the dependency (and the security scheme in the OpenAPI) is left out.
    protected = [Depends(require_api_key)] if app.state.api_keys else []
    app.include_router(stream.build_router(), dependencies=protected)  # before /alerts/{alert_id}
    app.include_router(alerts.build_router(settings), dependencies=protected)
    app.include_router(metrics.build_router(), dependencies=protected)
    app.include_router(meta.build_router(), dependencies=protected)
    app.include_router(wallets.build_router(), dependencies=protected)
    app.include_router(analytics.build_router(), dependencies=protected)
    app.include_router(health.build_router())
    app.include_router(dashboard.build_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Added last = outermost: metrics see every response, including compressed and CORS ones.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)  # 9 costs ~3x the CPU
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET"],
            allow_headers=["X-API-Key", "Last-Event-ID"],
        )
    app.add_middleware(MetricsMiddleware, telemetry=telemetry)
    return app
