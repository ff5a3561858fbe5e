"""GET /alert-types and GET /symbols: what the active tier registers and watches."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep
from api.errors import ERROR_RESPONSES
from api.schemas import AlertTypeOut, AlertTypes, Symbols


def build_router() -> APIRouter:
    router = APIRouter(tags=["meta"])

    @router.get(
        "/alert-types", response_model=AlertTypes, responses=ERROR_RESPONSES, summary="Registered alert types"
    )
    async def alert_types(settings: SettingsDep) -> AlertTypes:
        """The alert types of the active tier's modules, in module order."""
        out = [
            AlertTypeOut(alert_type=t, module_id=module_id, module=settings.modules[module_id].name)
            for module_id in settings.active_modules
            for t in settings.modules[module_id].alert_types
        ]
        unique = {a.alert_type: a for a in reversed(out)}  # first registration wins
        return AlertTypes(tier=settings.tier, alert_types=[a for a in out if unique[a.alert_type] is a])

    @router.get("/symbols", response_model=Symbols, responses=ERROR_RESPONSES, summary="Configured symbols")
    async def symbols(settings: SettingsDep) -> Symbols:
        """Every configured instrument symbol, sorted (for the dashboard's panels)."""
        return Symbols(symbols=settings.all_symbols())

    return router
