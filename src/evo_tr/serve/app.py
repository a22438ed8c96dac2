"""The FastAPI application: middleware (API key, body limit, access log and metrics), `/health`, `/metrics`,
the OpenAI endpoints (openai_api.py) and EVO's own (evo_api.py).

Middleware is plain ASGI so a streamed answer passes through it untouched, chunk by chunk.
"""

from __future__ import annotations

from pathlib import Path
import logging
import time
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from evo_tr import __version__
from evo_tr.serve import errors, evo_api, openai_api
from evo_tr.serve.errors import ERROR_RESPONSES, ApiError, error_response
from evo_tr.serve.metrics import CONTENT_TYPE
from evo_tr.serve.state import ServerState, is_loopback
from evo_tr.users import OWNER

access = logging.getLogger("evo_tr.serve.access")

UPLOAD_PATHS = ("/v1/evo/knowledge/documents", "/v1/evo/memories/import")
UI_DIR = Path(__file__).parent / "ui"
UI_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
# The page and its two assets hold no data: they load without the key, then the page asks for it.
PUBLIC_PATHS = frozenset({"/", *(f"/ui/{name}" for name in UI_FILES)})
# The page runs only its own script and talks only to this origin; nothing a message holds can load or run anything.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


class Health(BaseModel):
    status: str
    model: str
    error: str | None = None
    uptime_s: float


class Gatekeeper:
    """Who the request is (EVO_API_KEY: the owner; a user's key: that user; no key needed only on loopback
    without keys or users: the owner), on every endpoint; body size limit (413), access log line (JSON lines;
    no message text unless serve.log_content) and request metrics. The user is put in the request's scope
    (`evo_user`, read by deps.get_user): every endpoint sees and changes only that user's data."""

    def __init__(self, app, state: ServerState) -> None:
        self.app, self.state = app, state
        self.limit = state.settings.serve.max_body_bytes
        self.upload_limit = int(state.settings.knowledge.max_file_mb * 1_000_000) + 100_000

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        status_holder = {"status": 500}
        scope.setdefault("state", {})["evo"] = {}
        scope["state"]["evo_user"] = OWNER

        async def send_logged(message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            keyed = self.state.keyed()
            if not keyed and not _local_host(headers.get("host", b"")):
                # Loopback without a key: a request naming another host is a page from a site whose name was
                # rebound to 127.0.0.1 (DNS rebinding); it would otherwise be same-origin with the page.
                await error_response(403, "This server listens on loopback without an API key and answers only requests "
                                          "addressed to localhost or 127.0.0.1. To reach it under another name, set an API key "
                                          "(EVO_API_KEY) and start it with --host.", "host_not_allowed")(scope, receive, send_logged)
                return
            if keyed and scope.get("method") != "OPTIONS" and path not in PUBLIC_PATHS:
                given = headers.get("authorization", b"")
                token = given[7:].strip() if given[:7].lower() == b"bearer " else b""
                user = self.state.resolve(token) if token else None
                if user is None:
                    why = "No API key sent" if not token else "Wrong API key"
                    await error_response(401, f"{why}: send `Authorization: Bearer KEY` with the key the server was started with "
                                              "(EVO_API_KEY) or your own (`evo users add NAME` prints it).",
                                         "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})(scope, receive, send_logged)
                    return
                scope["state"]["evo_user"] = user
                scope["state"]["evo"]["user"] = user.name
            limit = self.upload_limit if path in UPLOAD_PATHS else self.limit
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await error_response(413, f"The body has {int(length)} bytes; this endpoint takes at most {limit}.", "body_too_large")(
                    scope, receive, send_logged)
                return
            received = 0

            async def limited_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _TooLarge()
                return message

            try:
                await self.app(scope, limited_receive, send_logged)
            except _TooLarge:
                await error_response(413, f"The body is larger than {limit} bytes.", "body_too_large")(scope, receive, send_logged)
        finally:
            self._record(scope, path, status_holder["status"], time.perf_counter() - t0)

    def _record(self, scope, path: str, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or ("unmatched" if status == 404 else path)
        m = self.state.metrics
        m.requests.labels(scope.get("method", ""), template, str(status)).inc()
        m.duration.labels(template).observe(seconds)
        extra: dict[str, Any] = {"event": "http", "method": scope.get("method"), "path": path, "status": status,
                                 "duration_ms": round(1000 * seconds, 2), "client": (scope.get("client") or ("", 0))[0]}
        info = scope.get("state", {}).get("evo", {})
        if not self.state.settings.serve.log_content:
            info = {k: v for k, v in info.items() if k != "content"}
        extra.update(info)
        access.info("%s %s %s", scope.get("method"), path, status, extra=extra)


class _TooLarge(Exception):
    pass


def _local_host(host: bytes) -> bool:
    """Whether a Host header names this machine's loopback: localhost, 127.0.0.1 (any 127/8) or [::1], any port."""
    name = host.decode("latin-1").strip().lower()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name == "localhost" or (is_loopback(name) if name else False)


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(
        title="EVO-TR", version=__version__,
        description="A local, private, Turkish-first assistant behind an OpenAI-compatible API (plus EVO's own endpoints under /v1/evo).",
        responses=ERROR_RESPONSES,
    )
    app.state.evo = state
    errors.install(app)

    @app.get("/health", response_model=Health, tags=["server"], summary="loading, ready or failed (answers at once)")
    def health() -> Any:
        body = Health(**state.describe())
        return JSONResponse(body.model_dump(), status_code=503 if state.status == "failed" else 200)

    @app.get("/metrics", tags=["server"], summary="Prometheus metrics (text format)",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", tags=["ui"], summary="The web page (chat, memory, knowledge, nights)", response_class=Response,
             responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
    def page() -> Response:
        html = (UI_DIR / "index.html").read_text(encoding="utf-8")
        if state.page_token and not state.keyed():  # loopback without keys: the page's own pass for the write endpoints (deps.require_key)
            html = html.replace("<head>", f'<head>\n<meta name="evo-page-token" content="{state.page_token}">', 1)
        return Response(html.encode(), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @app.get("/ui/{name}", tags=["ui"], summary="The page's script and style sheet", response_class=Response,
             responses={200: {"content": {"text/javascript": {"schema": {"type": "string"}}, "text/css": {"schema": {"type": "string"}}}}})
    def asset(name: str) -> Response:
        if name not in UI_FILES:
            raise ApiError(404, f"No such file: /ui/{name}.", "not_found", "name")
        return Response((UI_DIR / name).read_bytes(), media_type=f"{UI_FILES[name]}; charset=utf-8", headers=PAGE_HEADERS)

    app.include_router(openai_api.router)
    app.include_router(evo_api.router)
    if state.settings.serve.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=state.settings.serve.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type", "X-Session-Id"])
    app.add_middleware(Gatekeeper, state=state)
    return app
