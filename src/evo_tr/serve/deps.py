"""What endpoints depend on: the server state, the write guard, compact JSON."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import Depends, Request

from evo_tr.serve.errors import ApiError
from evo_tr.serve.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.evo


PAGE_TOKEN_HEADER = "x-evo-page-token"


def require_key(request: Request) -> None:
    """For endpoints that change or export data: never open to an unauthenticated caller. With a key set, the
    gatekeeper already checked it. Without one (loopback only), only EVO's own page may call them: it sends the
    token it was served with (`ServerState.page_token`), which a page from another site cannot read or send."""
    state = get_state(request)
    if state.api_key is not None:
        return
    given = request.headers.get(PAGE_TOKEN_HEADER, "")
    if given and state.page_token and hmac.compare_digest(given.encode(), state.page_token.encode()):
        return
    raise ApiError(403, "This endpoint changes or exports your data, so it needs an API key: start the server with "
                        "EVO_API_KEY set (or serve.api_key_file) and send `Authorization: Bearer KEY`; "
                        "without a key, the page at / can use it.", "api_key_required")


State = Depends(get_state)
Writes = Depends(require_key)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
