"""One engine owner: a worker thread is the only one that generates with (or changes) the loaded model.

mlx-lm's server pattern: request threads push onto a queue and one generator thread owns the model. Two
streams interleaved on one llama.cpp context would corrupt each other's KV cache and adapter state; here a
request waits its turn in a bounded FIFO queue (a full queue is a clear `Busy` error, not a hang), is
generated alone, and streams its pieces back through its own queue. A cancelled request (Ctrl-C, a dropped
HTTP client) stops within one token and frees the engine for the next one.

`OwnedEngine` puts the worker behind the ordinary Engine interface, so every caller (chat, ask, the night,
eval, bench, the server) goes through it without knowing. Tokenizing and rendering stay on the caller's
thread: they only read the vocabulary and the chat template.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from evo_tr.engine.base import AdapterLike, Completion, Engine, GenerationConfig, GenerationStats, Message
from evo_tr.errors import EvoError

log = logging.getLogger(__name__)

_STARTED, _TEXT, _DONE, _ERROR = "started", "text", "done", "error"


class Busy(EvoError):
    """The engine's queue is full: too many requests are waiting."""


@dataclass
class _Generate:
    messages: list[Message]
    config: GenerationConfig
    adapter: str | None
    cache_key: str | None
    submitted: float
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    stats: GenerationStats = field(default_factory=GenerationStats)
    pieces: int = 0  # pieces the worker has produced so far
    pieces_at_cancel: int | None = None


@dataclass
class _Call:
    fn: Callable[[Engine], Any]
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)


_STOP = object()
CANCEL_WAIT_S = 30.0  # a cancelled generation stops within one token; this only bounds a stuck backend


def _wait_done(out: queue.SimpleQueue, timeout: float) -> None:
    """Discard what a cancelled request still produces until the worker says it is done."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            kind, _ = out.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            log.warning("a cancelled generation did not stop within %.0f s", timeout)
            return
        if kind in (_DONE, _ERROR):
            return


class EngineWorker:
    """The thread that owns one engine; see the module docstring."""

    def __init__(self, engine: Engine, max_queue: int = 16) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="evo-engine", daemon=True)
        self._closed = False
        self._thread.start()

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, messages: Sequence[Message], config: GenerationConfig, *, adapter: str | None = None,
               cache_key: str | None = None) -> Completion:
        """Queue a generation; returns at once with a Completion that streams as the worker produces it."""
        request = _Generate(list(messages), config, adapter, cache_key, time.perf_counter())
        request.stats.adapter = adapter
        self._put(request)
        return Completion(self._stream(request), request.stats)

    def call(self, fn: Callable[[Engine], Any]) -> Any:
        """Run `fn(engine)` on the worker thread (attach an adapter, reset, logits) and return its result."""
        if threading.current_thread() is self._thread:
            return fn(self.engine)
        item = _Call(fn)
        self._put(item, block=True)
        kind, value = item.out.get()
        if kind == _ERROR:
            raise value
        return value

    def _put(self, item, block: bool = False) -> None:
        if self._closed:
            raise EvoError("The engine is closed.", "Start a new session (the model was unloaded).")
        try:
            self._queue.put(item, block=block, timeout=60 if block else None)
        except queue.Full:
            raise Busy(
                f"The engine is busy: {self.max_queue} requests are already waiting.",
                "Try again in a moment, or raise engine.max_queue in evo.toml.",
            ) from None

    def _stream(self, request: _Generate) -> Iterator[str]:
        """The caller's side: pieces as they come; closing it (or leaving the loop) cancels the request.

        A request cancelled while generating is waited for (the worker stops within one token): when close()
        returns, the engine is free and the stats count what was generated. One still in the queue is not.
        """
        started = done = False
        try:
            while True:
                kind, value = request.out.get()
                if kind == _STARTED:
                    started = True
                    request.stats.handoff_s = time.perf_counter() - request.submitted
                elif kind == _TEXT:
                    yield value
                elif kind == _DONE:
                    done = True
                    return
                else:
                    done = True
                    raise value
        finally:
            if not request.cancelled.is_set() and request.stats.finish_reason is None:
                request.pieces_at_cancel = request.pieces
                request.cancelled.set()  # the consumer stopped early: the worker stops at the next token
                request.stats.finish_reason = "interrupted"
            if started and not done:
                _wait_done(request.out, CANCEL_WAIT_S)

    # -- the owner thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Call):
                try:
                    item.out.put((_DONE, item.fn(self.engine)))
                except BaseException as exc:  # handed to the caller, who raises it
                    item.out.put((_ERROR, exc))
                continue
            self._generate(item)

    def _generate(self, request: _Generate) -> None:
        stats = request.stats
        stats.queued_s = time.perf_counter() - request.submitted
        request.out.put((_STARTED, None))
        if request.cancelled.is_set():
            request.out.put((_DONE, None))
            return
        try:
            completion = self.engine.chat_stream(request.messages, request.config, adapter=request.adapter, cache_key=request.cache_key)
            try:
                for piece in completion:
                    request.pieces += 1
                    request.out.put((_TEXT, piece))
                    if request.cancelled.is_set():
                        break
            finally:
                if request.cancelled.is_set():
                    completion.close()
            inner = completion.stats
            for name in ("prompt_tokens", "completion_tokens", "ttft_s", "total_s", "finish_reason"):
                setattr(stats, name, getattr(inner, name))
            if request.cancelled.is_set():
                stats.finish_reason = "interrupted"
                if request.pieces_at_cancel is not None:
                    stats.pieces_after_cancel = request.pieces - request.pieces_at_cancel
            request.out.put((_DONE, None))
        except BaseException as exc:  # the caller's turn fails with it; the worker goes on
            log.warning("generation failed: %s", exc)
            request.out.put((_ERROR, exc))

    @property
    def queue_depth(self) -> int:
        """Requests waiting (not counting the one generating)."""
        return self._queue.qsize()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)


class OwnedEngine(Engine):
    """An engine whose every generation and state change runs on its EngineWorker; see the module docstring."""

    def __init__(self, inner: Engine, max_queue: int = 16) -> None:
        self.inner = inner
        self.worker = EngineWorker(inner, max_queue)
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.artifact_kind = inner.artifact_kind
        self.model_name = inner.model_name

    @classmethod
    def from_settings(cls, settings, model, artifact, progress=None):  # pragma: no cover - built by load_engine
        raise NotImplementedError("OwnedEngine wraps a loaded backend: use evo_tr.engine.load_engine")

    def __getattr__(self, item: str) -> Any:
        # Backend-specific attributes (model_path, llm, counters) stay reachable; methods that change state
        # must be called through `call`.
        return getattr(self.inner, item)

    @property
    def n_ctx(self) -> int:
        return self.inner.n_ctx

    def tokenize(self, text: str) -> list[int]:
        return self.inner.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.inner.detokenize(tokens)

    def render(self, messages: Sequence[Message]) -> str:
        return self.inner.render(messages)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def chat_stream(self, messages, config, *, adapter=None, cache_key=None) -> Completion:
        if adapter is not None and adapter not in self.inner.adapters():  # said at once, as the backend itself would
            raise EvoError(f"Adapter {adapter!r} is not attached to this engine.", "See `evo adapters list`.")
        return self.worker.submit(messages, config, adapter=adapter, cache_key=cache_key)

    def call(self, fn: Callable[[Engine], Any]) -> Any:
        return self.worker.call(fn)

    @property
    def queue_depth(self) -> int:
        return self.worker.queue_depth

    def attach_adapter(self, version: AdapterLike) -> None:
        self.worker.call(lambda e: e.attach_adapter(version))

    def detach_adapter(self, name: str) -> None:
        self.worker.call(lambda e: e.detach_adapter(name))

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def reset(self) -> None:
        self.worker.call(lambda e: e.reset())

    def describe(self) -> dict[str, str]:
        return self.inner.describe()

    def last_logits(self, messages, *, adapter=None):
        return self.worker.call(lambda e: e.last_logits(messages, adapter=adapter))

    def close(self) -> None:
        self.worker.close()
        self.inner.close()
