"""GET /alerts/stream: Server-Sent Events of new alerts (see api.sse for the semantics)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.deps import BroadcasterDep, SettingsDep, StoreDep
from api.errors import ERROR_RESPONSES, InvalidParameterError
from api.params import SymbolQuery, TypeQuery
from api.sse import AlertFilter, event_id, parse_event_id, position
from coattail.hotstore import AlertReader, StreamSpec, streams_for

MAX_REPLAY = 2000
RETRY_MS = 3000


def _replay(
    store: AlertReader, streams: list[StreamSpec], after: tuple[str, str], alert_filter: AlertFilter
) -> list[dict[str, Any]]:
    """Alerts that sort after ``after`` (oldest first), for a client resuming with Last-Event-ID."""
    since = datetime.fromisoformat(after[0])
    found = [
        a
        for a in store.walk(streams, since, datetime.now(UTC), MAX_REPLAY)
        if position(a) > after and alert_filter.matches(a)
    ]
    found.sort(key=position)
    return found


def _event(alert: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(alert).decode(), event="alert", id=event_id(alert))


def build_router() -> APIRouter:
    router = APIRouter(tags=["alerts"])

    @router.get(
        "/alerts/stream",
        responses={
            **ERROR_RESPONSES,
            200: {"content": {"text/event-stream": {}}, "description": "`alert` events; data is an alert"},
        },
        response_class=EventSourceResponse,
        summary="Live alerts (Server-Sent Events)",
    )
    async def stream_alerts(
        store: StoreDep,
        broadcaster: BroadcasterDep,
        settings: SettingsDep,
        type: str | None = TypeQuery,  # same name as GET /alerts
        symbol: str | None = SymbolQuery,
        last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=200),
    ) -> EventSourceResponse:
        """New alerts as `alert` events (id `<detected_at>|<alert_id>`), keep-alive comments between.

        Reconnect with `Last-Event-ID` to receive what sorted after that event first.
        """
        alert_filter = AlertFilter(type, symbol)
        after = None
        if last_event_id:
            try:
                after = parse_event_id(last_event_id)
            except ValueError as exc:
                raise InvalidParameterError("Last-Event-ID", str(exc)) from None
        # Subscribe before replaying, so nothing written meanwhile falls between the two.
        sub = await broadcaster.subscribe(alert_filter)
        try:
            backlog = []
            if after:
                streams = streams_for(type, symbol, settings.alert_types())
                backlog = await run_in_threadpool(_replay, store, streams, after, alert_filter)
        except BaseException:
            broadcaster.unsubscribe(sub)
            raise

        async def events() -> AsyncIterator[ServerSentEvent]:
            sub.started = True
            try:
                yield ServerSentEvent(comment="connected", retry=RETRY_MS)
                sent = set()
                for alert in backlog:
                    sent.add(alert["alert_id"])
                    broadcaster.telemetry.streamed.inc()
                    yield _event(alert)
                while True:
                    live = await sub.queue.get()
                    if live is None:  # dropped for lagging, or shutting down: the client reconnects
                        return
                    if live["alert_id"] in sent:
                        continue
                    broadcaster.telemetry.streamed.inc()
                    yield _event(live)
            finally:
                broadcaster.unsubscribe(sub)

        return EventSourceResponse(
            events(),
            ping=settings.api.stream_ping_seconds,
            background=BackgroundTask(broadcaster.unsubscribe, sub),  # also for HEAD, which never reads
        )

    return router
