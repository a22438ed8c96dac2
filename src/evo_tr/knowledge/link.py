"""The chat's handle on the knowledge store: opened on first use (the pack loads then), reopened after failures.

Chat only reads knowledge; `evo knowledge add` writes it. A store that cannot be opened costs the turn its
reference notes, never its answer: the orchestrator shows one notice and tries again after chat.memory_retry_s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from evo_tr.config import Settings
from evo_tr.errors import EvoError

log = logging.getLogger(__name__)


class KnowledgeUnavailable(EvoError):
    """The store could not be opened (or is waiting out the retry interval after a failure)."""


def open_knowledge(settings: Settings, say: Callable[[str], None] = lambda _: None):
    from evo_tr.knowledge.store import KnowledgeStore

    return KnowledgeStore(settings, say=say)


class KnowledgeLink:
    def __init__(self, settings: Settings, opener=open_knowledge) -> None:
        self.settings = settings
        self.opener = opener
        self.lock = threading.RLock()
        self.store = None
        self.error: str | None = None
        self._retry_at = 0.0

    def get(self):
        with self.lock:
            if self.store is not None:
                return self.store
            if time.monotonic() < self._retry_at:
                raise KnowledgeUnavailable(f"knowledge unavailable ({self.error})")
            try:
                self.store = self.opener(self.settings)
            except Exception as exc:
                self.failed(exc)
                raise KnowledgeUnavailable(f"knowledge unavailable ({self.error})") from exc
            self.error = None
            return self.store

    def failed(self, exc: BaseException) -> None:
        with self.lock:
            self.store = None
            self.error = exc.message if isinstance(exc, EvoError) else f"{type(exc).__name__}: {exc}"
            self._retry_at = time.monotonic() + self.settings.chat.memory_retry_s
        log.warning("knowledge store failed: %s", self.error)
