"""The knowledge store: reference passages with their sources, in a Chroma collection of their own.

Kept apart from personal memory (its own collection under $EVO_HOME/knowledge, its own writer lock):
`evo memory forget --all` never touches it, and nothing the user tells the assistant lands in it.
Two kinds of passage: the shipped pack's entries (loaded on first use, reloaded when the package brings
a new pack version) and chunks of the user's documents.

A document is never half visible. Its chunks are written first, tagged with the file's content hash; then
one SQLite transaction makes that hash the document's live version; then the previous version's chunks
are deleted. Search drops chunks whose hash is not live, so a run killed at any point leaves either the
old document or the new one, and a rerun completes (chunk ids are deterministic, so nothing doubles).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evo_tr.chroma import ChromaCollection
from evo_tr.config import Settings
from evo_tr.errors import EvoError
from evo_tr.knowledge.documents import SUPPORTED, Unreadable, chunk_document, read_document
from evo_tr.knowledge.pack import PACK_NAME, content_hash, load_pack, manifest, shipped_vectors
from evo_tr.memory.types import Memory, MemoryHit, utc_now
from evo_tr.text import clip_middle, content_stems, normalize, stem_coverage

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ADD_BATCH = 64
RERANK_FACTOR = 3  # candidates fetched per passage wanted, re-ranked by shared stems (20 at least)
RERANK_MIN = 20
DOCUMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    encoding TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AddReport:
    """What `add` did with one file: added, updated, unchanged or skipped (with the reason)."""

    path: str
    status: str
    chunks: int = 0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DocumentInfo:
    path: str
    sha256: str
    size: int
    kind: str
    encoding: str
    chunks: int
    added_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def source_label(meta: dict[str, Any]) -> str:
    """What a person reads as the source: the pack entry, or the file, section and lines."""
    if meta.get("kind") == "pack":
        return str(meta.get("label", PACK_NAME))
    name = Path(str(meta.get("source", ""))).name
    section = f" › {meta['section']}" if meta.get("section") else ""
    start, end = meta.get("line_start"), meta.get("line_end")
    lines = f" (satır {start}–{end})" if start and end and start != end else (f" (satır {start})" if start else "")
    return f"{name}{section}{lines}"


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files under the given paths, folders recursively in name order; hidden files and folders skipped."""
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path


# The message asks for a saying or a meaning: a proverb or idiom may then match by sense alone.
SAYING_CUE = re.compile(
    r"\b(?:atasöz\w*|deyim\w*|söz\w*|ne demek\w*|anlam\w*|ne anlat\w*|proverb\w*|idiom\w*|saying\w*|mean\w*|expression\w*)\b"
)


def relevant_passages(query: str, hits: Sequence[MemoryHit], settings: Settings) -> list[MemoryHit]:
    """The relevance gate for reference passages, stricter than memory's: no pack text in a coding answer or a "Selam!".

    A passage passes memory's test (above the 0.80 floor, and 0.87 close or sharing a fifth of the message's
    stems); a proverb or idiom also needs half of its own words in the message, unless the message asks for
    a saying or a meaning ("… anlatan atasözü hangisi?"); a message about the user's own name, city, job…
    ("Hangi şehirde yaşıyorum?") gets no pack entry at all; and no passage may score more than
    knowledge.relevance_margin below the best one. Measured on our 200 questions
    (data/knowledge/questions.jsonl, routed as a turn routes them): the expected entry reaches the prompt
    for 0.94 of the 150 answerable ones (0.93 with memory's gate alone) and some other passage does for
    0.08 of all questions (0.37 with memory's gate alone; one of the 50 that no entry answers).
    """
    from evo_tr.memory.facts import question_attributes
    from evo_tr.memory.store import is_relevant

    mcfg, kcfg = settings.memory, settings.knowledge
    words = content_stems(query)
    asks_saying = bool(SAYING_CUE.search(normalize(query)))
    personal = bool(question_attributes(query))  # "Benim adım Deniz." is not about the Marmara Denizi
    passed = []
    for hit in hits:
        if not is_relevant(hit, mcfg):
            continue
        meta = hit.memory.extra
        if personal and meta.get("kind") == "pack":
            continue
        if meta.get("entry_kind") in ("atasozu", "deyim") and not asks_saying:
            if stem_coverage(content_stems(str(meta.get("head", ""))), words) < kcfg.head_coverage:
                continue
        passed.append(hit)
    if not passed:
        return []
    best = max(h.score for h in passed)
    return [h for h in passed if h.score >= best - kcfg.relevance_margin]


class _Index:
    """Every passage's vector, text and metadata at one store generation, searched by exact cosine."""

    def __init__(self, generation: int, ids: list[str], vectors: np.ndarray, texts: list[str], metas: list[dict | None]) -> None:
        self.generation, self.ids, self.vectors, self.texts, self.metas = generation, ids, vectors, texts, metas
        self.documents = np.array([(m or {}).get("kind") == "document" for m in metas], dtype=bool)

    def nearest(self, vec: np.ndarray, n: int, *, documents_only: bool = False) -> list[tuple[str, str, dict | None, float]]:
        """(id, text, metadata, cosine distance) of the `n` nearest passages, nearest first."""
        if not self.ids:
            return []
        sims = self.vectors @ vec.astype(np.float32)
        if documents_only:
            sims = np.where(self.documents, sims, -np.inf)
        n = min(n, int(np.isfinite(sims).sum()))
        if n <= 0:
            return []
        top = np.argpartition(-sims, n - 1)[:n]
        top = top[np.argsort(-sims[top])]
        return [(self.ids[i], self.texts[i], self.metas[i], float(1.0 - sims[i])) for i in top]


class KnowledgeStore(ChromaCollection):
    """Reference passages (pack entries and document chunks) with their sources; see the module docstring."""

    def __init__(self, settings: Settings, *, path: Path | None = None, load_pack_now: bool = True,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.settings = settings
        self.kcfg = settings.knowledge
        root = path or settings.knowledge_dir
        super().__init__(settings.memory, self.kcfg.collection, root / "chroma", schema=SCHEMA_VERSION, what="knowledge")
        self.db_path = root / "documents.db"
        self._reader = threading.local()  # one read connection per thread (search runs on request threads)
        self._live_cache: tuple[int, dict[str, str]] | None = None  # (store generation, live versions)
        self._index: _Index | None = None  # vectors held for exact search, rebuilt when the generation moves
        with closing(self._db()) as db:
            db.executescript(DOCUMENTS_SCHEMA)
        if load_pack_now and self.kcfg.pack:
            self.ensure_pack(say)

    def _fix_hint(self) -> str:
        if self.cfg.backend == "http":
            return super()._fix_hint()
        return f"Check that {self.path} is writable; `evo knowledge list` shows what it holds."

    def _db(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.db_path, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    # -- the pack ------------------------------------------------------------------------------------
    @property
    def pack_version(self) -> str | None:
        return (self.collection.metadata or {}).get("pack_version")

    def ensure_pack(self, say: Callable[[str], None] = lambda _: None) -> bool:
        """Load the shipped pack if this store has another version (or none); True when it was (re)loaded."""
        wanted = f"{manifest()['version']}+{content_hash()[:12]}"
        if self.pack_version == wanted:
            return False
        entries = load_pack()
        say(f"{PACK_NAME} yükleniyor: {len(entries)} kayıt (sürüm {manifest()['version']})")
        vectors = shipped_vectors(self.embedder.info.name)
        if vectors is None:
            vectors = self.embed([e.text for e in entries])
        with self._writing():
            self.collection = self.client.get_collection(self.name, embedding_function=self._ef)
            if self.pack_version == wanted:  # another process loaded it meanwhile
                return False
            old = self.collection.get(where={"kind": "pack"}, include=[])["ids"]
            for start in range(0, len(old), 5000):
                self.collection.delete(ids=old[start : start + 5000])
            for start in range(0, len(entries), ADD_BATCH * 8):
                batch = entries[start : start + ADD_BATCH * 8]
                self.collection.upsert(
                    ids=[f"pack:{e.id}" for e in batch],
                    documents=[e.text for e in batch],
                    embeddings=vectors[start : start + len(batch)],
                    metadatas=[{"kind": "pack", "source": "pack", "entry": e.id, "entry_kind": e.kind, "section": e.section, "label": e.label,
                                "head": e.head, "file": e.file, "line_start": e.line, "line_end": e.line, "pack_version": wanted} for e in batch],
                )
            meta = dict(self.collection.metadata or {})
            meta["pack_version"] = wanted
            self.collection.modify(metadata=meta)
        log.info("knowledge pack %s loaded (%s entries, %s replaced)", wanted, len(entries), len(old))
        return True

    # -- documents -------------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        with closing(self._db()) as db:
            rows = db.execute("SELECT * FROM documents ORDER BY path").fetchall()
        return [DocumentInfo(**dict(r)) for r in rows]

    def _live(self) -> dict[str, str]:
        """Live version of every document. Cached until a write in any process bumps the store's generation
        (the writer lock's counter), so a turn's search costs no SQLite round trip."""
        generation = self.lock.generation() if self.lock.path is not None else None
        if generation is not None and self._live_cache is not None and self._live_cache[0] == generation:
            return self._live_cache[1]
        db = getattr(self._reader, "db", None)
        if db is None:
            db = self._reader.db = self._db()
        live = {r["path"]: r["sha256"] for r in db.execute("SELECT path, sha256 FROM documents")}
        if generation is not None:
            self._live_cache = (generation, live)
        return live

    def add_paths(self, paths: Sequence[Path], on_file: Callable[[AddReport], None] = lambda _: None) -> list[AddReport]:
        """Add files and folders (recursively); one report per file, in order."""
        missing = [str(p) for p in paths if not Path(p).expanduser().exists()]
        if missing:
            raise EvoError(f"No such file or folder: {', '.join(missing)}", "Check the path (folders are read recursively).")
        reports = []
        for path in iter_files(paths):
            report = self.add_file(path)
            reports.append(report)
            on_file(report)
        return reports

    def add_file(self, path: Path) -> AddReport:
        """Add one file, replace it if its content changed, skip it if unchanged or unreadable."""
        key = str(Path(path).expanduser().resolve())
        try:
            doc = read_document(Path(key), int(self.kcfg.max_file_mb * 2**20))
        except Unreadable as exc:
            return AddReport(key, "skipped", reason=str(exc))
        except OSError as exc:
            return AddReport(key, "skipped", reason=f"cannot read it ({exc.strerror or exc})")
        previous = self._live().get(key)
        if previous == doc.sha256:
            return AddReport(key, "unchanged", self._chunk_count(key))
        chunks = chunk_document(doc, self.kcfg.chunk_chars)
        if not chunks:
            return AddReport(key, "skipped", reason="no text in it")
        texts = [f"{c.section}: {c.text}" if c.section else c.text for c in chunks]
        vectors = self.embed(texts)
        doc_key = hashlib.sha1(key.encode()).hexdigest()[:12]
        ids = [f"doc:{doc_key}:{doc.sha256[:12]}:{i}" for i in range(len(chunks))]
        metas = [{"kind": "document", "source": key, "doc_sha": doc.sha256, "section": c.section, "line_start": c.line_start,
                  "line_end": c.line_end, "chunk": i, "chunks": len(chunks), "doc_kind": doc.kind} for i, c in enumerate(chunks)]
        with self._writing():
            for start in range(0, len(chunks), ADD_BATCH):
                self.collection.upsert(ids=ids[start : start + ADD_BATCH], documents=texts[start : start + ADD_BATCH],
                                       embeddings=vectors[start : start + ADD_BATCH], metadatas=metas[start : start + ADD_BATCH])
            now = utc_now()
            with closing(self._db()) as db, db:  # the switch to the new version is this one transaction
                db.execute(
                    "INSERT INTO documents (path, sha256, size, kind, encoding, chunks, added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, kind = excluded.kind, "
                    "encoding = excluded.encoding, chunks = excluded.chunks, updated_at = excluded.updated_at",
                    (key, doc.sha256, doc.size, doc.kind, doc.encoding, len(chunks), now, now),
                )
            self._drop_stale(key, doc.sha256)
        return AddReport(key, "updated" if previous else "added", len(chunks))

    def _chunk_count(self, key: str) -> int:
        with closing(self._db()) as db:
            row = db.execute("SELECT chunks FROM documents WHERE path = ?", (key,)).fetchone()
        return int(row["chunks"]) if row else 0

    def _drop_stale(self, key: str, live_sha: str | None) -> int:
        """Delete a document's chunks of any version but the live one (all of them when it is removed)."""
        found = self.collection.get(where={"source": key}, include=["metadatas"])
        stale = [i for i, m in zip(found["ids"], found["metadatas"]) if (m or {}).get("doc_sha") != live_sha]
        for start in range(0, len(stale), 5000):
            self.collection.delete(ids=stale[start : start + 5000])
        return len(stale)

    def collect_orphans(self) -> int:
        """Chunks left by an interrupted add or remove (a version that never became live, or is no longer): deleted."""
        live = self._live()
        with self._writing():
            found = self.collection.get(where={"kind": "document"}, include=["metadatas"])
            stale = [i for i, m in zip(found["ids"], found["metadatas"]) if live.get((m or {}).get("source")) != (m or {}).get("doc_sha")]
            for start in range(0, len(stale), 5000):
                self.collection.delete(ids=stale[start : start + 5000])
        return len(stale)

    def remove(self, target: str) -> list[str]:
        """Remove a document, or every document under a folder; returns the removed paths."""
        key = str(Path(target).expanduser().resolve())
        docs = [d.path for d in self.documents() if d.path == key or d.path.startswith(key.rstrip(os.sep) + os.sep)]
        if not docs:
            return []
        with self._writing():
            with closing(self._db()) as db, db:
                db.executemany("DELETE FROM documents WHERE path = ?", [(d,) for d in docs])
            for d in docs:
                self._drop_stale(d, None)
        return docs

    # -- search ------------------------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 3, *, vector: np.ndarray | None = None, include_pack: bool = True,
               min_similarity: float = 0.0) -> list[MemoryHit]:
        """Nearest passages (cosine candidates, re-ranked by shared stems), as memory hits of type knowledge."""
        query = query.strip()
        if not query:
            raise EvoError("Search query is empty.", "Give some words to search for.")
        vec = self.embed(normalize(clip_middle(query, self.cfg.max_query_chars))) if vector is None else vector
        self._sync()
        live = self._live()
        if not include_pack and not live:
            return []
        wanted = max(top_k * RERANK_FACTOR, RERANK_MIN)
        index = self._exact_index()
        if index is not None:
            rows = index.nearest(vec, wanted, documents_only=not include_pack)
        else:
            res = self.collection.query(
                query_embeddings=vec[None, :], n_results=wanted,
                where=None if include_pack else {"kind": "document"}, include=["documents", "metadatas", "distances"],
            )
            rows = zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])
        stems = content_stems(query)
        hits = []
        for cid, text, meta, dist in rows:
            meta = dict(meta or {})
            if meta.get("kind") == "document" and live.get(meta.get("source")) != meta.get("doc_sha"):
                continue  # a version that is not (or no longer) live
            similarity = 1.0 - dist
            overlap = stem_coverage(stems, content_stems(text))
            meta["label"] = source_label(meta)
            memory = Memory(id=cid, text=text, type="knowledge", source=meta.get("kind", ""), role="reference", extra=meta)
            hits.append(MemoryHit(memory, similarity, similarity + self.cfg.lexical_weight * overlap, overlap))
        hits.sort(key=lambda h: h.score, reverse=True)
        return [h for h in hits if h.similarity >= min_similarity][:top_k]

    def _exact_index(self) -> _Index | None:
        """The passages' vectors in memory for an exact search, or None (a Chroma server, or above
        `knowledge.exact_search_max`). Reloaded when a write in any process bumps the generation.

        Why: Chroma's query costs 3-9 ms here for 2,666 passages (its HNSW plus fetching documents and
        metadata from SQLite), a dot product over the 2,666 x 384 matrix 0.1 ms, and exact search has no
        HNSW recall loss. One load of the full pack + 1,000 chunks takes ~0.3 s and ~6 MB.
        """
        limit = self.kcfg.exact_search_max
        if self.lock.path is None or limit <= 0:
            return None
        generation = self.lock.generation()
        if self._index is not None and self._index.generation == generation:
            return self._index
        if self.collection.count() > limit:
            self._index = None
            return None
        got = self.collection.get(include=["embeddings", "documents", "metadatas"])
        self._index = _Index(generation, got["ids"], np.asarray(got["embeddings"], dtype=np.float32).reshape(len(got["ids"]), -1),
                             got["documents"], got["metadatas"])
        return self._index

    def relevant(self, query: str, hits: Sequence[MemoryHit]) -> list[MemoryHit]:
        """The passages that may enter a prompt for `query`: see `relevant_passages`."""
        return relevant_passages(query, hits, self.settings)

    def passage(self, passage_id: str) -> Memory | None:
        """One stored passage by id (a source opens the passage it came from)."""
        found = self.collection.get(ids=[passage_id], include=["documents", "metadatas"])
        if not found["ids"]:
            return None
        meta = dict(found["metadatas"][0] or {})
        meta["label"] = source_label(meta)
        return Memory(id=passage_id, text=found["documents"][0], type="knowledge", source=meta.get("kind", ""), role="reference", extra=meta)

    def stats(self) -> dict[str, Any]:
        docs = self.documents()
        return {"pack_version": self.pack_version, "pack_entries": len(self.collection.get(where={"kind": "pack"}, include=[])["ids"]),
                "documents": len(docs), "document_chunks": sum(d.chunks for d in docs), "passages": self.count(), "location": self.location,
                "supported": SUPPORTED}
