"""Error responses: one short sentence in ``detail``, never a stack trace (DESIGN.md "Clear errors")."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from coattail.errors import CoattailError, first_problem
from coattail.hotstore import StoreUnavailableError

log = logging.getLogger(__name__)


class Problem(BaseModel):
    """Body of every 4xx/5xx answer."""

    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or invalid X-API-Key (only when keys are configured)"},
    422: {"model": Problem, "description": "A parameter is invalid; `detail` says which and why"},
    503: {"model": Problem, "description": "The alert store is unreachable"},
}


class InvalidParameterError(CoattailError, ValueError):
    """A parameter that passed type checks but is still wrong (bad timestamp, cursor, event id)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    p = first_problem(exc.errors(), skip=("query", "path", "header", "body"), fallback="request")
    got = p.error.get("input")
    shown = f" (got {str(got)[:60]!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{p.where}: {p.message}{shown}{p.more}"


def install(app: FastAPI) -> None:
    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem(422, _validation_message(exc))

    async def on_bad_request(_: Request, exc: Exception) -> JSONResponse:
        return problem(422, str(exc))

    async def on_store(_: Request, exc: Exception) -> JSONResponse:
        return problem(503, f"alert store unavailable: {exc}", {"Retry-After": "5"})

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal error; the service log has the details")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InvalidParameterError, on_bad_request)
    app.add_exception_handler(StoreUnavailableError, on_store)
    app.add_exception_handler(Exception, on_unexpected)
