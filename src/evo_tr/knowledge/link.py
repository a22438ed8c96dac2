"""The chat's handle on the knowledge store: opened on first use (the pack loads then), reopened after failures.

Chat only reads knowledge; `evo knowledge add` writes it. A store that cannot be opened costs the turn its
reference notes, never its answer: the orchestrator shows one notice and tries again after chat.memory_retry_s.
"""

from __future__ import annotations

from collections.abc import Callable

from evo_tr.config import Settings
from evo_tr.lazy import LazyResource, Unavailable


class KnowledgeUnavailable(Unavailable):
    """The store could not be opened (or is waiting out the retry interval after a failure)."""


def open_knowledge(settings: Settings, say: Callable[[str], None] = lambda _: None):
    from evo_tr.knowledge.store import KnowledgeStore

    return KnowledgeStore(settings, say=say)


class KnowledgeLink(LazyResource):
    what = "knowledge"
    unavailable = KnowledgeUnavailable

    def __init__(self, settings: Settings, opener=open_knowledge) -> None:
        super().__init__(lambda: opener(settings), settings.chat.memory_retry_s)
        self.settings = settings
