"""GET /alerts (filtered, newest first, cursor-paged) and GET /alerts/{alert_id}."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from api import cursor
from api.deps import CursorKeyDep, SettingsDep, StoreDep
from api.errors import ERROR_RESPONSES, InvalidParameterError, Problem
from api.paging import page_async
from api.params import SinceQuery, SymbolQuery, TypeQuery, parse_since
from api.schemas import AlertOut, AlertPage
from coattail.hotstore import streams_for, time_key
from coattail.settings import Settings

JSON = "application/json"


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["alerts"])
    limits = settings.api

    @router.get(
        "/alerts",
        response_model=AlertPage,
        responses=ERROR_RESPONSES,
        summary="List alerts, newest first",
    )
    async def list_alerts(
        store: StoreDep,
        settings: SettingsDep,
        key: CursorKeyDep,
        type: str | None = TypeQuery,  # the public parameter name (seed §9.1)
        symbol: str | None = SymbolQuery,
        limit: int = Query(
            limits.default_limit, ge=1, le=limits.max_limit, description="Page size (at most max_limit)"
        ),
        since: str | None = SinceQuery,
        cursor_token: str | None = Query(
            None,
            alias="cursor",
            max_length=cursor.MAX_CURSOR_CHARS,
            description="`next` of the previous page",
        ),
    ) -> Response:
        """Alerts of the last 24 hours (or since `since`), filtered by `type` and/or `symbol`.

        Pages with `cursor=<next>`; walking all pages returns every matching alert exactly once.
        Expired alerts (ttl_epoch in the past) are never returned.
        """
        now = datetime.now(UTC)
        streams = streams_for(type, symbol, settings.alert_types())
        query = cursor.fingerprint(type, symbol)
        positions = None
        since_dt = parse_since(since, now)
        if cursor_token:
            try:
                state = cursor.decode(key, query, cursor_token, [s.name for s in streams])
            except cursor.CursorError as exc:
                raise InvalidParameterError("cursor", str(exc)) from None
            if since is not None and time_key(since_dt) != state.since:
                raise InvalidParameterError("since", "differs from the since of the cursor's first page")
            since_dt = datetime.fromisoformat(state.since)
            positions = state.positions
        page = await page_async(store, streams, since_dt, limit, now, positions)
        since_key = time_key(since_dt)
        next_token = (
            cursor.encode(key, query, cursor.CursorState(since_key, page.positions))
            if page.positions
            else None
        )
        body = {
            "items": page.items,
            "count": len(page.items),
            "next": next_token,
            "since": since_key,
        }
        return Response(orjson.dumps(body), media_type=JSON)

    @router.get(
        "/alerts/{alert_id}",
        response_model=AlertOut,
        responses={**ERROR_RESPONSES, 404: {"model": Problem, "description": "No such (unexpired) alert"}},
        summary="One alert by id",
    )
    async def get_alert(store: StoreDep, alert_id: str = Path(min_length=1, max_length=64)) -> Response:
        alert = await run_in_threadpool(store.get, alert_id, datetime.now(UTC))
        if alert is None:
            return Response(
                orjson.dumps({"detail": f"no alert {alert_id!r} (unknown or expired)"}), 404, media_type=JSON
            )
        return Response(orjson.dumps(alert), media_type=JSON)

    return router
