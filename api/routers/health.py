"""Probes and Prometheus metrics; no API key, as kubelet and Prometheus call them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import SettingsDep, StoreDep
from api.errors import Problem
from api.schemas import Health
from coattail.settings import Settings


def build_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": Problem, "description": "The alert store is unreachable"}},
        summary="Readiness: the alerts table answers",
    )
    async def readyz(request: Request, store: StoreDep, settings: SettingsDep) -> Health:
        if not request.app.state.table_checked:
            # The store was down at start-up: create the table now that it may be back (never on eks).
            if may_create_table(settings):
                await run_in_threadpool(store.ensure_table)
            request.app.state.table_checked = True
        await run_in_threadpool(store.ping)
        return Health(status="ready", table=store.table)

    @router.get("/internal/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(request.app.state.telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def may_create_table(settings: Settings) -> bool:
    return settings.hot_store.create_if_missing and settings.profile != "eks"
