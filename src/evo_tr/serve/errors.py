"""Errors with one stable, OpenAI-shaped body: `{"error": {"message", "type", "param", "code"}}`.

Every failure a client can meet goes through here: our own `ApiError`, EvoError (a user mistake the CLI
would print with its fix), FastAPI's validation errors (malformed JSON, a wrong type), Starlette's 404/405,
and anything unexpected, which is logged with its traceback server-side and answered with a plain 500
whose body never carries one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from evo_tr.engine.worker import Busy
from evo_tr.errors import EvoError, disk_full_error, is_disk_full

log = logging.getLogger(__name__)

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         405: "invalid_request_error", 408: "timeout_error", 409: "conflict_error", 413: "invalid_request_error",
         503: "server_busy", 504: "timeout_error"}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """What every error response holds (the OpenAI API's shape)."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in ((400, "Invalid request"), (401, "Missing or wrong API key"), (403, "Needs an API key"), (404, "Not found"),
                       (413, "Body too large"), (503, "Loading or busy"), (504, "Timed out"))
}


class ApiError(Exception):
    """An error answered as-is: status, message (with the fix), code and the offending parameter."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers or {}


def error_response(status: int, message: str, code: str | None, param: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(message=message, type=TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
                                       param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def from_evo(exc: EvoError) -> ApiError:
    """A user mistake the CLI would print with its fix: 400 with both (Busy: 503 with Retry-After)."""
    text = exc.message if not exc.hint else f"{exc.message} {exc.hint}"
    if isinstance(exc, Busy):
        return ApiError(503, text, "engine_busy", headers={"Retry-After": "2"})
    return ApiError(400, text, "invalid_request")


def _param(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _disk_full(request: Request) -> JSONResponse:
    """507 Insufficient Storage with the CLI's message: which disk, how much is free, that nothing was lost."""
    home = getattr(getattr(getattr(request.app.state, "evo", None), "settings", None), "home", None)
    error = disk_full_error(home or ".")
    return error_response(507, f"{error.message} {error.hint}", "disk_full")


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.param, exc.headers)

    @app.exception_handler(EvoError)
    async def _evo(request: Request, exc: EvoError) -> JSONResponse:
        if is_disk_full(exc):
            return _disk_full(request)
        e = from_evo(exc)
        return error_response(e.status, e.message, e.code, e.param, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"msg": "invalid request", "loc": (), "type": ""}
        if first.get("type") == "json_invalid":
            return error_response(400, f"The body is not valid JSON: {first.get('msg')}. Send a JSON object with Content-Type: application/json.",
                                  "invalid_json")
        where = _param(tuple(first.get("loc", ())))
        text = "; ".join(f"{_param(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in errors[:5])
        return error_response(400, f"Invalid request: {text}", "invalid_request", where)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        text = {404: "No such endpoint. See /docs for the list.", 405: "Method not allowed on this endpoint."}.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, text, codes.get(exc.status_code, "http_error"), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):
            return _disk_full(request)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error; the server log ($EVO_HOME/logs/evo.jsonl) has the details.", "internal_error")
