"""EVO-TR's own endpoints under /v1/evo: sessions, feedback, memories, knowledge, route-only, adapters, nights.

Every endpoint calls the same library code as the CLI and the REPL (`orch.feedback` is what /good /bad /fix
write, the memory manager what /remember and /forget use, the store's JSONL export and import what `evo
memory export/import` use, the adapter registry what `evo adapters` uses, the conversation store what
`evo data review` uses). Endpoints are sync: FastAPI runs them on its thread pool, and the stores are
reached under their links' locks, as the orchestrator does.

Endpoints that change or export the user's data depend on `Writes` (403 when the server has no API key).

Every request is one user's (deps.get_user; the owner on a server without user keys): sessions, turns,
feedback and memories are read, searched, exported, changed and erased as that user's only. Another user's
session or memory id is answered exactly like an id that does not exist (404), so ids say nothing. A user's
session ids are stored with a prefix of their own (users.session_prefix) and shown without it. Managing users,
serving adapters, reviewing proposals, reading night reports (they hold every user's turns) and changing the
shared documents are for admins (`Admin`, `AdminRead`); on a server without users the owner is the admin.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile as StarletteUploadFile

from evo_tr.errors import EvoError, RemoteEngineError
from evo_tr.lifecycle.conversations import TurnRecord
from evo_tr.lifecycle.night import report_days
from evo_tr.serve.deps import Admin, AdminRead, State, User, Writes
from evo_tr.serve.errors import ERROR_RESPONSES, ApiError, ErrorBody
from evo_tr.serve.state import ServerState
from evo_tr.users import Principal, session_prefix

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/evo", tags=["evo"], responses=ERROR_RESPONSES)

CONFLICT = {409: {"model": ErrorBody, "description": "Conflicts with the current state"}}
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
CHART_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.png$"
EXPERT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
VERSION_PATTERN = r"^(?:v?\d{1,6}|none)$"
NOT_BLANK = r"\S"  # at least one character that is not white space
UPLOAD_NAME_CHARS = 120
COPY_CHUNK = 1 << 20

Day = Annotated[str, PathParam(pattern=DAY_PATTERN, description="A night's day, YYYY-MM-DD.")]
SessionId = Annotated[str, PathParam(min_length=1, max_length=200, description="The session's exact id (GET /v1/evo/sessions lists them).")]
ExpertName = Annotated[str, PathParam(pattern=EXPERT_PATTERN, description="Expert name, e.g. tr_chat (GET /v1/evo/adapters lists them).")]
MemoryTypeName = Literal["fact", "preference", "conversation", "knowledge"]


# -- models ----------------------------------------------------------------------------------------
class SessionOut(BaseModel):
    id: str = Field(description="Session id.")
    created_at: str = Field(description="ISO time (UTC) the session started.")
    updated_at: str = Field(description="ISO time (UTC) of its last turn.")
    title: str = Field(description="The first message, shortened.")
    model: str = Field(description="Model that served it.")
    turns: int = Field(description="Number of stored turns.")


class SessionList(BaseModel):
    sessions: list[SessionOut]


class FeedbackOut(BaseModel):
    session_id: str
    turn: int = Field(description="The turn judged.")
    kind: str = Field(description="good, bad, fix (explicit) or correction, repeat, regenerate (implicit).")
    source: str = Field(description="explicit or implicit.")
    reason: str = ""
    text: str = Field("", description="For fix: the answer the user expected.")
    created_at: str


class SessionDetail(BaseModel):
    session: SessionOut
    turns: list[TurnRecord] = Field(description="Every turn as the conversation log holds it (feedback: the latest on that turn).")
    feedback: list[FeedbackOut]


class Deleted(BaseModel):
    deleted: bool = Field(description="True when something was deleted.")
    id: str


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(min_length=1, max_length=200, description="The session's exact id.")
    turn: int | None = Field(None, ge=1, le=1_000_000, description="Turn number; default: the session's last turn.")
    kind: Literal["good", "bad", "fix", "regenerate"] = Field(
        description="good, bad (with an optional reason), fix (with the expected answer in text), or regenerate: the client "
                    "is asking again for this answer (stored as implicit, as `/regen` marks it).")
    reason: str = Field("", max_length=2000, description="Why the answer was bad (for bad).")
    text: str = Field("", max_length=20_000, description="The answer you expected (required for fix).")


class MemoryOut(BaseModel):
    id: str
    text: str
    type: str = Field(description="fact, preference, conversation or knowledge.")
    source: str = Field(description="Who stored it: chat, cli, api, import, night…")
    session: str = ""
    turn: int = -1
    created_at: str = ""
    stated_at: str = ""
    attribute: str = Field("", description="What a fact is about (e.g. user.name): a newer statement of it supersedes this one.")
    current: bool = Field(description="False once a newer statement of the same attribute replaced it.")
    superseded_by: str = ""
    role: str = ""
    use_count: int = 0
    last_used_at: str = ""
    metadata: dict[str, Any] = Field(description="Every stored metadata field, as `evo memory export` writes them.")


class MemoryList(BaseModel):
    memories: list[MemoryOut]


class MemoryHitOut(MemoryOut):
    similarity: float = Field(description="Cosine similarity to the query.")
    score: float | None = Field(None, description="Re-ranking score (similarity, shared words, type).")


class MemorySearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=20_000, pattern=NOT_BLANK, description="Words or a question.")
    top_k: int = Field(5, ge=1, le=100, description="How many results.")
    type: MemoryTypeName | None = Field(None, description="Only memories of this type.")


class MemorySearchOut(BaseModel):
    query: str
    hits: list[MemoryHitOut]


class MemoryAddIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000, pattern=NOT_BLANK, description="What to remember, in the user's words.")
    type: MemoryTypeName = Field("fact", description="Memory type (default fact, as /remember stores it).")


class MemoryAdded(BaseModel):
    id: str = Field(description="The memory's id (the existing one when merged).")
    merged: bool = Field(description="True when an equal or near-equal memory already existed.")
    ids: list[str] = Field(description="Every stored id (a long text is stored in chunks).")


class ForgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK, description="A memory id or a search query (as `evo memory forget`).")
    dry_run: bool = Field(False, description="Only return what would be deleted.")


class ForgetOut(BaseModel):
    deleted: int = Field(description="How many memories were deleted (0 on a dry run).")
    ids: list[str] = Field(description="Ids of the matching memories.")
    memories: list[MemoryOut] = Field(description="The matching memories.")


class SkippedLine(BaseModel):
    line: int = Field(description="Line number in the uploaded file, from 1.")
    reason: str


class ImportOut(BaseModel):
    imported: int = Field(description="Memories restored (ids and metadata kept).")
    skipped: list[SkippedLine]


class DocumentOut(BaseModel):
    path: str = Field(description="The stored path (DELETE /v1/evo/knowledge/documents?path=… takes it).")
    sha256: str
    size: int
    kind: str
    encoding: str
    chunks: int = Field(description="Passages stored for it.")
    added_at: str
    updated_at: str


class DocumentList(BaseModel):
    pack_version: str | None = Field(description="Version of the shipped Turkish knowledge pack loaded.")
    pack_entries: int
    documents: list[DocumentOut]


class UploadOut(BaseModel):
    path: str = Field(description="Where the upload was saved and stored.")
    status: Literal["added", "updated", "unchanged"]
    chunks: int = Field(description="Passages stored for it.")
    reason: str = ""
    orphans_removed: int = Field(0, description="Passages an interrupted earlier add had left behind, removed.")


class DocumentsRemoved(BaseModel):
    removed: list[str] = Field(description="Paths of the removed documents.")


class KnowledgeSearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=20_000, pattern=NOT_BLANK, description="Words or a question.")
    top_k: int = Field(5, ge=1, le=50, description="How many passages.")
    documents_only: bool = Field(False, description="Only your documents, not the shipped pack.")


class PassageOut(BaseModel):
    id: str = Field(description="Passage id.")
    label: str = Field(description="The source as a person reads it (pack entry, or file › section (lines)).")
    kind: str = Field(description="pack or document.")
    similarity: float | None = Field(None, description="Cosine similarity to the query (search only).")
    relevant: bool | None = Field(None, description="Whether a chat turn with this message would put it into the prompt (search only).")
    text: str
    source: str | None = None
    section: str | None = None
    line_start: int | None = None
    line_end: int | None = None
    entry: str | None = None


class ScheduleOut(BaseModel):
    kind: str = Field(description="cron, systemd or launchd: the scheduler this system uses.")
    installed: bool = Field(description="Whether `evo night` runs every night (`evo schedule install` installs it).")
    at: str | None = Field(None, description="Local time of day, HH:MM, when installed.")
    entry: str | None = Field(None, description="The crontab line (cron).")
    files: list[str] = Field(default_factory=list, description="The unit or agent files (systemd, launchd).")
    problem: str | None = Field(None, description="Why the status could not be read.")


class KnowledgeSearchOut(BaseModel):
    query: str
    hits: list[PassageOut]


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000, description="The message to route.")


class RouteOut(BaseModel):
    intent: str = Field(description="The router's intent ('' when the router is unavailable).")
    confidence: float = Field(description="The router's confidence, 0-1.")
    expert: str = Field(description="The expert that would answer ('base' = the base model).")
    adapter: str | None = Field(description="The adapter that would be used, or null when the base model answers.")
    fallback: bool = Field(description="True when the router was unsure (or unavailable) and the base model answers.")
    source: str = Field(description="router, or router-failed.")


class AdapterOut(BaseModel):
    expert: str
    version: str = Field(description="vN (v0 = the packaged adapter).")
    packaged: bool
    active: bool = Field(description="The registry's active version (what the next `evo chat` or server start loads).")
    served: bool = Field(description="Attached and answering in this running server.")
    scale: float | None = Field(description="LoRA scale it is served at (null when its metadata is invalid).")
    base_model: str | None = Field(description="Base model it was trained on.")
    examples: int | None = Field(None, description="Training examples.")
    valid_loss: float | None = Field(None, description="Last held-out loss during training.")
    created_at: str | None = None


class AdapterList(BaseModel):
    adapters: list[AdapterOut]
    hot_swap: bool = Field(description="Whether this server's backend can attach adapters while running.")


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=VERSION_PATTERN, description="vN, v0 for the packaged adapter, or none for the base model.")


class AdapterChange(BaseModel):
    expert: str
    active: str | None = Field(description="The version now active in the registry (null = none, the base model answers).")
    live: bool = Field(description="True when the running server now serves that version too.")
    served: str | None = Field(description="What this server serves for the expert now (vN, packaged, or null = the base model).")
    note: str = Field("", description="Why the change did not take effect in the running server, when it did not.")


class NightOut(BaseModel):
    day: str
    charts: list[str] = Field(description="Chart names: GET /v1/evo/nights/{day}/charts/{name}.")


class NightList(BaseModel):
    nights: list[NightOut]


class NightReport(BaseModel):
    day: str
    charts: list[str]
    report: dict[str, Any] = Field(description="The report's JSON (reports/DAY/report.json), as `evo report --json` prints it.")
    markdown: str | None = Field(None, description="The Markdown report, when it exists.")


class ProposalMessage(BaseModel):
    role: str
    content: str


class ProposalOut(BaseModel):
    id: int
    day: str
    expert: str
    kind: str
    messages: list[ProposalMessage] = Field(description="The proposed training example.")
    session_id: str
    turn: int
    status: str = Field(description="pending, accepted or rejected.")
    used_in: str | None = Field(None, description="Adapter version it was trained into.")
    created_at: str


class ProposalList(BaseModel):
    proposals: list[ProposalOut]


class ProposalIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(min_length=1, max_length=1000, description="Proposal ids (GET /v1/evo/proposals).")


class ProposalChange(BaseModel):
    changed: int = Field(description="Proposals whose status was set.")
    status: str
    ids: list[int]
    pending: int = Field(description="Proposals still waiting for review.")


# -- helpers ---------------------------------------------------------------------------------------
def _stored_id(user: Principal, session_id: str) -> str:
    """The id a user's session is stored under (their prefix + the id they gave)."""
    return session_prefix(user.id) + session_id


def _shown_id(user: Principal, stored: str) -> str:
    """A stored session id as its user named it."""
    prefix = session_prefix(user.id)
    return stored[len(prefix):] if prefix and stored.startswith(prefix) else stored


def _session_out(info, user: Principal) -> SessionOut:
    return SessionOut(**{**info.as_dict(), "id": _shown_id(user, info.id)})


def _memory_out(m, user: Principal) -> dict[str, Any]:
    session = _shown_id(user, str(m.session))
    return {"id": m.id, "text": m.text, "type": str(m.type), "source": str(m.source), "session": session, "turn": _int(m.turn, -1),
            "created_at": str(m.created_at), "stated_at": str(m.stated_at), "attribute": str(m.attribute), "current": m.current,
            "superseded_by": str(m.superseded_by), "role": str(m.role), "use_count": _int(m.use_count, 0),
            "last_used_at": str(m.last_used_at), "metadata": {**m.metadata(), "session": session}}


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _find_session(orch, user: Principal, session_id: str):
    """The user's session with this id; another user's is a 404 exactly like a missing one."""
    info = orch.conversations.get_session(_stored_id(user, session_id), user=user.id)
    if info is None:
        raise ApiError(404, f"No session {session_id!r}. GET /v1/evo/sessions lists the sessions (ids are matched exactly).",
                       "not_found", "session_id")
    return info


@contextmanager
def _open(link, what: str, key: str) -> Iterator[Any]:
    """A store (memory manager or knowledge store) under its link's lock, or 503 saying why not."""
    if link is None:
        raise ApiError(503, f"{what.capitalize()} is off on this server ({key}.enabled = false in evo.toml, or started without it). "
                            "Turn it on and restart `evo serve`.", f"{key}_off")
    with link.lock:
        try:
            store = link.get()
        except EvoError as exc:
            raise ApiError(503, f"The {what} store is unavailable: {exc.message}. Try again in a few seconds; `evo doctor` "
                                "checks the store.", f"{key}_unavailable", headers={"Retry-After": "5"}) from exc
        yield store


def _memory(orch):
    """The memory manager under its lock (the store is not shared across threads)."""
    return _open(orch.memory, "memory", "memory")


def _knowledge(orch):
    return _open(orch.knowledge, "knowledge", "knowledge")


def _private_tempdir(orch) -> tempfile.TemporaryDirectory:
    """A temporary folder inside EVO_HOME (mode 0700): exports and imports hold the user's memories."""
    root = orch.settings.home / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=root, prefix="api-")


def uploads_dir(orch) -> Path:
    return orch.settings.home / "uploads"


def safe_upload_name(filename: str | None) -> str:
    """The upload's base name with anything but letters, digits, '.', '-', '_' and spaces replaced: never a path."""
    name = PurePosixPath(unicodedata.normalize("NFC", (filename or "").replace("\\", "/"))).name
    name = re.sub(r"\s+", " ", re.sub(r"[^\w.\- ]", "_", name)).strip(" .")
    if len(name) > UPLOAD_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        suffix = (dot + suffix) if dot and len(suffix) <= 10 else ""
        name = name[: UPLOAD_NAME_CHARS - len(suffix)].rstrip(" .") + suffix
    return name


# -- sessions --------------------------------------------------------------------------------------
@router.get("/sessions", response_model=SessionList, summary="Stored sessions, most recently active first")
def list_sessions(
    limit: Annotated[int | None, Query(ge=1, le=1000, description="How many (default: chat.sessions_listed).")] = None,
    state: ServerState = State, user: Principal = User,
) -> Any:
    orch = state.orch()
    return SessionList(sessions=[_session_out(s, user) for s in orch.list_sessions(limit, user=user.id)])


@router.get("/sessions/{session_id}", response_model=SessionDetail, summary="A session with its turns and feedback")
def get_session(
    session_id: SessionId,
    last: Annotated[int | None, Query(ge=1, le=100_000, description="Only the last N turns.")] = None,
    state: ServerState = State, user: Principal = User,
) -> Any:
    orch = state.orch()
    info = _find_session(orch, user, session_id)
    turns = [replace(t, session_id=session_id) for t in orch.conversations.turns(info.id, last=last)]
    feedback = orch.conversations.feedback_for(info.id)
    return SessionDetail(session=_session_out(info, user), turns=turns,
                         feedback=[FeedbackOut(**{**f.as_dict(), "session_id": session_id}) for f in feedback])


@router.delete("/sessions/{session_id}", response_model=Deleted, dependencies=[Writes], summary="Delete a session and its turns")
def delete_session(session_id: SessionId, state: ServerState = State, user: Principal = User) -> Any:
    orch = state.orch()
    info = _find_session(orch, user, session_id)
    return Deleted(deleted=orch.delete_session(info.id, user=user.id), id=session_id)


# -- feedback --------------------------------------------------------------------------------------
@router.post("/feedback", response_model=FeedbackOut, responses=CONFLICT,
             summary="Judge a turn: good, bad (with a reason) or fix (with the expected answer), as /good /bad /fix do")
def feedback(body: FeedbackIn, state: ServerState = State, user: Principal = User) -> Any:
    orch = state.orch()
    info = _find_session(orch, user, body.session_id)
    shown = body.session_id
    if info.turns == 0:
        raise ApiError(409, f"Session {shown!r} has no answer to judge yet: send a message in it first.", "no_turns", "session_id")
    if body.turn is not None:
        numbers = {t.number for t in orch.conversations.turns(info.id)}
        if body.turn not in numbers:
            raise ApiError(404, f"Session {shown!r} has no turn {body.turn} (its turns: {min(numbers)}-{max(numbers)}); "
                                f"GET /v1/evo/sessions/{shown} shows them.", "not_found", "turn")
    fb = orch.feedback(info.id, body.kind, reason=body.reason, text=body.text, turn=body.turn, user=user.id)
    return FeedbackOut(**{**fb.as_dict(), "session_id": shown})


# -- memories --------------------------------------------------------------------------------------
@router.get("/memories", response_model=MemoryList, summary="The most recent memories")
def list_memories(
    type: Annotated[MemoryTypeName | None, Query(description="Only this type.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")] = 20,
    state: ServerState = State, user: Principal = User,
) -> Any:
    with _memory(state.orch()) as manager:
        rows = manager.store.list(type, limit, user=user.id)
    return MemoryList(memories=[MemoryOut(**_memory_out(m, user)) for m in rows])


@router.post("/memories/search", response_model=MemorySearchOut, summary="Memories closest to a query (semantic, re-ranked)")
def search_memories(body: MemorySearchIn, state: ServerState = State, user: Principal = User) -> Any:
    with _memory(state.orch()) as manager:
        hits = manager.store.search(body.query, body.top_k, body.type, user=user.id)
    return MemorySearchOut(query=body.query, hits=[
        MemoryHitOut(**_memory_out(h.memory, user), similarity=round(h.similarity, 4), score=None if h.score is None else round(h.score, 4))
        for h in hits])


@router.post("/memories", response_model=MemoryAdded, dependencies=[Writes],
             summary="Remember a text (as /remember and `evo memory add`; duplicates are merged)")
def add_memory(body: MemoryAddIn, state: ServerState = State, user: Principal = User) -> Any:
    with _memory(state.orch()) as manager:
        result = manager.store.add_memory(body.text, memory_type=body.type, source="api", user=user.id)
    return MemoryAdded(**result.as_dict())


@router.get("/memories/export", dependencies=[Writes], response_class=Response,
            summary="Every memory with all metadata as JSONL (as `evo memory export`; re-import with POST /v1/evo/memories/import)",
            responses={200: {"description": "One JSON object per line.", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
def export_memories(state: ServerState = State, user: Principal = User) -> Response:
    orch = state.orch()
    with _private_tempdir(orch) as folder:
        path = Path(folder) / "memories.jsonl"
        with _memory(orch) as manager:
            count = manager.store.export_jsonl(path, user=user.id)
        data = path.read_bytes()
    return Response(data, media_type="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="evo-memories.jsonl"', "X-Evo-Count": str(count)})


IMPORT_BODY = {
    "required": True,
    "description": "A JSONL file written by `evo memory export` or GET /v1/evo/memories/export: the raw body, or a multipart upload in `file`.",
    "content": {
        "application/x-ndjson": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
    },
}
RAW_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines", "application/json",
             "text/plain", "application/octet-stream", "")


async def _jsonl_body(request: Request) -> bytes:
    """The import's bytes: the raw body (JSONL), or the `file` part of a multipart upload."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form()
        except Exception as exc:  # a malformed multipart body
            raise ApiError(400, f"The multipart body could not be read ({exc}). Upload the JSONL file in a part named `file`.",
                           "invalid_multipart", "file") from exc
        try:
            part = form.get("file")
            if not isinstance(part, StarletteUploadFile):
                raise ApiError(400, "The multipart body has no file part named `file`: upload the JSONL file as `file`.", "missing_file", "file")
            data = await part.read()
        finally:
            await form.close()
    elif ctype in RAW_TYPES:
        data = await request.body()
    else:
        raise ApiError(400, f"Unsupported content type {ctype!r}: send the JSONL as application/x-ndjson, or as multipart/form-data "
                            "with the file in `file`.", "unsupported_media_type")
    if not data.strip():
        raise ApiError(400, "The body is empty: send the JSONL file written by GET /v1/evo/memories/export.", "empty_body")
    return data


@router.post("/memories/import", response_model=ImportOut, dependencies=[Writes], openapi_extra={"requestBody": IMPORT_BODY},
             summary="Restore memories from a JSONL export (ids and metadata kept); bad lines are reported and skipped")
def import_memories(data: bytes = Depends(_jsonl_body), state: ServerState = State, user: Principal = User) -> Any:
    orch = state.orch()
    with _private_tempdir(orch) as folder:
        path = Path(folder) / "import.jsonl"
        path.write_bytes(data)
        with _memory(orch) as manager:
            try:
                report = manager.store.import_jsonl(path, user=user.id)  # as this user's, whoever the file names
            except EvoError:
                raise
            except (ValueError, TypeError) as exc:  # a record the store itself refused (e.g. a nested metadata value)
                raise ApiError(400, f"The memory store refused the records: {exc}. Metadata values must be strings, numbers or "
                                    "booleans, as an export writes them.", "invalid_records") from exc
    return ImportOut(imported=report.imported, skipped=[SkippedLine(line=n, reason=r) for n, r in report.skipped])


@router.post("/memories/forget", response_model=ForgetOut, dependencies=[Writes],
             summary="Forget the memory with this id, or the memories matching a query (as /forget and `evo memory forget`)")
def forget_memories(body: ForgetIn, state: ServerState = State, user: Principal = User) -> Any:
    with _memory(state.orch()) as manager:
        targets = manager.find(body.query, user=user.id)
        deleted = 0 if body.dry_run or not targets else manager.forget([m.id for m in targets], user=user.id)
    return ForgetOut(deleted=deleted, ids=[m.id for m in targets], memories=[MemoryOut(**_memory_out(m, user)) for m in targets])


MemoryId = Annotated[str, PathParam(min_length=1, max_length=200, description="The memory's id (GET /v1/evo/memories lists them).")]


def _no_memory(memory_id: str) -> ApiError:
    return ApiError(404, f"No memory with id {memory_id!r}. GET /v1/evo/memories lists them, POST /v1/evo/memories/search "
                         "finds them; POST /v1/evo/memories/forget takes a query.", "not_found", "memory_id")


@router.get("/memories/{memory_id}", response_model=MemoryOut, summary="One memory by its exact id (an answer's memory_ids name them)")
def get_memory(memory_id: MemoryId, state: ServerState = State, user: Principal = User) -> Any:
    with _memory(state.orch()) as manager:
        found = manager.store.get(memory_id, user=user.id)
    if found is None:  # also another user's: the same answer as for an id that does not exist
        raise _no_memory(memory_id)
    return MemoryOut(**_memory_out(found, user))


@router.delete("/memories/{memory_id}", response_model=Deleted, dependencies=[Writes], summary="Forget one memory by its exact id")
def delete_memory(memory_id: MemoryId, state: ServerState = State, user: Principal = User) -> Any:
    with _memory(state.orch()) as manager:
        if manager.store.get(memory_id, user=user.id) is None:
            raise _no_memory(memory_id)
        deleted = manager.forget([memory_id], user=user.id)
    return Deleted(deleted=deleted > 0, id=memory_id)


# -- knowledge -------------------------------------------------------------------------------------
@router.post("/knowledge/documents", response_model=UploadOut, dependencies=[Admin],
             summary="Upload one document (.md .txt .html .pdf …) into the knowledge store (as `evo knowledge add`)")
def upload_document(
    file: Annotated[UploadFile, File(description="The document; saved under $EVO_HOME/uploads with a safe file name.")],
    state: ServerState = State,
) -> Any:
    from evo_tr.knowledge.documents import SUPPORTED

    orch = state.orch()
    name = safe_upload_name(file.filename)
    if not name:
        raise ApiError(400, "The upload has no usable file name: send it with a name such as notes.md.", "invalid_file_name", "file")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        raise ApiError(400, f"Unsupported file type {suffix or '(none)'} in {name!r}: upload one of {', '.join(SUPPORTED)}.",
                       "unsupported_file_type", "file")
    limit = int(orch.settings.knowledge.max_file_mb * 2**20)
    folder = uploads_dir(orch)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    token = secrets.token_hex(4)
    partial = folder / f".{name}.{token}.partial"
    backup = folder / f".{name}.{token}.previous"
    try:
        size = 0
        with open(partial, "wb") as out:
            while chunk := file.file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"The file is larger than knowledge.max_file_mb ({orch.settings.knowledge.max_file_mb:g} MB): "
                                        "split it, or raise that setting in evo.toml.", "file_too_large", "file")
                out.write(chunk)
        with _knowledge(orch) as store:
            orphans = store.collect_orphans()  # what an interrupted earlier add left behind
            had_previous = target.exists()
            if had_previous:
                target.replace(backup)
            partial.replace(target)
            try:
                report = store.add_file(target)
            except BaseException:
                _restore_upload(target, backup, had_previous)
                raise
            if report.status == "skipped":
                _restore_upload(target, backup, had_previous)
                raise ApiError(400, f"{name} was not added: {report.reason}. Upload a readable {', '.join(SUPPORTED)} file.",
                               "document_unreadable", "file")
            backup.unlink(missing_ok=True)
    finally:
        partial.unlink(missing_ok=True)
    return UploadOut(path=report.path, status=report.status, chunks=report.chunks, reason=report.reason, orphans_removed=orphans)


def _restore_upload(target: Path, backup: Path, had_previous: bool) -> None:
    """Put back the file an upload replaced (its passages are still the live ones), or drop the refused upload."""
    if had_previous and backup.exists():
        backup.replace(target)
    else:
        target.unlink(missing_ok=True)


@router.get("/knowledge/documents", response_model=DocumentList, summary="Your documents and the knowledge pack's version")
def list_documents(state: ServerState = State) -> Any:
    with _knowledge(state.orch()) as store:
        docs = store.documents()
        stats = store.stats()
    return DocumentList(pack_version=stats["pack_version"], pack_entries=stats["pack_entries"], documents=[DocumentOut(**d.as_dict()) for d in docs])


@router.delete("/knowledge/documents", response_model=DocumentsRemoved, dependencies=[Admin],
               summary="Remove a document, or every document under a folder (the pack stays)")
def remove_documents(
    path: Annotated[str, Query(min_length=1, max_length=4096, description="A stored path as GET /v1/evo/knowledge/documents lists it, "
                                                                         "or a folder; a relative path is taken inside $EVO_HOME/uploads.")],
    state: ServerState = State,
) -> Any:
    orch = state.orch()
    if "\x00" in path or path.startswith("~"):
        raise ApiError(400, "Give the document's path as GET /v1/evo/knowledge/documents lists it (absolute, no ~), or a file name "
                            "inside $EVO_HOME/uploads.", "invalid_path", "path")
    folder = uploads_dir(orch).resolve()
    given = Path(path)
    target = given if given.is_absolute() else folder / given
    with _knowledge(orch) as store:
        removed = store.remove(str(target))
    if not removed:
        raise ApiError(404, f"No document {path!r} in the knowledge store. GET /v1/evo/knowledge/documents lists the stored paths.",
                       "not_found", "path")
    for item in removed:  # our own copy of an uploaded file goes too
        p = Path(item)
        if p.parent == folder:
            p.unlink(missing_ok=True)
    return DocumentsRemoved(removed=removed)


@router.post("/knowledge/search", response_model=KnowledgeSearchOut, summary="Closest reference passages with their sources")
def search_knowledge(body: KnowledgeSearchIn, state: ServerState = State) -> Any:
    with _knowledge(state.orch()) as store:
        hits = store.search(body.query, body.top_k, include_pack=not body.documents_only)
        chosen = {h.memory.id for h in store.relevant(body.query, hits)}
    return KnowledgeSearchOut(query=body.query, hits=[_passage_out(h.memory, round(h.similarity, 4), h.memory.id in chosen) for h in hits])


def _passage_out(memory, similarity: float | None = None, relevant: bool | None = None) -> PassageOut:
    meta = memory.extra
    return PassageOut(
        id=memory.id, label=str(meta.get("label", "")), kind=str(meta.get("kind", "")), similarity=similarity, relevant=relevant,
        text=memory.text, **{k: (str(meta[k]) if k in ("source", "section", "entry") else _int(meta[k], 0))
                             for k in ("source", "section", "line_start", "line_end", "entry") if meta.get(k) not in (None, "")},
    )


@router.get("/knowledge/passages/{passage_id}", response_model=PassageOut,
            summary="The passage a source came from: its text and where it is (as `evo knowledge show`)")
def get_passage(
    passage_id: Annotated[str, PathParam(min_length=1, max_length=300, description="A passage id, from a search hit or an answer's sources.")],
    state: ServerState = State,
) -> Any:
    with _knowledge(state.orch()) as store:
        found = store.passage(passage_id)
    if found is None:
        raise ApiError(404, f"No passage {passage_id!r} in the knowledge store (it may have been removed with its document); "
                       "POST /v1/evo/knowledge/search finds current ones.", "not_found", "passage_id")
    return _passage_out(found)


# -- route only ------------------------------------------------------------------------------------
@router.post("/route", response_model=RouteOut, summary="Which intent and expert a message would get (no answer is generated)")
def route(body: RouteIn, state: ServerState = State) -> Any:
    from evo_tr.memory.context import ContextBuffer
    from evo_tr.orchestrator import Session

    orch = state.orch()
    probe = Session("", ContextBuffer(2, 1, orch.engine.count_tokens))  # mode auto: the router decides, as in a new chat
    r = orch.route(probe, body.text, None)
    return RouteOut(intent=r.intent, confidence=r.confidence, expert=r.expert, adapter=r.adapter, fallback=r.fallback, source=r.source)


# -- adapters --------------------------------------------------------------------------------------
def _served_tag(orch, expert: str) -> str | None:
    return orch.adapter_versions.get(expert, "?") if expert in orch.engine.adapters() else None


@router.get("/adapters", response_model=AdapterList, summary="Every expert's adapter versions, which is active and which is served")
def list_adapters(state: ServerState = State) -> Any:
    from evo_tr.experts import registry

    orch = state.orch()
    reg = registry(orch.settings)
    rows = []
    for expert in reg.experts():
        active = reg.active(expert)
        packaged = reg.packaged(expert)
        served = _served_tag(orch, expert)
        for v in ([packaged] if packaged else []) + reg.versions(expert):
            try:
                scale = v.scale
            except EvoError:
                scale = None
            losses = (v.meta.get("metrics") or {}).get("valid_losses") or []
            last_loss = losses[-1][1] if losses and isinstance(losses[-1], (list, tuple)) and len(losses[-1]) > 1 else None
            examples = (v.meta.get("dataset") or {}).get("examples")
            rows.append(AdapterOut(
                expert=expert, version=v.tag, packaged=v.packaged, active=active is not None and active.path == v.path,
                served=served is not None and served == ("packaged" if v.packaged else v.tag), scale=scale,
                base_model=(v.meta.get("base") or {}).get("name"), examples=examples if isinstance(examples, int) else None,
                valid_loss=float(last_loss) if isinstance(last_loss, (int, float)) else None,
                created_at=str(v.meta["created_at"]) if v.meta.get("created_at") else None,
            ))
    return AdapterList(adapters=rows, hot_swap=bool(orch.engine.capabilities.lora_hot_swap))


def _known_expert(reg, expert: str) -> None:
    if expert not in reg.experts():
        known = ", ".join(reg.experts()) or "none yet (train one with `evo train tr_chat`)"
        raise ApiError(404, f"No expert {expert!r} has adapters. Experts: {known}; GET /v1/evo/adapters lists their versions.",
                       "not_found", "expert")


def _check_compatible(orch, target) -> None:
    """ApiError(409) when `target` was trained on another base than this server's."""
    from evo_tr.experts import base_info
    from evo_tr.experts.registry import check_base

    base = base_info(orch.settings, orch.model_name)
    try:
        check_base(target, base.name, base.sha256)
    except EvoError as exc:
        hint = f" {exc.hint}" if exc.hint else ""
        raise ApiError(409, f"{exc.message}{hint}", "adapter_incompatible", "version") from exc


def _attach_live(orch, expert: str, target) -> tuple[bool, str]:
    """Serve `target` (an AdapterVersion, or None = the base model) for `expert` in the running engine.
    Raises ApiError(409) when this server's base model cannot use it; returns (live, note) otherwise."""
    engine = orch.engine
    if target is None:
        engine.detach_adapter(expert)
        orch.adapter_versions.pop(expert, None)
        orch.adapter_problems.pop(expert, None)
        return True, ""
    if not engine.capabilities.lora_hot_swap:
        return False, (f"The {engine.name} backend serves no LoRA adapters: the base model keeps answering for {expert}. "
                       "Serve with engine.backend = \"llama_cpp\" to use it.")
    _check_compatible(orch, target)
    engine.attach_adapter(target)  # on the engine's owner thread, between generations
    orch.adapter_versions[expert] = "packaged" if target.packaged else target.tag
    orch.adapter_problems.pop(expert, None)
    return True, ""


@router.post("/adapters/{expert}/activate", response_model=AdapterChange, dependencies=[Admin], responses=CONFLICT,
             summary="Make a version the active one (as `evo adapters activate`) and serve it in this server")
def activate_adapter(expert: ExpertName, body: ActivateIn, state: ServerState = State) -> Any:
    from evo_tr.experts import registry

    orch = state.orch()
    reg = registry(orch.settings)
    _known_expert(reg, expert)
    target = None
    if body.version != "none":
        try:
            target = reg.get(expert, body.version)
        except EvoError as exc:
            raise ApiError(404, f"{exc.message} {exc.hint or ''}".strip(), "not_found", "version") from exc
    if reg.publisher is not None:  # a vLLM-style remote engine: it must serve the version before this server can attach it
        if target is not None:
            _check_compatible(orch, target)  # before anything is sent: the remote never gets another base's adapter
        try:
            reg.publisher.switch(expert, target)
        except EvoError as exc:
            raise ApiError(502, f"{exc.message} {exc.hint or ''}".strip(), "remote_refused", "version") from exc
    live, note = _attach_live(orch, expert, target)  # first: an adapter this server cannot load leaves the registry as it was
    reg.activate(expert, "none" if target is None else target.tag, publish=False)
    log.info("adapter %s -> %s (live %s)", expert, body.version, live, extra={"event": "adapter_activate", "expert": expert})
    return AdapterChange(expert=expert, active=None if target is None else target.tag, live=live, served=_served_tag(orch, expert), note=note)


@router.post("/adapters/{expert}/rollback", response_model=AdapterChange, dependencies=[Admin], responses=CONFLICT,
             summary="Go back to the version active before the current one (as `evo adapters rollback`)")
def rollback_adapter(expert: ExpertName, state: ServerState = State) -> Any:
    from evo_tr.experts import registry

    orch = state.orch()
    reg = registry(orch.settings)
    _known_expert(reg, expert)
    try:
        target = reg.rollback(expert)
    except EvoError as exc:
        if isinstance(exc, RemoteEngineError):
            raise ApiError(502, f"{exc.message} {exc.hint or ''}".strip(), "remote_refused", "expert") from exc
        raise ApiError(409, f"{exc.message} {exc.hint or ''}".strip(), "no_earlier_version", "expert") from exc
    try:
        live, note = _attach_live(orch, expert, target)
    except ApiError as exc:  # the registry already moved back; this server keeps what it served
        live, note = False, f"{exc.message} This server keeps serving what it served before; restart it with the matching model."
    return AdapterChange(expert=expert, active=None if target is None else target.tag, live=live, served=_served_tag(orch, expert), note=note)


# -- nights ----------------------------------------------------------------------------------------
def _night_days(orch) -> list[str]:
    """Days with a report (as `evo report` finds them; only day-shaped names are served), oldest first."""
    return [d for d in report_days(orch.settings) if re.fullmatch(DAY_PATTERN[1:-1], d)]


def _charts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png") if re.fullmatch(CHART_PATTERN[1:-1], p.name) and p.is_file())


def _night_folder(orch, day: str) -> Path:
    days = _night_days(orch)
    if day not in days:
        known = f"Reports exist for: {', '.join(days[-10:])}" if days else "No report exists yet: `evo night` writes one"
        raise ApiError(404, f"No night report for {day}. {known} (GET /v1/evo/nights lists them).", "not_found", "day")
    return orch.settings.reports_dir / day


@router.get("/nights", response_model=NightList, dependencies=[AdminRead], summary="Days with a night report, newest first")
def list_nights(state: ServerState = State) -> Any:
    orch = state.orch()
    folder = orch.settings.reports_dir
    return NightList(nights=[NightOut(day=d, charts=_charts(folder / d)) for d in reversed(_night_days(orch))])


@router.get("/nights/{day}", response_model=NightReport, dependencies=[AdminRead], summary="A night report's JSON (as `evo report DAY --json`) and Markdown")
def get_night(day: Day, state: ServerState = State) -> Any:
    folder = _night_folder(state.orch(), day)
    try:
        body = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(404, f"The report for {day} cannot be read ({exc}); rerun `evo night --date {day}` to write it again.",
                       "not_found", "day") from exc
    if not isinstance(body, dict):
        body = {"report": body}
    md = folder / "report.md"
    return NightReport(day=day, charts=_charts(folder), report=body, markdown=md.read_text(encoding="utf-8") if md.is_file() else None)


@router.get("/nights/{day}/charts/{name}", response_class=FileResponse, dependencies=[AdminRead], summary="A night report's chart (PNG)",
            responses={200: {"description": "The chart.", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
def get_chart(
    day: Day,
    name: Annotated[str, PathParam(pattern=CHART_PATTERN, description="Chart file name, e.g. intents.png (listed in the report's charts).")],
    state: ServerState = State,
) -> FileResponse:
    folder = _night_folder(state.orch(), day)
    path = folder / name
    if name not in _charts(folder) or path.resolve().parent != folder.resolve():
        raise ApiError(404, f"No chart {name!r} in the report for {day}. Charts there: {', '.join(_charts(folder)) or 'none'}.",
                       "not_found", "name")
    return FileResponse(path, media_type="image/png")


@router.get("/schedule", response_model=ScheduleOut, summary="Whether the nightly run is installed, and when (as `evo schedule status`)")
def schedule_status() -> Any:
    from evo_tr.lifecycle import schedule

    kind = schedule.default_kind()
    st = schedule.status(kind)
    return ScheduleOut(kind=kind, installed=bool(st.get("installed")), at=st.get("at"), entry=st.get("entry"),
                       files=list(st.get("files") or []), problem=st.get("problem"))


# -- training proposals ----------------------------------------------------------------------------
@router.get("/proposals", response_model=ProposalList, dependencies=[AdminRead], summary="Training-data proposals from the night runs (as `evo data review`)")
def list_proposals(
    status: Annotated[Literal["pending", "accepted", "rejected"] | None, Query(description="Only this status.")] = None,
    expert: Annotated[str | None, Query(max_length=64, description="Only this expert's.")] = None,
    state: ServerState = State,
) -> Any:
    rows = state.orch().conversations.proposals(status=status, expert=expert)
    return ProposalList(proposals=[_proposal(p) for p in rows])


def _proposal(p: dict[str, Any]) -> ProposalOut:
    messages = [ProposalMessage(role=str(m.get("role", "")), content=str(m.get("content", ""))) for m in p.get("messages") or [] if isinstance(m, dict)]
    return ProposalOut(**{**p, "messages": messages})


def _set_status(orch, ids: list[int], status: str) -> ProposalChange:
    store = orch.conversations
    unknown = store.unknown_proposals(ids)
    if unknown:
        raise ApiError(404, f"No proposal with id {', '.join(map(str, unknown))}. GET /v1/evo/proposals?status=pending lists them.",
                       "not_found", "ids")
    wanted = sorted(set(ids))
    changed = store.set_proposal_status(wanted, status)
    return ProposalChange(changed=changed, status=status, ids=wanted, pending=len(store.proposals(status="pending")))


@router.post("/proposals/accept", response_model=ProposalChange, dependencies=[Admin],
             summary="Accept proposals: the next retraining uses them (as `evo data review --accept`)")
def accept_proposals(body: ProposalIds, state: ServerState = State) -> Any:
    return _set_status(state.orch(), body.ids, "accepted")


@router.post("/proposals/reject", response_model=ProposalChange, dependencies=[Admin],
             summary="Reject proposals (as `evo data review --reject`)")
def reject_proposals(body: ProposalIds, state: ServerState = State) -> Any:
    return _set_status(state.orch(), body.ids, "rejected")


# -- users ---------------------------------------------------------------------------------------
class UserOut(BaseModel):
    name: str = Field(description="The user's name: what their data is stored under.")
    admin: bool = Field(description="May manage users, serve adapters, review proposals and read night reports.")
    created_at: str
    key_created_at: str = Field(description="When their current key was issued.")


class UserList(BaseModel):
    users: list[UserOut]
    owner_key: bool = Field(description="Whether EVO_API_KEY is set (it is the owner's key: an admin).")


class UserAddIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="1-32 letters, digits, '_' or '-' (stored lower-case, Turkish-aware).")
    admin: bool = Field(False, description="An admin (as `evo users add NAME --admin`).")


class UserKeyOut(BaseModel):
    user: UserOut
    key: str = Field(description="The user's key: shown this once, stored only as its SHA-256. They send `Authorization: Bearer KEY`.")


class ErasedOut(BaseModel):
    user: str = Field(description="Whose data was erased.")
    sessions: int
    turns: int
    feedback: int
    proposals: int = Field(description="Training proposals made from their turns.")
    preference_pairs: int
    queued_memory_writes: int
    memories: int
    scrubbed: list[str] = Field(description="Files rebuilt so the deleted rows leave no bytes behind (VACUUM, WAL emptied).")
    notices: list[str]


class UserRemoved(BaseModel):
    name: str
    removed: bool = Field(description="The key no longer works.")
    erased: ErasedOut | None = Field(description="What of their data was erased (null with keep_data).")


class MeOut(BaseModel):
    name: str = Field(description="Your user name (owner: EVO_API_KEY, or the one user of a server without keys).")
    admin: bool
    via: str = Field(description="How the request proved who it is: user-key, api-key or loopback.")
    sessions: int = Field(description="Your stored sessions.")
    memories: int = Field(description="Your memories.")


def _user_out(u) -> UserOut:
    return UserOut(**u.as_dict())


def _erase(state: ServerState, user_id: str) -> ErasedOut:
    """Erase one user's sessions, turns, feedback, proposals and memories in this server, then scrub the files."""
    from evo_tr.users.erase import erase_user_data

    orch = state.orch()
    try:
        orch.flush(timeout=30)  # their writes already queued land first, and are erased with the rest
    except Exception as exc:
        log.info("memory writer not idle before an erase: %s", exc)
    if orch.memory is None:
        done = erase_user_data(orch.settings, user_id, orch.conversations)
    else:
        with _memory(orch) as manager:  # held: no request of this server reads the store while it is rebuilt
            done = erase_user_data(orch.settings, user_id, orch.conversations, manager.store)
    orch.forget_sessions(user_id)
    return ErasedOut(**done.as_dict())


@router.get("/users", response_model=UserList, dependencies=[Admin], summary="The server's users (admin only; as `evo users list`)")
def list_users(state: ServerState = State) -> Any:
    return UserList(users=[_user_out(u) for u in state.users.list()], owner_key=state.api_key is not None)


@router.post("/users", response_model=UserKeyOut, dependencies=[Admin], responses=CONFLICT,
             summary="Add a user and issue their key, shown once (admin only; as `evo users add`)")
def add_user(body: UserAddIn, state: ServerState = State) -> Any:
    try:
        user, key = state.users.add(body.name, admin=body.admin)
    except EvoError as exc:
        status = 409 if "exists" in exc.message else 400
        raise ApiError(status, f"{exc.message} {exc.hint or ''}".strip(), "user_exists" if status == 409 else "invalid_name", "name") from exc
    log.info("user %s added (admin %s)", user.name, user.admin, extra={"event": "user_added"})
    return UserKeyOut(user=_user_out(user), key=key)


UserName = Annotated[str, PathParam(min_length=1, max_length=64, description="A user's name (GET /v1/evo/users lists them).")]


def _known_user(state: ServerState, name: str):
    user = state.users.get(name)
    if user is None:
        raise ApiError(404, f"No user named {name!r}. GET /v1/evo/users lists them.", "not_found", "name")
    return user


@router.post("/users/{name}/key", response_model=UserKeyOut, dependencies=[Admin],
             summary="Give a user a new key; the old one stops working at once (admin only; as `evo users key`)")
def rotate_user_key(name: UserName, state: ServerState = State) -> Any:
    _known_user(state, name)
    user, key = state.users.rotate(name)
    return UserKeyOut(user=_user_out(user), key=key)


@router.delete("/users/{name}", response_model=UserRemoved, dependencies=[Admin],
               summary="Remove a user: their key stops working, their data is erased unless keep_data (admin only; as `evo users remove`)")
def remove_user(
    name: UserName,
    keep_data: Annotated[bool, Query(description="Keep their sessions and memories (adding the name again gives them back).")] = False,
    state: ServerState = State,
) -> Any:
    user = _known_user(state, name)
    state.users.remove(user.name)
    erased = None if keep_data else _erase(state, user.id)
    log.info("user %s removed (data %s)", user.name, "kept" if keep_data else "erased", extra={"event": "user_removed"})
    return UserRemoved(name=user.name, removed=True, erased=erased)


@router.get("/me", response_model=MeOut, summary="Who this request is, and how much of your data is stored")
def whoami(state: ServerState = State, user: Principal = User) -> Any:
    orch = state.orch()
    sessions = len(orch.conversations.list_sessions(1_000_000, user=user.id))
    memories = 0
    if orch.memory is not None:
        with _memory(orch) as manager:
            memories = len(manager.store.all(user=user.id))
    return MeOut(name=user.name, admin=user.admin, via=user.via, sessions=sessions, memories=memories)


@router.delete("/me", response_model=ErasedOut, dependencies=[Writes],
               summary="Erase all your data: sessions, turns, feedback, memories; the files are scrubbed after (other users' stay)")
def erase_me(
    confirm: Annotated[str, Query(min_length=1, max_length=64, description="Your user name (GET /v1/evo/me shows it): the erase runs only when it matches.")],
    state: ServerState = State, user: Principal = User,
) -> Any:
    from evo_tr.text import turkish_lower

    if turkish_lower(confirm.strip()) != user.name:
        raise ApiError(400, f"confirm must be your user name ({user.name!r}) to erase all your data; nothing was deleted.",
                       "confirmation_mismatch", "confirm")
    return _erase(state, user.id)


__all__ = ["router", "safe_upload_name", "uploads_dir"]
