"""What the server holds: the settings, the orchestrator (loaded on a thread while /health says `loading`),
the API key and the metrics. Request handlers reach everything through one `ServerState`."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from evo_tr.config import API_KEY_ENV, Settings
from evo_tr.errors import EvoError
from evo_tr.serve.errors import ApiError
from evo_tr.serve.metrics import Metrics

log = logging.getLogger(__name__)

MODEL_ID = "evo-tr"
BASE_ID = f"{MODEL_ID}/base"
EMBEDDING_ID = f"{MODEL_ID}-e5"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(settings: Settings) -> str | None:
    """EVO_API_KEY, else the file named by serve.api_key_file; a blank or unreadable file is an error."""
    value = os.environ.get(API_KEY_ENV, "").strip()
    if value:
        return value
    path = settings.serve.api_key_file
    if path is None:
        return None
    path = Path(path).expanduser()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise EvoError(f"Cannot read the API key file {path}: {exc.strerror or exc}.", "Check serve.api_key_file or set EVO_API_KEY.") from exc
    if not value:
        raise EvoError(f"The API key file {path} is empty.", "Write the key into it (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`).")
    return value


def check_bind(host: str, api_key: str | None, users: int = 0) -> None:
    """Loopback unless a key is set (EVO_API_KEY or users' keys): anyone on the network could otherwise read and
    change the user's data."""
    if api_key is None and not users and not is_loopback(host):
        raise EvoError(
            f"Refusing to listen on {host} without an API key: anyone who can reach this address could read your conversations and memories.",
            "Set one first, e.g. `export EVO_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`, "
            "or put it in a file and set serve.api_key_file, or give every user a key with `evo users add NAME`; "
            "clients then send `Authorization: Bearer KEY`. Or keep the default --host 127.0.0.1.",
        )


class ServerState:
    """See the module docstring. `orchestrator` is None until loading finishes (or after it failed)."""

    def __init__(self, settings: Settings, *, model: str | None = None, api_key: str | None = None, loader=None, users=None) -> None:
        from evo_tr.users import UserStore

        self.settings = settings
        self.model = model or settings.model
        self.api_key = api_key
        # The users' keys (`evo users add`): read per request, so a user added or removed counts at once.
        self.users = users if users is not None else UserStore(settings.conversations_db)
        # Without a key (loopback only), the page served at / carries this token and the write endpoints accept it:
        # a page from another site can neither read it (same-origin policy; no CORS) nor send the custom header
        # without a preflight that fails, and the gatekeeper's Host check stops DNS rebinding from making it same-origin.
        self.page_token = None if api_key else secrets.token_urlsafe(32)
        self.metrics = Metrics()
        self.started = time.time()
        self.orchestrator = None
        self.error: str | None = None
        self._loader = loader
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- loading --------------------------------------------------------------------------------------
    def start_loading(self) -> None:
        """Load engine, router, adapters, memory and knowledge on a thread; /health answers meanwhile."""
        self._thread = threading.Thread(target=self._load, name="evo-serve-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            self.orchestrator = (self._loader or default_loader)(self.settings, self.model)
            engine = self.orchestrator.engine
            self.metrics.track_queue(lambda: getattr(engine, "queue_depth", 0))
            log.info("server ready in %.1f s", time.perf_counter() - t0, extra={"event": "serve_ready", "model": self.model})
        except EvoError as exc:
            self.error = str(exc)
            log.error("server could not load: %s", exc)
        except Exception as exc:  # reported on /health; the traceback goes to the log only
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("server could not load")
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout) and self.orchestrator is not None

    @property
    def status(self) -> str:
        if self.orchestrator is not None:
            return "ready"
        return "failed" if self.error else "loading"

    def orch(self):
        """The orchestrator, or 503 while loading (Retry-After) and after a failed load."""
        if self.orchestrator is not None:
            return self.orchestrator
        if self.error:
            raise ApiError(503, f"The model failed to load: {self.error}. Fix it and restart `evo serve` (`evo doctor` helps).", "model_failed")
        raise ApiError(503, "The model is still loading; try again in a few seconds (GET /health says `ready` when it is).", "model_loading",
                       headers={"Retry-After": "5"})

    # -- models ---------------------------------------------------------------------------------------
    def experts(self) -> list[str]:
        """Experts with an attached adapter: each is also a model id, `evo-tr/EXPERT`."""
        orch = self.orchestrator
        return sorted(orch.engine.adapters()) if orch is not None else []

    def model_ids(self) -> list[str]:
        return [MODEL_ID, BASE_ID, *(f"{MODEL_ID}/{e}" for e in self.experts()), EMBEDDING_ID]

    def expert_for(self, model_id: str) -> str | None:
        """The expert a chat model id selects: None (the router picks), 'base' or an expert; 404 otherwise."""
        if model_id == MODEL_ID:
            return None
        if model_id == BASE_ID:
            return "base"
        prefix = MODEL_ID + "/"
        if model_id.startswith(prefix) and model_id[len(prefix):] in self.experts():
            return model_id[len(prefix):]
        chat_ids = [i for i in self.model_ids() if i != EMBEDDING_ID]
        raise ApiError(404, f"The model {model_id!r} does not exist. Chat models here: {', '.join(chat_ids)} (GET /v1/models lists them).",
                       "model_not_found", "model")

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=600)
        if self.orchestrator is not None:
            self.orchestrator.close()
            self.orchestrator.engine.close()
            self.orchestrator = None
        self.users.close()

    def keyed(self) -> bool:
        """Whether requests need a key: EVO_API_KEY is set or users exist (else: loopback, the owner alone)."""
        return self.api_key is not None or self.users.count() > 0

    def resolve(self, token: bytes):
        """The user a bearer token is: the owner for EVO_API_KEY (constant-time compare), a user for their key; else None."""
        import hmac

        from evo_tr.users import OWNER, Principal

        if not token:
            return None
        if self.api_key is not None and hmac.compare_digest(token, self.api_key.encode()):
            return Principal(OWNER.id, OWNER.name, True, "api-key")
        user = self.users.resolve(token.decode("utf-8", errors="replace"))
        return Principal(user.id, user.name, user.admin, "user-key") if user is not None else None

    def describe(self) -> dict[str, Any]:
        return {"status": self.status, "model": self.model, "error": self.error, "uptime_s": round(time.time() - self.started, 1)}


def default_loader(settings: Settings, model: str):
    """The same orchestrator `evo chat` builds: engine behind its owner thread, router, adapters, memory, knowledge."""
    from evo_tr.engine import generation_config, load_engine
    from evo_tr.orchestrator import Orchestrator

    engine = load_engine(settings, model)
    return Orchestrator.build(settings, engine, generation_config(settings), model=model)
