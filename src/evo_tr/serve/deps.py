"""What endpoints depend on: the server state, the write guard, compact JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, Request

from evo_tr.serve.errors import ApiError
from evo_tr.serve.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.evo


def require_key(request: Request) -> None:
    """For endpoints that change or export data: never open to an unauthenticated caller. With a key set, the
    gatekeeper already checked it; without one, these endpoints are closed (a web page the user visits could
    otherwise call the loopback server)."""
    if get_state(request).api_key is None:
        raise ApiError(403, "This endpoint changes or exports your data, so it needs an API key: start the server with "
                            "EVO_API_KEY set (or serve.api_key_file) and send `Authorization: Bearer KEY`.", "api_key_required")


State = Depends(get_state)
Writes = Depends(require_key)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
