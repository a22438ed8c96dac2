"""Long-term memory on ChromaDB: embedded (PersistentClient) or a `chroma run` server (HttpClient)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from evo_tr.config import MemorySettings, Settings
from evo_tr.chroma import EMBED_MODE, ChromaCollection, WriterLock, _register_embedding_function  # noqa: F401 (re-exported)
from evo_tr.errors import EvoError
from evo_tr.memory.facts import attribute_of, question_attributes
from evo_tr.memory.types import (
    CORE_KEYS, EXCHANGE_ASSISTANT, EXCHANGE_USER, GROUNDING_TYPES, MEMORY_TYPES, OWNER_ID, AddResult, Memory, MemoryHit, MemoryStats, utc_now,
)
from evo_tr.text import STOPWORDS, clip_middle, content_stems, has_letters, normalize, stem_coverage  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

RERANK_FACTOR = 5
RERANK_MIN = 20
TYPE_PRIOR = {"fact": 1, "preference": 1, "knowledge": 0, "conversation": -1}
ADD_BATCH = 64  # texts embedded and written per Chroma call
# Version of what the store's records carry (collection metadata "schema"). 1: no roles; conversation
# memories were injected like facts. 2: every record has a role, facts an attribute and a stated-at time,
# and a newer statement of an attribute supersedes the older one. 3: every record names its user ("" = the
# owner, which is what every earlier record becomes), and every read, search, dedupe and supersession is
# scoped to one user. Opening an older store migrates it once (metadata only: no text is changed or
# dropped), see MemoryStore._migrate.
SCHEMA_VERSION = 3
DEFAULT_ROLE = {"fact": "user", "preference": "user", "conversation": "exchange", "knowledge": "reference"}
DUPLICATE_CANDIDATES = 3
_WORD = re.compile(r"[\w'’]+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n{2,}")

def user_where(user: str | None, *clauses: dict[str, Any] | None) -> dict[str, Any] | None:
    """A Chroma `where` that adds "this user's records only" to `clauses` (user None: every user's, for
    maintenance that spans the store)."""
    parts = [c for c in clauses if c]
    if user is not None:
        parts.append({"user": user})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def text_hash(text: str) -> str:
    """Exact-duplicate key: the Turkish-normalised words, so 'İzmir!' and 'izmir' collide."""
    return hashlib.sha256(" ".join(_WORD.findall(normalize(text))).encode()).hexdigest()[:32]


def word_set(text: str) -> frozenset[str]:
    """Words of the Turkish-normalised text, punctuation dropped (apostrophe suffixes stay attached)."""
    return frozenset(_WORD.findall(normalize(text)))


def chunk_text(text: str, size: int) -> list[str]:
    """Split at sentence or paragraph ends into pieces of about `size` characters (hard cut as last resort)."""
    if len(text) <= size:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > size:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


@dataclass(frozen=True)
class NewMemory:
    """A text to store with its provenance, before it has an id."""

    text: str
    type: str = "fact"
    source: str = "cli"
    session: str = ""
    turn: int = -1
    lang: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    user: str = OWNER_ID


@dataclass
class ImportReport:
    """Result of `import_jsonl`: restored count and every skipped line with its reason."""

    imported: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": [{"line": n, "reason": r} for n, r in self.skipped]}


def is_relevant(hit: MemoryHit, cfg: MemorySettings, asked: frozenset[str] = frozenset()) -> bool:
    """The relevance gate: above the cosine floor, and either very close or sharing content words with the question.

    When the question asks for attributes (`asked`, e.g. {"user.name"}) a fact stating another attribute
    is never relevant, and one stating an asked attribute always is: "Benim adım neydi?" is not answered by
    the grandmother's or the cat's name, however close the words.
    """
    if hit.similarity < cfg.min_similarity:
        return False
    if asked and hit.memory.attribute:
        return hit.memory.attribute in asked
    return hit.similarity >= cfg.relevant_similarity or hit.overlap >= cfg.min_overlap


def validate_text(text: str, settings: MemorySettings) -> str:
    """Refuse what cannot be a memory, with a message that says how to fix it."""
    if not isinstance(text, str):
        raise EvoError(f"Memory text must be a string, got {type(text).__name__}.")
    text = text.strip()
    if not text:
        raise EvoError("Memory text is empty.", "Give the text to remember, e.g. evo memory add \"Benim adım Kaan\".")
    if not has_letters(text) and not any(ch.isdigit() for ch in text):
        raise EvoError(f"Memory text {text[:40]!r} has no letters or digits.", "Store words, not only symbols.")
    if len(text) > settings.max_text_chars:
        raise EvoError(
            f"Memory text is {len(text):,} characters; the limit is {settings.max_text_chars:,}.",
            "Split it into smaller notes, or raise memory.max_text_chars in evo.toml.",
        )
    return text


def _check_type(memory_type: str) -> str:
    if memory_type not in MEMORY_TYPES:
        raise EvoError(f"Unknown memory type {memory_type!r}.", f"Use one of: {', '.join(MEMORY_TYPES)}.")
    return memory_type


class MemoryStore(ChromaCollection):
    """The design's long-term memory API on one Chroma collection, with dedupe and provenance."""

    def __init__(self, settings: Settings, *, client: Any | None = None, path: Path | None = None) -> None:
        self.settings = settings
        self.cfg = settings.memory
        super().__init__(settings.memory, self.cfg.collection, path or settings.memory_dir / "chroma", client=client,
                         schema=SCHEMA_VERSION, what="memory")
        if self._schema < SCHEMA_VERSION:
            self._migrate()

    def _fix_hint(self) -> str:
        if self.cfg.backend == "http":
            return super()._fix_hint()
        return f"Check that {self.path} is writable; `evo memory export` first if you need to move it."

    def _migrate(self) -> None:
        """Bring records written by an earlier version up to SCHEMA_VERSION, once, under the writer lock.

        Conversation memories are tagged as exchanges (they hold the assistant's words, so they stop
        grounding answers), facts get their attribute and stated-at time, of two statements of one
        attribute the newer becomes current, and a record without a user becomes the owner's (OWNER_ID).
        Only metadata changes: every text stays, nothing is deleted.
        """
        with self.lock.hold():
            collection = self.client.get_collection(self.cfg.collection, embedding_function=self._ef)
            stored = dict(collection.metadata or {})
            if int(stored.get("schema", 1)) >= SCHEMA_VERSION:  # another process migrated it meanwhile
                self.collection, self._schema = collection, SCHEMA_VERSION
                return
            found = collection.get(include=["documents", "metadatas"])
            changed: list[Memory] = []
            attributes: set[tuple[str, str]] = set()
            for mid, doc, meta in zip(found["ids"], found["documents"], found["metadatas"]):
                m = Memory.from_record(mid, doc, meta)
                before = m.metadata()
                _fill_provenance(m)
                if m.attribute:
                    attributes.add((m.attribute, m.user))
                if m.metadata() != before or "user" not in (meta or {}):  # a record from before users: the owner's
                    changed.append(m)
            for start in range(0, len(changed), 5000):
                batch = changed[start : start + 5000]
                collection.update(ids=[m.id for m in batch], metadatas=[m.metadata() for m in batch])
            for attribute, user in sorted(attributes):
                self._resolve_attribute(attribute, user, collection)
            stored["schema"] = SCHEMA_VERSION
            collection.modify(metadata=stored)
            log.info("memory store migrated to schema %s: %s records tagged, %s attributes resolved", SCHEMA_VERSION, len(changed), len(attributes))
        self.collection = collection
        self._schema = SCHEMA_VERSION

    # -- writing -----------------------------------------------------------------------
    def add_memory(
        self,
        text: str,
        metadata: dict[str, Any] | None = None,
        *,
        memory_type: str = "fact",
        source: str = "cli",
        session: str = "",
        turn: int = -1,
        lang: str = "",
        user: str = OWNER_ID,
    ) -> AddResult:
        """Store a text (chunked if long) as `user`'s; an exact or near duplicate of theirs is merged into it."""
        text = validate_text(text, self.cfg)
        extra = dict(metadata or {})
        memory_type = _check_type(extra.pop("type", memory_type))
        pieces = chunk_text(text, self.cfg.chunk_chars)
        if memory_type in ("fact", "preference") and len(pieces) == 1 and "attribute" not in extra:
            extra["attribute"] = attribute_of(text)
        if len(pieces) == 1:
            item = NewMemory(text, memory_type, source, session, turn, lang, extra, user)
            result = self.add_many([item])[0]
            return AddResult(result.id, result.merged, (result.id,))
        # A long text is stored as ordered chunks of one document; the document as a whole is deduplicated.
        doc_hash = text_hash(text)
        found = self.collection.get(where=user_where(user, {"doc_hash": doc_hash}), include=["metadatas"])
        if found["ids"]:
            ordered = sorted(zip(found["ids"], found["metadatas"]), key=lambda pair: pair[1].get("chunk", 0))
            return AddResult(ordered[0][0], True, tuple(i for i, _ in ordered))
        doc_id = uuid.uuid4().hex[:16]
        items = [
            NewMemory(p, memory_type, source, session, turn, lang, {**extra, "doc_hash": doc_hash, "doc_id": doc_id, "chunk": i, "chunks": len(pieces)}, user)
            for i, p in enumerate(pieces)
        ]
        results = self.add_many(items, dedupe=False)
        return AddResult(results[0].id, False, tuple(r.id for r in results))

    def add_conversation(self, user: str, assistant: str, intent: str = "", *, session: str = "", turn: int = -1,
                         user_id: str = OWNER_ID) -> AddResult:
        """One finished exchange, kept so the user can ask about the conversation later ("geçen sefer ne demiştin?").

        It holds the assistant's words, so it is an "exchange": recall never uses it to ground an answer
        to a new question (the assistant's mistakes must not become its knowledge), see MemoryManager.
        """
        user, assistant = user.strip(), assistant.strip()
        half = self.cfg.chunk_chars // 2
        text = f"{EXCHANGE_USER}{user[:half]}{EXCHANGE_ASSISTANT}{assistant[:half]}"
        extra: dict[str, Any] = {"role": "exchange", "user_chars": len(user[:half])}
        if intent:
            extra["intent"] = intent
        return self.add_memory(text, extra, memory_type="conversation", source="chat", session=session, turn=turn, user=user_id)

    def add_many(self, items: Sequence[NewMemory], *, dedupe: bool = True) -> list[AddResult]:
        """Batch insert with exact and near-duplicate merging (each item only with its own user's memories); one
        result per item, in order."""
        results: list[AddResult] = []
        for start in range(0, len(items), ADD_BATCH):
            batch = items[start : start + ADD_BATCH]
            by_user: dict[str, list[int]] = {}
            for i, item in enumerate(batch):
                by_user.setdefault(item.user, []).append(i)
            out: list[AddResult | None] = [None] * len(batch)
            for user, positions in by_user.items():
                for i, result in zip(positions, self._add_batch([batch[i] for i in positions], dedupe, user)):
                    out[i] = result
            results.extend(r for r in out if r is not None)
        return results

    def _add_batch(self, items: Sequence[NewMemory], dedupe: bool, user: str) -> list[AddResult]:
        texts = [validate_text(i.text, self.cfg) for i in items]
        for item in items:
            _check_type(item.type)
        hashes = [text_hash(t) for t in texts]
        vecs = self.embed(texts)
        now = utc_now()
        results: list[AddResult | None] = [None] * len(items)
        merges: dict[str, Memory] = {}
        new: list[tuple[int, Memory]] = []
        attributes: set[str] = set()
        with self._writing():
            existing = self._by_hash(hashes, user) if dedupe else {}
            total = self.count() if dedupe else 0
            near = self._near_duplicates(texts, vecs, items, total, user) if total else [None] * len(items)
            for i, (item, h) in enumerate(zip(items, hashes)):
                target = existing.get((h, item.type)) or near[i]
                if target is None and dedupe:
                    target = self._batch_duplicate(i, texts, vecs, items, new)
                if target is not None:
                    merged = merges.setdefault(target.id, target)
                    merged.mentions += 1
                    merged.updated_at = now
                    stated = item.extra.get("stated_at") or now  # said again: it is the newest statement now
                    if stated > (merged.stated_at or ""):
                        merged.stated_at = stated
                    if merged.attribute:
                        attributes.add(merged.attribute)
                    results[i] = AddResult(target.id, True)
                    continue
                memory = Memory(
                    id=uuid.uuid4().hex, text=texts[i], type=item.type, source=item.source, session=item.session,
                    turn=item.turn, created_at=now, updated_at=now, text_hash=h, lang=item.lang, user=user, extra=dict(item.extra),
                )
                for key in ("doc_id", "chunk", "chunks", "role", "attribute", "stated_at"):
                    if key in memory.extra:
                        setattr(memory, key, memory.extra.pop(key))
                _fill_provenance(memory)
                if memory.attribute:
                    attributes.add(memory.attribute)
                new.append((i, memory))
                existing[(h, item.type)] = memory
                results[i] = AddResult(memory.id, False)
            if new:
                self.collection.add(
                    ids=[m.id for _, m in new],
                    documents=[m.text for _, m in new],
                    metadatas=[m.metadata() for _, m in new],
                    embeddings=vecs[[i for i, _ in new]],
                )
            fresh = {m.id for _, m in new}
            updates = [m for mid, m in merges.items() if mid not in fresh]
            if updates:
                self.collection.update(ids=[m.id for m in updates], metadatas=[m.metadata() for m in updates])
            for _, m in new:  # merges into a memory created in this same batch
                if m.id in merges and m.mentions > 1:
                    self.collection.update(ids=[m.id], metadatas=[m.metadata()])
            for attribute in sorted(attributes):
                self._resolve_attribute(attribute, user)
        return [r for r in results if r is not None]

    def _resolve_attribute(self, attribute: str, user: str, collection: Any = None) -> None:
        """Of one user's memories stating one attribute, the most recently stated is current; the rest point to it
        (another user's name never supersedes this user's).

        Called under the writer lock after every write that touches the attribute, so the order of
        statements (not of writes: the night stores a morning's fact after an evening's) decides.
        """
        collection = collection or self.collection
        found = collection.get(where=user_where(user, {"attribute": attribute}), include=["documents", "metadatas"])
        memories = [Memory.from_record(i, d, m) for i, d, m in zip(found["ids"], found["documents"], found["metadatas"])]
        if len(memories) < 2 and all(m.current for m in memories):
            return
        newest = max(memories, key=lambda m: (m.stated_at or m.created_at, m.created_at, m.id))
        now = utc_now()
        changed = []
        for m in memories:
            target = "" if m is newest else newest.id
            if m.superseded_by != target:
                m.superseded_by, m.superseded_at = target, (now if target else "")
                changed.append(m)
        if changed:
            collection.update(ids=[m.id for m in changed], metadatas=[m.metadata() for m in changed])

    def find_duplicate(self, text: str, memory_type: str = "fact", *, user: str = OWNER_ID) -> Memory | None:
        """The stored memory of `user` that `add_memory(text)` would merge into, without touching it (night dedupe)."""
        self._sync()
        text = validate_text(text, self.cfg)
        hit = self._by_hash([text_hash(text)], user).get((text_hash(text), _check_type(memory_type)))
        total = self.count()
        if hit is not None or not total:
            return hit
        return self._near_duplicates([text], self.embed([text]), [NewMemory(text, memory_type, user=user)], total, user)[0]

    def _by_hash(self, hashes: list[str], user: str) -> dict[tuple[str, str], Memory]:
        found = self.collection.get(where=user_where(user, {"text_hash": {"$in": sorted(set(hashes))}}), include=["documents", "metadatas"])
        out: dict[tuple[str, str], Memory] = {}
        for mid, doc, meta in zip(found["ids"], found["documents"], found["metadatas"]):
            m = Memory.from_record(mid, doc, meta)
            out.setdefault((m.text_hash, m.type), m)
        return out

    @staticmethod
    def _is_near(a: str, b: str) -> bool:
        """Same words up to case, punctuation, spacing and order (candidates come from the nearest vectors).

        A character ratio is not used: 'Benim adım Kaan' and 'Benim adım Ali' are close in characters
        but different facts, and must both be kept.
        """
        return word_set(a) == word_set(b)

    def _near_duplicates(self, texts: list[str], vecs: np.ndarray, items: Sequence[NewMemory], total: int, user: str) -> list[Memory | None]:
        n = min(DUPLICATE_CANDIDATES, total)
        res = self.collection.query(query_embeddings=vecs, n_results=n, where=user_where(user), include=["documents", "metadatas", "distances"])
        out: list[Memory | None] = []
        for i, text in enumerate(texts):
            match = None
            for mid, doc, meta, dist in zip(res["ids"][i], res["documents"][i], res["metadatas"][i], res["distances"][i]):
                if (meta or {}).get("type") == items[i].type and self._is_near(text, doc):
                    match = Memory.from_record(mid, doc, meta)
                    break
            out.append(match)
        return out

    def _batch_duplicate(self, i: int, texts: list[str], vecs: np.ndarray, items: Sequence[NewMemory], new: list[tuple[int, Memory]]) -> Memory | None:
        for j, memory in new:
            if items[j].type == items[i].type and self._is_near(texts[i], texts[j]):
                return memory
        return None

    def restore(self, memories: Sequence[Memory]) -> None:
        """Write memories exactly as given (ids and metadata kept): the import path of an export.

        A memory whose id another user's memory already has gets a new id instead: an import never
        overwrites (or takes over) someone else's memory, whatever ids the file names."""
        memories = list(memories)
        ids = list(dict.fromkeys(m.id for m in memories))
        taken: dict[str, str] = {}
        for start in range(0, len(ids), 5000):
            found = self.collection.get(ids=ids[start : start + 5000], include=["metadatas"])
            taken.update({i: str((meta or {}).get("user", OWNER_ID)) for i, meta in zip(found["ids"], found["metadatas"])})
        memories = [replace(m, id=uuid.uuid4().hex) if m.id in taken and taken[m.id] != m.user else m for m in memories]
        for start in range(0, len(memories), ADD_BATCH):
            batch = memories[start : start + ADD_BATCH]
            vecs = self.embed([m.text for m in batch])
            with self._writing():
                self.collection.upsert(ids=[m.id for m in batch], documents=[m.text for m in batch], metadatas=[m.metadata() for m in batch], embeddings=vecs)

    def touch(self, ids: Sequence[str]) -> None:
        """Record that memories were used in a prompt (last_used_at, use_count)."""
        if not ids:
            return
        now = utc_now()
        with self._writing():
            found = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
            memories = [Memory.from_record(i, d, m) for i, d, m in zip(found["ids"], found["documents"], found["metadatas"])]
            for m in memories:
                m.last_used_at, m.use_count = now, m.use_count + 1
            if memories:
                self.collection.update(ids=[m.id for m in memories], metadatas=[m.metadata() for m in memories])

    def delete(self, ids: str | Sequence[str], *, user: str | None = OWNER_ID) -> int:
        """Remove `user`'s memories by id (another user's id is left alone, as if it did not exist); returns how many
        existed. An id given twice counts once (Chroma refuses repeated ids: found by the memory fuzzing of issue 27,
        where `forget` of merged duplicates named one memory twice)."""
        ids = [ids] if isinstance(ids, str) else list(dict.fromkeys(ids))
        if not ids:
            return 0
        with self._writing():
            present = self.collection.get(ids=ids, where=user_where(user), include=[])["ids"]
            if present:
                self.collection.delete(ids=present)
        return len(present)

    def clear_all(self, *, user: str | None = OWNER_ID) -> int:
        """Delete every memory of `user` (their 'forget everything about me'; None: everyone's); returns how many were removed."""
        with self._writing():
            ids = self.collection.get(where=user_where(user), include=[])["ids"]
            for start in range(0, len(ids), 5000):
                self.collection.delete(ids=ids[start : start + 5000])
        return len(ids)

    # -- reading -----------------------------------------------------------------------
    def search(
        self, query: str, top_k: int = 3, memory_type: str | None = None, *, min_similarity: float = 0.0, vector: np.ndarray | None = None,
        types: Sequence[str] | None = None, current_only: bool = False, user: str = OWNER_ID,
    ) -> list[MemoryHit]:
        """`user`'s nearest memories to `query` (cosine candidates, hybrid re-rank), optionally of one type, best first.

        `vector` may carry the query's embedding when the caller already has it (the router embeds the
        same message in the same mode). `types` limits the candidates to those types inside Chroma (so a
        store full of conversation snippets cannot crowd out the few facts); `current_only` drops facts a
        newer statement superseded.
        """
        query = query.strip()
        if not query:
            raise EvoError("Search query is empty.", "Give some words to search for.")
        if memory_type is not None:
            _check_type(memory_type)
            types = [memory_type]
        for t in types or ():
            _check_type(t)
        kinds = None
        if types:
            kinds = {"type": types[0]} if len(types) == 1 else {"type": {"$in": list(types)}}
        where = user_where(user, kinds)  # inside Chroma: another user's memories are never even candidates
        # Queries are embedded normalised (Turkish lower-case), exactly as the router embeds the message, so
        # the embedder's cache serves the second request: one embedding per chat turn. Measured on the
        # packaged pairs: recall@3 unchanged (0.917), recall@1 0.833 -> 0.813.
        vec = self.embed(normalize(clip_middle(query, self.cfg.max_query_chars))) if vector is None else vector
        self._sync()
        res = self.collection.query(  # Chroma returns fewer rows when the store is smaller: no count() round-trip
            query_embeddings=vec[None, :],
            n_results=max(top_k * RERANK_FACTOR, RERANK_MIN),
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        query_stems = content_stems(query)
        hits = []
        for mid, doc, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]):
            memory = Memory.from_record(mid, doc, meta)
            if current_only and not memory.current:
                continue
            similarity = 1.0 - dist
            overlap = stem_coverage(query_stems, content_stems(doc))
            score = similarity + self.cfg.lexical_weight * overlap + self.cfg.user_fact_bonus * TYPE_PRIOR.get(memory.type, 0)
            hits.append(MemoryHit(memory, similarity, score, overlap))
        hits.sort(key=lambda h: h.score, reverse=True)
        return [h for h in hits if h.similarity >= min_similarity][:top_k]

    def get_relevant_context(self, query: str, *, user: str = OWNER_ID) -> str:
        """The design's RAG entry point: a ready-to-inject block of `user`'s relevant grounding memories (may be empty)."""
        from evo_tr.memory.block import format_memories

        hits = self.search(query, self.cfg.top_k * 2, types=GROUNDING_TYPES, current_only=True, user=user)
        asked = question_attributes(query)
        return format_memories([h.memory for h in hits if is_relevant(h, self.cfg, asked)][: self.cfg.top_k])

    def get(self, memory_id: str, *, user: str | None = OWNER_ID) -> Memory | None:
        """`user`'s memory with this id; None when there is none, or it is another user's."""
        found = self.collection.get(ids=[memory_id], where=user_where(user), include=["documents", "metadatas"])
        if not found["ids"]:
            return None
        return Memory.from_record(found["ids"][0], found["documents"][0], found["metadatas"][0])

    def all(self, memory_type: str | None = None, *, user: str | None = OWNER_ID) -> list[Memory]:
        """Every memory of `user` (None: of everyone; optionally one type), oldest first."""
        where = user_where(user, {"type": _check_type(memory_type)} if memory_type else None)
        found = self.collection.get(where=where, include=["documents", "metadatas"])
        memories = [Memory.from_record(i, d, m) for i, d, m in zip(found["ids"], found["documents"], found["metadatas"])]
        return sorted(memories, key=lambda m: (m.created_at, m.doc_id, m.chunk, m.id))

    def list(self, memory_type: str | None = None, limit: int = 20, *, user: str | None = OWNER_ID) -> list[Memory]:
        """Most recent memories of `user` first."""
        return list(reversed(self.all(memory_type, user=user)))[:limit]

    def latest(self, memory_type: str, n: int = 1, *, exclude_session: str | None = None, user: str = OWNER_ID) -> list[Memory]:
        """`user`'s `n` most recently created memories of one type (another session's only, when given): what
        "az önce ne demiştin?" refers to when no words of the question match."""
        found = self.collection.get(where=user_where(user, {"type": _check_type(memory_type)}), include=["metadatas"])  # texts only for the winners
        rows = [(m.get("created_at", ""), m.get("turn", -1), i) for i, m in zip(found["ids"], found["metadatas"])
                if not exclude_session or m.get("session") != exclude_session]
        ids = [i for *_, i in sorted(rows, reverse=True)[:n]]
        return [m for m in (self.get(i, user=user) for i in ids) if m is not None]

    def get_stats(self, *, user: str | None = OWNER_ID) -> MemoryStats:
        found = self.collection.get(where=user_where(user), include=["metadatas"])
        metas = found["metadatas"] or []
        return MemoryStats(
            total=len(found["ids"]),
            by_type=dict(Counter((m or {}).get("type", "?") for m in metas)),
            by_source=dict(Counter((m or {}).get("source", "?") for m in metas)),
            backend=self.cfg.backend,
            location=self.location,
            embedder=self.embedder.info.name,
            newest=max(((m or {}).get("created_at", "") for m in metas), default=None) or None,
        )

    # -- export / import -----------------------------------------------------------------
    def export_jsonl(self, path: Path, *, user: str | None = OWNER_ID) -> int:
        """All of `user`'s memories with every metadata field, one JSON object per line; written atomically."""
        memories = self.all(user=user)
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        with open(tmp, "w", encoding="utf-8") as fh:
            for m in memories:
                fh.write(json.dumps(m.as_dict(), ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        return len(memories)

    def import_jsonl(self, path: Path, *, user: str = OWNER_ID) -> ImportReport:
        """Restore an export exactly (same ids and metadata) as `user`'s memories, whichever user the file names
        (an id another user's memory has is given a new one, see `restore`); bad lines are reported and skipped."""
        path = Path(path)
        if not path.is_file():
            raise EvoError(f"No such file: {path}", "Give the path of a file written by `evo memory export`.")
        report = ImportReport()
        good: dict[str, tuple[int, Memory]] = {}  # by id: a repeated id keeps its last line (Chroma refuses a batch
        # with an id twice: found by the import fuzzing of issue 27, a traceback before)
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as exc:
                    report.skipped.append((number, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
                    continue
                if not line:
                    continue
                try:
                    memory = replace(self._parse_record(line), user=user)
                except (ValueError, EvoError) as exc:
                    report.skipped.append((number, str(exc)))
                    continue
                if memory.id in good:
                    earlier = good.pop(memory.id)[0]
                    report.skipped.append((earlier, f"id {memory.id} appears again on line {number}; the later line is kept"))
                good[memory.id] = (number, memory)
        report.skipped.sort()
        self.restore([m for _, m in good.values()])
        report.imported = len(good)
        return report

    def _parse_record(self, line: str) -> Memory:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        text = record.get("text")
        meta = record.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ValueError("'metadata' must be an object")
        text = validate_text(text if isinstance(text, str) else "", self.cfg)
        _check_type(meta.get("type", "fact"))
        _check_metadata(meta)
        now = utc_now()
        memory = Memory.from_record(str(record.get("id") or uuid.uuid4().hex), text, meta)
        memory = replace(
            memory,
            source=memory.source or "import",
            created_at=memory.created_at or now,
            updated_at=memory.updated_at or now,
            text_hash=memory.text_hash or text_hash(text),
        )
        _fill_provenance(memory)  # an export of an earlier version: the same tags the migration gives
        return memory


_INT_KEYS = frozenset(f.name for f in fields(Memory) if f.type == "int")


def _check_metadata(meta: dict[str, Any]) -> None:
    """An imported record's metadata must have the types the store writes: a `created_at` of 5 or a nested
    object would be stored and break every later listing, or be refused by Chroma halfway through a batch."""
    for key, value in meta.items():
        if key in _INT_KEYS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"metadata {key!r} must be a whole number, not {value!r}")
        elif key in CORE_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"metadata {key!r} must be text, not {value!r}")
        elif not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"metadata {key!r} must be text, a number or true/false (nested values are not stored)")


def _fill_provenance(m: Memory) -> None:
    """Role, attribute and stated-at time for a record that lacks them (new writes, migration, old exports)."""
    if not m.role:
        m.role = DEFAULT_ROLE.get(m.type, "user")
    if m.type == "conversation" and "user_chars" not in m.extra and m.text.startswith(EXCHANGE_USER):
        cut = m.text.find(EXCHANGE_ASSISTANT)
        if cut >= 0:
            m.extra["user_chars"] = cut - len(EXCHANGE_USER)
    if m.type in ("fact", "preference") and not m.attribute and m.chunks == 1:
        m.attribute = attribute_of(m.text)
    if not m.stated_at:
        m.stated_at = m.created_at

