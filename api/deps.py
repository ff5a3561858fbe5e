"""FastAPI dependencies: the objects the lifespan created once per process, injected per request.

They are `async def` on purpose: FastAPI runs plain `def` dependencies in the threadpool, which would
cost a thread hop each on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.cursor_key import key_for_store
from api.modules import ModuleView
from api.sse import Broadcaster
from coattail.hotstore import AlertReader
from coattail.hotstore.analytics import AnalyticsStore
from coattail.hotstore.wallets import WalletStore
from coattail.hotstore.windows import WindowStore
from coattail.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> AlertReader:
    store: AlertReader = request.app.state.store
    return store


async def get_windows(request: Request) -> WindowStore:
    windows: WindowStore = request.app.state.windows
    return windows


async def get_wallets(request: Request) -> WalletStore:
    wallets: WalletStore = request.app.state.wallets
    return wallets


async def get_analytics(request: Request) -> AnalyticsStore:
    analytics: AnalyticsStore = request.app.state.analytics
    return analytics


async def get_modules(request: Request) -> list[ModuleView]:
    modules: list[ModuleView] = request.app.state.modules
    return modules


async def get_broadcaster(request: Request) -> Broadcaster:
    broadcaster: Broadcaster = request.app.state.broadcaster
    return broadcaster


async def get_cursor_key(request: Request) -> bytes:
    """The cursor HMAC key; read from (or created in) the store on first use when not configured."""
    state = request.app.state
    if state.cursor_key is None:
        async with state.cursor_key_lock:  # one store round trip, however many requests wait
            if state.cursor_key is None:
                state.cursor_key = await run_in_threadpool(key_for_store, state.store)
    key: bytes = state.cursor_key
    return key


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[AlertReader, Depends(get_store)]
WindowsDep = Annotated[WindowStore, Depends(get_windows)]
WalletsDep = Annotated[WalletStore, Depends(get_wallets)]
AnalyticsDep = Annotated[AnalyticsStore, Depends(get_analytics)]
ModulesDep = Annotated[list[ModuleView], Depends(get_modules)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
CursorKeyDep = Annotated[bytes, Depends(get_cursor_key)]
