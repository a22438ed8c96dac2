"""The OpenAI-compatible endpoints: /v1/models, /v1/chat/completions (streaming or not), /v1/embeddings.

A chat request runs one orchestrator turn on a thread of its own (`TurnRunner`) and hands its events to
the event loop; all generation still goes through the engine's single owner thread (FIFO, bounded: a full
queue is 503 with Retry-After). A client that disconnects, or a request past serve.request_timeout_s, sets
the turn's cancel flag and the answer stops at the next token.

Conversations: the client's messages are the conversation (OpenAI clients are stateless and send all of
it); the server never adds its own stored history. Routing and recall run on the last user message. With
a session id (X-Session-Id header or metadata.session_id) the turn is stored in that session like a chat
turn, so the night learns from it and feedback can name it; without one nothing is kept. Every turn is the
request's user's (deps.get_user): their session (stored under their prefix), their memories recalled, and
the facts it states stored as theirs.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import threading
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from evo_tr.engine import Message
from evo_tr.engine.remote import RAW_HEADER
from evo_tr.engine.worker import Busy
from evo_tr.errors import EvoError
from evo_tr.events import Done, Token, TurnStats
from evo_tr.serve.deps import State, User, dumps
from evo_tr.serve.errors import ApiError, from_evo
from evo_tr.serve.schemas import (
    SESSION_ID_PATTERN,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    EvoInfo,
    ModelCard,
    ModelList,
    Usage,
)
from evo_tr.serve.state import BASE_ID, EMBEDDING_ID, MODEL_ID, ServerState
from evo_tr.users import Principal, session_prefix

log = logging.getLogger(__name__)
router = APIRouter(tags=["openai"])

_EVENT, _END, _ERROR = "event", "end", "error"
DISCONNECT_POLL_S = 0.25  # a client that left while its answer is computed (non-streaming, or before the first token)
SSE_RESPONSE = {200: {"description": "A chat.completion, or with stream=true a text/event-stream of chat.completion.chunk events ending in `data: [DONE]`.",
                      "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


# -- models ----------------------------------------------------------------------------------------
@router.get("/v1/models", response_model=ModelList, summary="evo-tr, evo-tr/base, evo-tr/EXPERT per active expert, evo-tr-e5")
def list_models(state: ServerState = State) -> ModelList:
    created = int(state.started)
    return ModelList(data=[ModelCard(id=m, created=created) for m in state.model_ids()])


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, summary="One model")
def get_model(model_id: str, state: ServerState = State) -> ModelCard:
    if model_id not in state.model_ids():
        raise ApiError(404, f"The model {model_id!r} does not exist; GET /v1/models lists them.", "model_not_found", "model")
    return ModelCard(id=model_id, created=int(state.started))


# -- chat ------------------------------------------------------------------------------------------
class TurnRunner:
    """One orchestrator turn on its own thread; its events reach the event loop through an asyncio queue."""

    def __init__(self, start_turn) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.cancel = threading.Event()
        self._next_check = 0.0
        self._start_turn = start_turn
        threading.Thread(target=self._run, name="evo-serve-turn", daemon=True).start()

    def _push(self, item) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _run(self) -> None:
        try:
            for event in self._start_turn(self.cancel):
                self._push((_EVENT, event))
        except BaseException as exc:  # handed to the request, which answers with it
            self._push((_ERROR, exc))
        else:
            self._push((_END, None))

    async def next(self, deadline: float, request: Request | None = None):
        """The next (kind, value). Past the deadline, or once the client has gone (checked every
        DISCONNECT_POLL_S while waiting), the turn is cancelled and this waits for its Done."""
        while not self.cancel.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if request is not None and now >= self._next_check:  # tokens may keep coming: check by time, not by silence
                self._next_check = now + DISCONNECT_POLL_S
                if await request.is_disconnected():
                    log.info("client went away: the answer stops at the next token")
                    break
            try:
                return await asyncio.wait_for(self.queue.get(), min(deadline - now, DISCONNECT_POLL_S))
            except asyncio.TimeoutError:
                continue
        self.cancel.set()
        return await self.queue.get()


def _check(body: ChatCompletionRequest, state: ServerState, session_header: str | None) -> dict[str, Any]:
    """Everything about the request that can be wrong, checked before the turn starts."""
    cfg = state.settings.serve
    problem = body.unsupported()
    if problem:
        raise ApiError(400, problem[1], "unsupported_parameter", problem[0])
    expert = state.expert_for(body.model)
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None and max_tokens > cfg.max_tokens:
        raise ApiError(400, f"max_tokens {max_tokens} is above this server's limit of {cfg.max_tokens} (serve.max_tokens).", "invalid_value", "max_tokens")
    if len(body.messages) > cfg.max_messages:
        raise ApiError(400, f"{len(body.messages)} messages; at most {cfg.max_messages} (serve.max_messages).", "too_many_messages", "messages")
    texts = [m.text() for m in body.messages]
    for i, text in enumerate(texts):
        if len(text) > cfg.max_message_chars:
            raise ApiError(400, f"Message {i} has {len(text)} characters; at most {cfg.max_message_chars} (serve.max_message_chars).",
                           "message_too_long", f"messages.{i}.content")
    last = body.messages[-1]
    if last.role != "user" or not texts[-1].strip():
        raise ApiError(400, "The last message must be a non-empty user message: it is what the assistant answers.", "invalid_messages", "messages")
    history = [Message("system" if m.role == "developer" else m.role, t) for m, t in zip(body.messages[:-1], texts[:-1])]
    session_id = session_header or (body.metadata or {}).get("session_id")
    if session_id is not None:
        if not re.match(SESSION_ID_PATTERN, session_id):
            raise ApiError(400, "A session id is 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.",
                           "invalid_session_id", "metadata.session_id")
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    overrides = {"temperature": body.temperature, "top_p": body.top_p, "max_tokens": max_tokens, "stop": stop, "seed": body.seed}
    return {"expert": expert, "history": history, "message": texts[-1], "session_id": session_id,
            "overrides": {k: v for k, v in overrides.items() if v is not None}}


def _evo_info(stats: TurnStats, orch, stored: bool, shown_session: str | None = None) -> EvoInfo:
    return EvoInfo(
        intent=stats.intent, confidence=round(stats.confidence, 4), expert=stats.expert, adapter=stats.adapter,
        adapter_version=orch.adapter_versions.get(stats.adapter or "") if stats.adapter else None, route_source=stats.route_source,
        memory_ids=stats.memory_ids, sources=stats.sources, session_id=(shown_session or stats.session_id) if stored else None,
        turn=stats.turn if stored else None,
        e2e_ttft_ms=stats.e2e_ttft_ms, overhead_ms=round(stats.overhead_ms, 2), queue_ms=stats.queue_ms, notices=stats.notices,
    )


def _usage(stats: TurnStats) -> Usage:
    return Usage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens, total_tokens=stats.prompt_tokens + stats.completion_tokens)


def _finish_reason(stats: TurnStats) -> str:
    return "length" if stats.finish_reason in ("length", "interrupted") else "stop"


def _failed(stats: TurnStats) -> ApiError:
    if stats.error and "prompt" in stats.error.lower() and "token" in stats.error.lower():
        return ApiError(400, f"The conversation does not fit the model's context window: {stats.error}", "context_length_exceeded", "messages")
    return ApiError(500, f"The answer failed: {stats.error}. The server log has the details.", "generation_failed")


def _raise_for(exc: BaseException, state: ServerState):
    if isinstance(exc, Busy):
        state.metrics.rejected.inc()
    if isinstance(exc, EvoError):
        raise from_evo(exc)
    raise exc


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=SSE_RESPONSE, summary="Chat (OpenAI-compatible)")
async def chat_completions(body: ChatCompletionRequest, request: Request, state: ServerState = State, user: Principal = User,
                           x_session_id: str | None = Header(None, pattern=SESSION_ID_PATTERN, description="Store the turns in this session.")):
    received = time.perf_counter()
    orch = state.orch()
    req = _check(body, state, x_session_id)
    if request.headers.get(RAW_HEADER):
        return await _raw_completion(body, req, state, orch)
    info = request.state.evo
    info.update({"model": body.model, "stream": body.stream, "session": req["session_id"], "messages": len(body.messages)})
    if state.settings.serve.log_content:
        info["content"] = req["message"]
    stored = req["session_id"] is not None
    shown = req["session_id"]
    session_key = session_prefix(user.id) + shown if stored else None  # the user's own namespace of session ids
    metrics = state.metrics

    def start(cancel: threading.Event):
        return orch.turn(session_key, req["message"], expert=req["expert"], overrides=req["overrides"], history=req["history"],
                         record=stored, cancel=cancel, user=user.id)

    metrics.generating.inc()
    runner = TurnRunner(start)
    deadline = time.monotonic() + state.settings.serve.request_timeout_s
    # Wait for the first token (or the end) before answering: a full queue or a bad request is then still
    # a proper status code instead of an error in the middle of a 200 stream.
    first: list[str] = []
    done: TurnStats | None = None
    try:
        while True:
            kind, value = await runner.next(deadline, request)
            if kind == _ERROR:
                _raise_for(value, state)
            if kind == _END:
                raise ApiError(500, "The turn ended without an answer. The server log has the details.", "generation_failed")
            if isinstance(value, Token):
                first.append(value.text)
                metrics.ttft.observe(time.perf_counter() - received)
                break
            if isinstance(value, Done):
                done = value.stats
                break
    except BaseException:
        runner.cancel.set()
        metrics.generating.dec()
        raise
    if done is not None and done.error and not done.answer:
        metrics.generating.dec()
        raise _failed(done)

    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())

    def account(stats: TurnStats) -> None:
        metrics.tokens.labels("in").inc(stats.prompt_tokens)
        metrics.tokens.labels("out").inc(stats.completion_tokens)
        info.update({"intent": stats.intent, "expert": stats.expert, "prompt_tokens": stats.prompt_tokens,
                     "completion_tokens": stats.completion_tokens, "ttft_ms": stats.e2e_ttft_ms, "finish_reason": stats.finish_reason})

    if not body.stream:
        try:
            text = "".join(first)
            while done is None:
                kind, value = await runner.next(deadline, request)
                if kind == _ERROR:
                    _raise_for(value, state)
                if kind == _END:
                    break
                if isinstance(value, Token):
                    text += value.text
                elif isinstance(value, Done):
                    done = value.stats
        finally:
            runner.cancel.set()
            metrics.generating.dec()
        if done is None:
            raise ApiError(500, "The turn ended without an answer. The server log has the details.", "generation_failed")
        account(done)
        result = ChatCompletion(
            id=completion_id, created=created, model=body.model,
            choices=[Choice(index=0, message=AssistantMessage(content=done.answer or text), finish_reason=_finish_reason(done))],
            usage=_usage(done),
            evo=_evo_info(done, orch, stored, shown),
        )
        return JSONResponse(result.model_dump())

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        out: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if include_usage:
            out["usage"] = None
        out.update(extra)
        return f"data: {dumps(out)}\n\n"

    async def events():
        nonlocal done
        try:
            yield chunk({"role": "assistant", "content": ""})
            for piece in first:
                yield chunk({"content": piece})
            while done is None:
                kind, value = await runner.next(deadline)
                if kind == _ERROR:
                    why = str(value) if isinstance(value, EvoError) else "the answer failed; the server log has the details"
                    yield f"data: {dumps({'error': {'message': why, 'type': 'server_error', 'param': None, 'code': 'generation_failed'}})}\n\n"
                    break
                if kind == _END:
                    break
                if isinstance(value, Token):
                    yield chunk({"content": value.text})
                elif isinstance(value, Done):
                    done = value.stats
            if done is not None:
                account(done)
                yield chunk({}, _finish_reason(done), evo=_evo_info(done, orch, stored, shown).model_dump())
                if include_usage:
                    usage = _usage(done).model_dump()
                    yield f"data: {dumps({'id': completion_id, 'object': 'chat.completion.chunk', 'created': created, 'model': body.model, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        finally:  # also when the client went away: Starlette cancels this generator, the answer stops at the next token
            runner.cancel.set()
            metrics.generating.dec()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _raw_completion(body: ChatCompletionRequest, req: dict[str, Any], state: ServerState, orch) -> Any:
    """`X-Evo-Raw: 1`: this server as a plain engine for another EVO-TR that did the routing, memory and prompt
    assembly itself (engine.backend = "openai", engine.lora_naming = "evo"). The messages are the whole prompt: no
    routing, no memory or knowledge, no system prompt of its own, nothing stored; the model id names the base or the
    expert. Its answer is then the in-process engine's for the same prompt (tests/test_remote.py)."""
    from starlette.concurrency import run_in_threadpool

    from evo_tr.engine import generation_config

    expert = req["expert"]
    if expert is None:
        raise ApiError(400, f"{RAW_HEADER} needs a model id naming the base or an expert ({BASE_ID}, {MODEL_ID}/EXPERT): "
                            "nothing is routed in raw mode.", "invalid_value", "model")
    adapter = None if expert == "base" else expert
    messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages]
    config = generation_config(state.settings, **req["overrides"])
    try:
        completion = await run_in_threadpool(lambda: orch.engine.chat_stream(messages, config, adapter=adapter))
    except BaseException as exc:
        _raise_for(exc, state)
    completion_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    stats = completion.stats

    def usage() -> dict[str, int]:
        return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
                "total_tokens": stats.prompt_tokens + stats.completion_tokens}

    def finish() -> str:
        return "length" if stats.finish_reason in ("length", "interrupted") else "stop"

    if not body.stream:
        try:
            text = await run_in_threadpool(completion.text)
        finally:
            completion.close()
        state.metrics.tokens.labels("out").inc(stats.completion_tokens)
        return JSONResponse({"id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish()}],
                             "usage": usage()})
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(delta: dict[str, Any], reason: str | None = None) -> str:
        return "data: " + dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}) + "\n\n"

    def events():  # a plain iterator: Starlette runs it in its thread pool, the engine's worker does the decoding
        try:
            yield chunk({"role": "assistant", "content": ""})
            for piece in completion:
                yield chunk({"content": piece})
            yield chunk({}, finish())
            if include_usage:
                yield "data: " + dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": body.model,
                                        "choices": [], "usage": usage()}) + "\n\n"
            yield "data: [DONE]\n\n"
        finally:
            completion.close()
            state.metrics.tokens.labels("out").inc(stats.completion_tokens)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# -- embeddings ------------------------------------------------------------------------------------
@router.post("/v1/embeddings", response_model=EmbeddingList, summary="multilingual-e5-small vectors (384 dimensions)")
def embeddings(body: EmbeddingRequest, request: Request, state: ServerState = State) -> EmbeddingList:
    from evo_tr.embeddings import EMBEDDER_DIM, get_embedder

    cfg = state.settings.serve
    if body.model != EMBEDDING_ID:
        raise ApiError(404, f"The embedding model is {EMBEDDING_ID!r}; {body.model!r} does not exist.", "model_not_found", "model")
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts:
        raise ApiError(400, "input is empty: give a text or a list of texts.", "invalid_input", "input")
    if len(texts) > cfg.max_inputs:
        raise ApiError(400, f"{len(texts)} inputs; at most {cfg.max_inputs} per request (serve.max_inputs).", "too_many_inputs", "input")
    for i, text in enumerate(texts):
        if not text.strip():
            raise ApiError(400, f"input {i} is empty.", "invalid_input", "input")
        if len(text) > cfg.max_message_chars:
            raise ApiError(400, f"input {i} has {len(text)} characters; at most {cfg.max_message_chars}.", "input_too_long", "input")
    if body.dimensions not in (None, EMBEDDER_DIM):
        raise ApiError(400, f"{EMBEDDING_ID} has {EMBEDDER_DIM} dimensions; other sizes are not supported.", "unsupported_parameter", "dimensions")
    embedder = get_embedder()
    query = body.input_type == "query"
    vectors = np.atleast_2d(embedder.query(texts) if query else embedder.passage(texts)).astype("<f4")
    tokens = sum(embedder.token_count(t, query=query) for t in texts)
    request.state.evo.update({"model": body.model, "inputs": len(texts)})
    state.metrics.tokens.labels("in").inc(tokens)
    data = [Embedding(index=i, embedding=base64.b64encode(v.tobytes()).decode() if body.encoding_format == "base64" else [float(x) for x in v])
            for i, v in enumerate(vectors)]
    return EmbeddingList(data=data, model=EMBEDDING_ID, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))
