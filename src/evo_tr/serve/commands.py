"""`evo serve`: the OpenAI-compatible HTTP API on this machine (one process, one engine owner)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from evo_tr.config import API_KEY_ENV, load_settings

err = Console(stderr=True)
log = logging.getLogger(__name__)


def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default serve.host, 127.0.0.1). Anything but loopback needs an API key.")] = None,
    port: Annotated[Optional[int], typer.Option(help="TCP port (default serve.port, 8000).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registry name of the model (default: settings.model).")] = None,
    api_key_file: Annotated[Optional[Path], typer.Option(help=f"File holding the API key ({API_KEY_ENV} wins). With a key, every request needs `Authorization: Bearer KEY`.")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(help="Allow this browser origin (repeatable; CORS is off by default).")] = None,
    log_content: Annotated[bool, typer.Option("--log-content", help="Write message text into the access log (off by default).")] = False,
) -> None:
    """Serve the assistant over an OpenAI-compatible HTTP API (chat, streaming, embeddings) plus /v1/evo endpoints."""
    import uvicorn  # here, not at the top: every other `evo` command starts without FastAPI

    from evo_tr.serve.app import create_app
    from evo_tr.serve.state import BASE_ID, EMBEDDING_ID, MODEL_ID, ServerState, check_bind, read_api_key

    settings = load_settings()
    cfg = settings.serve
    cfg.host = host or cfg.host
    cfg.port = port or cfg.port
    if api_key_file is not None:
        cfg.api_key_file = api_key_file
    if cors_origin:
        cfg.cors_origins = list(cors_origin)
    cfg.log_content = log_content or cfg.log_content
    from evo_tr.users import UserStore

    key = read_api_key(settings)
    users = UserStore(settings.conversations_db)
    check_bind(cfg.host, key, users.count())
    state = ServerState(settings, model=model, api_key=key, users=users)
    app = create_app(state)
    shown = "localhost" if cfg.host in ("127.0.0.1", "::1", "0.0.0.0", "::") else cfg.host
    url = f"http://{shown}:{cfg.port}"
    err.print(f"[bold]EVO-TR sunucusu[/bold] / server: {url}  (model {state.model}, yükleniyor / loading…)")
    err.print(f"  modeller / models: {MODEL_ID} (router), {BASE_ID}, {MODEL_ID}/EXPERT per active expert, {EMBEDDING_ID} (embeddings)")
    auth = "your key" if key or users.count() else "any string (no key set: loopback only)"
    err.print(f"  OpenAI SDK: OpenAI(base_url=\"{url}/v1\", api_key=\"{auth}\")")
    err.print(f"  Open WebUI: Settings → Connections → OpenAI API: URL {url}/v1, key {auth}")
    err.print(f"  llm: extra-openai-models.yaml: - model_id: evo-tr / model_name: evo-tr / api_base: \"{url}/v1\"")
    err.print(f"  durum / health: {url}/health   API belgesi / docs: {url}/docs   metrics: {url}/metrics")
    if users.count():
        err.print(f"  kullanıcılar / users: {users.count()} (`evo users list`); each sees only their own sessions and memories"
                  + ("" if key else f"; no {API_KEY_ENV}: the owner's data is reached from the CLI only"))
    elif not key:
        err.print("  [dim]Veri değiştiren uçlar (içe/dışa aktarma, silme, adaptörler) API anahtarı ister / "
                  f"endpoints that change or export data need an API key ({API_KEY_ENV}).[/dim]")
    state.start_loading()
    server = uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5, lifespan="off"))
    try:
        server.run()
    finally:
        state.close()
