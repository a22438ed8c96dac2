"""MemoryManager: fact capture, RAG context for a turn (floor + token budget), and saving finished turns."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from evo_tr.config import Settings
from evo_tr.memory.facts import CapturedFact, capture_facts
from evo_tr.memory.store import MemoryStore
from evo_tr.memory.types import AddResult, Memory, MemoryHit
from evo_tr.text import normalize

log = logging.getLogger(__name__)

MEMORY_HEADER = (
    "Hafıza: önceki konuşmalardan KULLANICI hakkında bildiklerin (senin hakkında değil). "
    "Yalnızca soruyla ilgiliyse kullan. / Memory: facts about the USER (not about you); use only if relevant."
)
CONVERSATION_PREFIX = "(önceki konuşma) "


def format_memories(memories: Sequence[Memory]) -> str:
    """The block injected into the prompt; empty when there is nothing to say."""
    if not memories:
        return ""
    lines = [f"- {_line(m)}" for m in memories]
    return MEMORY_HEADER + "\n" + "\n".join(lines)


def _line(memory: Memory) -> str:
    text = " ".join(memory.text.split())
    return CONVERSATION_PREFIX + text if memory.type == "conversation" else text


@dataclass
class Recall:
    """What retrieval put into one prompt, and what it left out and why."""

    hits: list[MemoryHit] = field(default_factory=list)
    block: str = ""
    tokens: int = 0
    not_relevant: int = 0
    over_budget: int = 0

    @property
    def memories(self) -> list[Memory]:
        return [h.memory for h in self.hits]


@dataclass(frozen=True)
class Captured:
    """A fact taken from the user's message and where it was stored."""

    fact: CapturedFact
    result: AddResult


class MemoryManager:
    """Short- and long-term memory for the chat: one object the session talks to."""

    def __init__(self, store: MemoryStore, settings: Settings, count_tokens: Callable[[str], int]) -> None:
        self.store = store
        self.cfg = settings.memory
        self.count_tokens = count_tokens

    # -- before the answer -----------------------------------------------------------------
    def observe(self, message: str, *, session: str = "", turn: int = -1) -> list[Captured]:
        """Store facts the user states explicitly in `message`, at once (not at the end of the turn)."""
        if not self.cfg.capture_facts:
            return []
        out = []
        for fact in capture_facts(message):
            result = self.store.add_memory(fact.text, {"rule": fact.rule}, memory_type=fact.type, source="chat", session=session, turn=turn, lang=fact.lang)
            out.append(Captured(fact, result))
            log.info("captured %s memory %s: %s", fact.type, result.id, fact.text)
        return out

    def is_relevant(self, hit: MemoryHit, *, strict: bool = True) -> bool:
        """Floor always; when strict, also very close or sharing content words (see MemorySettings)."""
        if hit.similarity < self.cfg.min_similarity:
            return False
        return not strict or hit.similarity >= self.cfg.relevant_similarity or hit.overlap >= self.cfg.min_overlap

    def recall(
        self,
        query: str,
        budget_tokens: int | None = None,
        *,
        exclude: Sequence[str] = (),
        strict: bool = True,
        vector=None,
        session: str | None = None,
        touch: bool = True,
        skip_ids: Collection[str] = (),
    ) -> Recall:
        """Top-k relevant memories that fit in the token budget, best first.

        `strict=False` (the user asked about their memory) keeps only the similarity floor. Conversation
        snippets of `session` are skipped: that conversation is already in the prompt's history.
        `touch=False` leaves the usage stats to the caller (the chat updates them off the critical path).
        """
        budget = self.cfg.rag_max_tokens if budget_tokens is None else min(budget_tokens, self.cfg.rag_max_tokens)
        recall = Recall()
        if budget <= 0 or not query.strip():
            return recall
        ranked = self.store.search(query, self.cfg.top_k * 2, vector=vector)  # re-ranked (hybrid); spares replace dupes
        seen = {normalize(t) for t in exclude}
        header = self.count_tokens(MEMORY_HEADER + "\n")
        used = header
        for hit in ranked:
            if len(recall.hits) >= self.cfg.top_k:
                break
            if not self.is_relevant(hit, strict=strict):
                recall.not_relevant += 1
                continue
            key = normalize(hit.memory.text)
            if key in seen or hit.memory.id in skip_ids or (session and hit.memory.session == session and hit.memory.type == "conversation"):
                continue
            cost = self.count_tokens(f"- {_line(hit.memory)}\n")
            if used + cost > budget:
                recall.over_budget += 1
                continue
            seen.add(key)
            recall.hits.append(hit)
            used += cost
        if recall.hits:
            recall.block = format_memories(recall.memories)
            recall.tokens = self.count_tokens(recall.block)
            if touch:
                self.store.touch([h.memory.id for h in recall.hits])
        return recall

    # -- after the answer ------------------------------------------------------------------
    def save_turn(self, user: str, assistant: str, *, intent: str = "", session: str = "", turn: int = -1) -> AddResult | None:
        """Keep a finished exchange so later sessions can recall what was discussed."""
        if not self.cfg.save_conversations or not user.strip() or not assistant.strip():
            return None
        return self.store.add_conversation(user, assistant, intent, session=session, turn=turn)

    # -- privacy controls --------------------------------------------------------------------
    def remember(self, text: str, *, session: str = "", source: str = "chat") -> AddResult:
        """`/remember TEXT`: store the user's own words as a fact."""
        return self.store.add_memory(text, memory_type="fact", source=source, session=session)

    def find(self, query_or_id: str, limit: int = 5) -> list[Memory]:
        """What `/forget` would delete: the memory with that id (or id prefix), else the relevant matches."""
        return find_memories(self.store, query_or_id, limit)

    def forget(self, ids: Sequence[str]) -> int:
        return self.store.delete(ids)


def open_memory(settings: Settings, count_tokens: Callable[[str], int]) -> MemoryManager | None:
    """The manager for chat/ask, or None when memory is disabled in the settings."""
    if not settings.memory.enabled:
        return None
    return MemoryManager(MemoryStore(settings), settings, count_tokens)


def find_memories(store: MemoryStore, query_or_id: str, limit: int = 5) -> list[Memory]:
    """Exact id, a unique-looking id prefix (as tables show), else matches that pass the strict relevance test."""
    query = query_or_id.strip()
    exact = store.get(query)
    if exact:
        return [exact]
    if len(query) >= 8 and all(c in "0123456789abcdef" for c in query):
        prefixed = [m for m in store.all() if m.id.startswith(query)]
        if prefixed:
            return prefixed
    cfg = store.cfg
    hits = store.search(query, limit, min_similarity=cfg.min_similarity)
    return [h.memory for h in hits if h.similarity >= cfg.relevant_similarity or h.overlap >= max(cfg.min_overlap, 0.5)]
