"""FastAPI dependencies: the objects the lifespan created once per process, injected per request.

They are `async def` on purpose: FastAPI runs plain `def` dependencies in the threadpool, which would
cost a thread hop each on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.sse import Broadcaster
from api.store import AlertStore
from coattail.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> AlertStore:
    store: AlertStore = request.app.state.store
    return store


async def get_broadcaster(request: Request) -> Broadcaster:
    broadcaster: Broadcaster = request.app.state.broadcaster
    return broadcaster


async def get_cursor_key(request: Request) -> bytes:
    key: bytes = request.app.state.cursor_key
    return key


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[AlertStore, Depends(get_store)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
CursorKeyDep = Annotated[bytes, Depends(get_cursor_key)]
