"""The chat's link to long-term memory: lazy open, failure memo, and the write path through the durable queue."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from evo_tr.config import Settings
from evo_tr.errors import EvoError, reason
from evo_tr.lazy import LazyResource, Unavailable
from evo_tr.memory.manager import MemoryManager, open_memory
from evo_tr.memory.queue import MemoryQueue
from evo_tr.memory.types import OWNER_ID

log = logging.getLogger(__name__)


class MemoryUnavailable(Unavailable):
    """The store could not be opened (or is waiting out memory_retry_s after a failure)."""


class MemoryLink(LazyResource[MemoryManager]):
    """Opened lazily, reopened after failures, and written through a durable queue by one background thread.

    Every write (a captured fact, a finished turn) is first put in the SQLite queue, then applied by the
    writer thread; if the store is down or locked it stays queued and is retried at the next turn.
    Reads and writes share one lock, because the embedded store and its index are not shared across threads.
    """

    what = "memory"
    unavailable = MemoryUnavailable

    def __init__(self, settings: Settings, count_tokens, queue: MemoryQueue, opener=open_memory) -> None:
        super().__init__(lambda: opener(settings, count_tokens), settings.chat.memory_retry_s)
        self.settings = settings
        self.queue = queue
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evo-memory")
        self._pending: Future | None = None

    @property
    def manager(self) -> MemoryManager | None:
        return self.value

    def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        self.queue.enqueue(kind, payload)

    def touch_async(self, ids: list[str]) -> None:
        """Usage stats (last used, use count) of recalled memories, updated by the writer thread."""

        def touch() -> None:
            try:
                with self.lock:
                    self.get().store.touch(ids)
            except Exception as exc:  # statistics only: never worth a notice
                log.info("could not update memory usage stats: %s", exc)

        self._writer.submit(touch)

    def drain_async(self) -> None:
        """Apply queued writes in the background (at most one drain runs at a time)."""
        if self._pending is not None and not self._pending.done():
            return
        self._pending = self._writer.submit(self.drain)

    def drain(self) -> int:
        """Apply queued writes in order until the queue is empty (writes queued meanwhile included); stop at the
        first failure so order is kept. Returns how many were written."""
        written = 0
        while pending := self.queue.pending():
            for item_id, kind, payload in pending:
                try:
                    with self.lock:
                        manager = self.get()
                        apply_memory_write(manager, kind, payload)
                except Exception as exc:
                    if not isinstance(exc, MemoryUnavailable):
                        self.failed(exc)
                    self.queue.failed(item_id, reason(exc))
                    return written
                self.queue.done(item_id)
                written += 1
        return written

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the writer is idle (tests, bench, exit)."""
        pending = self._pending
        if pending is not None:
            pending.result(timeout)

    def close(self) -> None:
        try:
            self.flush(timeout=30)
        except Exception as exc:  # leaving must not fail; what is left stays queued for next time
            log.warning("memory writes left queued at exit: %s", exc)
        self._writer.shutdown(wait=False)


def apply_memory_write(manager: MemoryManager, kind: str, payload: dict[str, Any]) -> None:
    """One queued write: a finished turn or a fact captured while the store was away."""
    owner = str(payload.get("user_id", OWNER_ID))  # whose turn it was (absent in writes queued before users existed)
    if kind == "turn":
        manager.save_turn(payload["user"], payload["assistant"], intent=payload.get("intent", ""), session=payload["session"], turn=payload["turn"],
                          user_id=owner)
    elif kind == "fact":
        manager.store.add_memory(
            payload["text"], {"rule": payload.get("rule", "")}, memory_type=payload["type"], source="chat",
            session=payload["session"], turn=payload["turn"], lang=payload.get("lang", ""), user=owner,
        )
    else:
        raise EvoError(f"unknown queued memory write {kind!r}")
