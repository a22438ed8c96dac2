"""Data that crosses the memory boundary: memories, search hits, add results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from evo_tr.config import OWNER_ID  # noqa: F401 (re-exported: the user id of the owner's memories)

MemoryType = Literal["fact", "preference", "conversation", "knowledge"]
MEMORY_TYPES: tuple[str, ...] = get_args(MemoryType)
Source = Literal["chat", "cli", "import", "night", "eval", "bench"]

# Who wrote a memory's words. Only the user's own statements (and reference knowledge) may ground an
# answer; text the assistant wrote ("exchange" = a stored question/answer pair) is recalled only when the
# user asks about the conversation itself, and then labelled as the assistant's earlier words.
Role = Literal["user", "assistant", "exchange", "reference"]
ASSISTANT_ROLES = frozenset({"assistant", "exchange"})
# What may ground an answer to a new question: what the user said, and reference knowledge.
GROUNDING_TYPES = ("fact", "preference", "knowledge")
# How a stored exchange's text is laid out (its metadata "user_chars" says where the question ends).
EXCHANGE_USER, EXCHANGE_ASSISTANT = "Kullanıcı: ", "\nAsistan: "

# Metadata keys the store owns; anything else a caller passes is kept as extra metadata.
CORE_KEYS = (
    "type", "source", "session", "turn", "created_at", "updated_at", "last_used_at",
    "use_count", "mentions", "text_hash", "lang", "doc_id", "chunk", "chunks",
    "role", "attribute", "stated_at", "superseded_by", "superseded_at", "user",
)



def utc_now() -> str:
    """ISO-8601 UTC timestamps sort lexicographically, which `list` relies on."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Memory:
    """One stored memory with its provenance."""

    id: str
    text: str
    type: str = "fact"
    source: str = "cli"
    session: str = ""
    turn: int = -1
    created_at: str = ""
    updated_at: str = ""
    last_used_at: str = ""
    use_count: int = 0
    mentions: int = 1
    text_hash: str = ""
    lang: str = ""
    doc_id: str = ""
    chunk: int = 0
    chunks: int = 1
    role: str = ""  # see Role; "" only on records not yet migrated
    attribute: str = ""  # e.g. "user.name", "cat.name": a newer statement of it supersedes this one
    stated_at: str = ""  # when the user said it (a night extraction: the turn's time), which orders supersession
    superseded_by: str = ""  # id of the newer memory of the same attribute; "" = current
    superseded_at: str = ""
    user: str = ""  # whose memory it is (OWNER_ID = the owner); no other user's read or search ever sees it
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        """False once a newer statement of the same attribute replaced it (kept as dated history)."""
        return not self.superseded_by

    @property
    def by_assistant(self) -> bool:
        """The text contains the assistant's own words: never grounding for a new question."""
        return self.role in ASSISTANT_ROLES or (self.type == "conversation" and self.role != "user")

    def metadata(self) -> dict[str, Any]:
        """Flat Chroma metadata (no None values: Chroma rejects them in older servers)."""
        core = {k: getattr(self, k) for k in CORE_KEYS}
        return {**self.extra, **{k: v for k, v in core.items() if v is not None}}

    @classmethod
    def from_record(cls, id: str, text: str, metadata: dict[str, Any] | None) -> Memory:
        meta = dict(metadata or {})
        core = {k: meta.pop(k) for k in CORE_KEYS if k in meta}
        return cls(id=id, text=text, extra=meta, **core)

    def as_dict(self) -> dict[str, Any]:
        """The export/JSON form: id, text and every metadata field."""
        return {"id": self.id, "text": self.text, "metadata": self.metadata()}


@dataclass(frozen=True)
class MemoryHit:
    """A memory found by a search, with its cosine similarity to the query."""

    memory: Memory
    similarity: float
    score: float | None = None  # hybrid re-ranking score (similarity + lexical overlap + type prior)
    overlap: float = 0.0  # share of the query's content stems found in the memory

    def as_dict(self) -> dict[str, Any]:
        out = {**self.memory.as_dict(), "similarity": round(self.similarity, 4)}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


@dataclass(frozen=True)
class AddResult:
    """What happened to one added text: stored new, or merged into an existing memory."""

    id: str
    merged: bool
    ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "merged": self.merged, "ids": list(self.ids or (self.id,))}


@dataclass(frozen=True)
class MemoryStats:
    """Counts for `/memory` and `evo memory stats`."""

    total: int
    by_type: dict[str, int]
    by_source: dict[str, int]
    backend: str
    location: str
    embedder: str
    newest: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total, "by_type": self.by_type, "by_source": self.by_source, "backend": self.backend,
            "location": self.location, "embedder": self.embedder, "newest": self.newest,
        }


def split_exchange(m: Memory) -> tuple[str, str]:
    """(what the user asked, what the assistant answered) of a stored exchange; ("", text) if not one."""
    n = m.extra.get("user_chars")
    if isinstance(n, int) and m.text.startswith(EXCHANGE_USER):
        user = m.text[len(EXCHANGE_USER) : len(EXCHANGE_USER) + n]
        rest = m.text[len(EXCHANGE_USER) + n :]
        if rest.startswith(EXCHANGE_ASSISTANT):
            return user, rest[len(EXCHANGE_ASSISTANT) :]
    return "", m.text
