"""What endpoints depend on: the server state, who the request is (its user), the write and admin guards, compact JSON."""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import Depends, Request

from evo_tr.serve.errors import ApiError
from evo_tr.serve.state import ServerState
from evo_tr.users import OWNER, Principal


def get_state(request: Request) -> ServerState:
    return request.app.state.evo


def get_user(request: Request) -> Principal:
    """The user the gatekeeper resolved the request to (the owner on a server without keys)."""
    return request.scope.get("state", {}).get("evo_user") or OWNER


PAGE_TOKEN_HEADER = "x-evo-page-token"


def require_key(request: Request) -> None:
    """For endpoints that change or export data: never open to an unauthenticated caller. With a key set, the
    gatekeeper already checked it. Without one (loopback only), only EVO's own page may call them: it sends the
    token it was served with (`ServerState.page_token`), which a page from another site cannot read or send."""
    state = get_state(request)
    if get_user(request).keyed:  # a key (EVO_API_KEY or a user's) the gatekeeper already checked
        return
    given = request.headers.get(PAGE_TOKEN_HEADER, "")
    if given and state.page_token and hmac.compare_digest(given.encode(), state.page_token.encode()):
        return
    raise ApiError(403, "This endpoint changes or exports your data, so it needs an API key: start the server with "
                        "EVO_API_KEY set (or serve.api_key_file) and send `Authorization: Bearer KEY`; "
                        "without a key, the page at / can use it.", "api_key_required")


def require_admin(request: Request) -> None:
    """For managing users, serving adapters, reviewing proposals and changing the shared documents: the owner
    (EVO_API_KEY, or the page on a server without keys) or a user added with --admin; 403 for anyone else."""
    require_key(request)
    require_admin_read(request)


def require_admin_read(request: Request) -> None:
    """For what holds every user's data (night reports, training proposals): admins only. Open as before on a
    server without users, where the one user is the owner."""
    if not get_user(request).admin:
        raise ApiError(403, "Only an admin may use this endpoint: the owner (EVO_API_KEY) or a user added with "
                            "`evo users add NAME --admin`.", "admin_only")


State = Depends(get_state)
User = Depends(get_user)
Writes = Depends(require_key)
Admin = Depends(require_admin)
AdminRead = Depends(require_admin_read)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
