"""Chroma plumbing shared by the memory and knowledge stores: connection, writer lock, index sync, embedding.

Embedded (PersistentClient under the data dir) or a `chroma run` server (HttpClient), telemetry off, the
project's own e5 embedding function registered so a reopened collection rebuilds it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from evo_tr.config import MemorySettings
from evo_tr.embeddings import EMBEDDER_NAME, get_embedder
from evo_tr.errors import EvoError, StoreBusyError

log = logging.getLogger(__name__)

EMBEDDING_FUNCTION_NAME = "evo-tr-e5"
# Hybrid search: embedding candidates are re-ranked with stem overlap and a type prior, because a
# stored conversation that *asks* something looks more like a question than the fact that answers it.
# Memories are short statements matched against short questions: e5's symmetric mode ("query:" on
# both sides) measured recall@3 0.917 vs 0.812 for query/passage on the packaged eval set. It also
# lets a turn reuse the router's embedding of the message.
EMBED_MODE = "symmetric-query"
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def _register_embedding_function() -> type:
    """Chroma persists the function's name and rebuilds it on reopen, so the class must be registered."""
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import known_embedding_functions, register_embedding_function

    if EMBEDDING_FUNCTION_NAME in known_embedding_functions:
        return known_embedding_functions[EMBEDDING_FUNCTION_NAME]

    @register_embedding_function
    class EvoEmbeddingFunction(EmbeddingFunction[Documents]):
        """The project's e5 model in symmetric mode (`query:` on both sides, see EMBED_MODE)."""

        def __init__(self, model: str = EMBEDDER_NAME) -> None:
            self.model = model

        def __call__(self, input: Documents) -> Embeddings:
            return list(get_embedder().query(list(input)))

        def embed_query(self, input: Documents) -> Embeddings:
            return list(get_embedder().query(list(input)))

        @staticmethod
        def name() -> str:
            return EMBEDDING_FUNCTION_NAME

        def default_space(self) -> str:
            return "cosine"

        def supported_spaces(self) -> list[str]:
            return ["cosine"]

        def get_config(self) -> dict[str, Any]:
            return {"model": self.model}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> EvoEmbeddingFunction:
            return EvoEmbeddingFunction(config.get("model", EMBEDDER_NAME))

    return EvoEmbeddingFunction


def _write_holder(fh) -> None:
    """Record who holds the lock (PID and command) in the lock file, for the message a waiting process shows."""
    try:
        cmd = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()} {_short_command(cmd)}\n")
    fh.flush()


def _short_command(cmd: str) -> str:
    """`python -m evo_tr night --date …` → `evo night`: what a person recognises."""
    words = cmd.split()
    for marker in ("evo_tr", "evo"):
        for i, w in enumerate(words):
            if w == marker or w.endswith("/" + marker):
                rest = [x for x in words[i + 1 : i + 3] if not x.startswith("-")]
                return " ".join(["evo", *rest[:1]])
    return words[0].rsplit("/", 1)[-1] if words else "?"


def _holder(fh) -> str:
    fh.seek(0)
    pid, _, what = fh.read().strip().partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"PID {pid}" + (f" ({what})" if what else "")


class WriterLock:
    """Cross-process exclusive lock around writes, plus a generation counter that tells other processes.

    Chroma's embedded store supports one writer at a time, and a process that opened it keeps its vector
    index in memory: it sees other processes' rows in SQLite but not in its index until it reopens.
    Each write bumps the generation; a reader that finds a newer one reopens before searching.
    """

    def __init__(self, path: Path | None, timeout_s: float | None = None) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.generation_path = path.with_name("generation") if path else None

    def generation(self) -> int:
        if self.generation_path is None:
            return 0
        try:
            return int(self.generation_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _bump(self) -> int:
        value = self.generation() + 1
        tmp = self.generation_path.with_name(f"generation.{os.getpid()}")
        tmp.write_text(str(value))
        tmp.replace(self.generation_path)
        return value

    @contextmanager
    def hold(self, *, bump: bool = True) -> Iterator[list[int]]:
        """Yields a list that receives the new generation once the writes are done.

        `bump=False` holds the lock without announcing a change (a reader that must see no write land, e.g.
        `evo backup` copying the store's files); the list then stays empty.
        """
        out: list[int] = []
        if self.path is None:
            yield out
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as fh:
            self._acquire(fh)
            _write_holder(fh)
            try:
                yield out
                if bump:
                    out.append(self._bump())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held by reads: many at once, never while another process writes. Without it a query in one process
        raced a write in another and Chroma failed with "Error finding id" (found by the concurrency test of
        issue 27: `evo night` checking for duplicates while two chats and a server wrote)."""
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as fh:
            self._acquire(fh, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _acquire(self, fh, kind: int = fcntl.LOCK_EX) -> None:
        """Blocking without a timeout; otherwise poll until it expires, then say the store is busy."""
        if self.timeout_s is None:
            fcntl.flock(fh, kind)
            return
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fh, kind | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"The memory store is busy: in use by {_holder(fh)}, writing for over {self.timeout_s:g} s.",
                        "Try again shortly (a night run or an import may be writing), or raise memory.lock_timeout_s.",
                    ) from None
                time.sleep(0.05)


class _GuardedCollection:
    """A view of ChromaCollection's collection whose reads take the shared lock (writes go through `_writing`)."""

    READS = frozenset({"query", "get", "count", "peek"})

    def __init__(self, owner: "ChromaCollection") -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if name not in self.READS:
            return getattr(self._owner._collection, name)

        def guarded(*args, **kwargs):
            with self._owner._reading():
                return getattr(self._owner._collection, name)(*args, **kwargs)

        return guarded


class ChromaCollection:
    """One Chroma collection: opened with the embedder's identity checked, written under a cross-process lock."""

    def __init__(self, cfg: MemorySettings, name: str, path: Path, *, client: Any | None = None, schema: int = 1,
                 what: str = "memory", extra_meta: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.name = name
        self.what = what
        self.embedder = get_embedder()
        self.path = path
        self._schema_version = schema
        self._extra_meta = dict(extra_meta or {})
        self.client = client or self._connect()
        self.lock = WriterLock(self.path.parent / "writer.lock" if cfg.backend == "embedded" else None, cfg.lock_timeout_s)
        self._held = threading.local()  # this thread holds the lock already (a read inside a write must not wait for itself)
        self._seen_generation = self.lock.generation()
        self._open_collection()

    @property
    def collection(self) -> Any:
        """The Chroma collection; its reads (query, get, count, peek) run under the shared lock, index up to date."""
        return _GuardedCollection(self)

    @collection.setter
    def collection(self, value: Any) -> None:
        self._collection = value

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._locked(self.lock.shared):
            yield

    @contextmanager
    def _locked(self, acquire) -> Iterator[object]:
        """Take the lock `acquire` gives (shared or exclusive) and bring the index up to date, once per thread: a
        read or write nested inside this thread's own hold neither waits for itself nor syncs again. Yields what
        `acquire` yields (None when nested)."""
        if getattr(self._held, "depth", 0):
            yield None
            return
        with acquire() as token:
            self._held.depth = 1
            try:
                self._sync()
                yield token
            finally:
                self._held.depth = 0

    def _open_collection(self) -> None:
        meta = {"embedder": self.embedder.info.name, "embedder_dim": self.embedder.info.dim, "embed_mode": EMBED_MODE, "app": "evo-tr",
                "schema": self._schema_version, **self._extra_meta}
        self._ef = _register_embedding_function()(self.embedder.info.name)
        try:
            self._collection = self.client.get_or_create_collection(
                self.name, embedding_function=self._ef, metadata=meta, configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:  # chroma raises ValueError/its own types for conflicts
            raise EvoError(f"Cannot open {self.what} collection {self.name!r}: {exc}", self._fix_hint()) from exc
        stored = self._collection.metadata or {}
        if any(stored.get(k) != meta[k] for k in ("embedder", "embedder_dim", "embed_mode")):
            raise EvoError(
                f"{self.what.capitalize()} collection {self.name!r} was built with embedder "
                f"{stored.get('embedder')!r} (dim {stored.get('embedder_dim')}, mode {stored.get('embed_mode')}), "
                f"not {self.embedder.info.name!r} ({EMBED_MODE}).",
                f"Export it with the old version and import it here, or set {self.what}.collection to a new name.",
            )
        self._schema = int(stored.get("schema", 1))

    def _sync(self) -> None:
        """Reopen if another process wrote since we loaded the index (embedded backend only)."""
        current = self.lock.generation()
        if current == self._seen_generation:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        log.debug(f"{self.what} store changed in another process (generation %s → %s): reopening", self._seen_generation, current)
        self.client.close()
        # Other handles on the same path in this process would keep the stale system alive; drop it from
        # Chroma's per-path cache so the next client loads the index from disk.
        SharedSystemClient._identifier_to_system.pop(str(self.path), None)
        self.client = self._connect()
        self._open_collection()
        self._seen_generation = current

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Exclusive across processes; the index is brought up to date first (near-duplicate checks query it)."""
        with self._locked(self.lock.hold) as generation:
            yield
        if generation:  # None when nested: the outer write records the new generation
            self._seen_generation = generation[0]

    # -- connection --------------------------------------------------------------------
    def _fix_hint(self) -> str:
        if self.cfg.backend == "http":
            return (
                f"Start the server with `chroma run --path DIR --host {self.cfg.host} --port {self.cfg.port}` "
                "or set memory.backend = \"embedded\"."
            )
        return f"Check that {self.path} is writable."

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if self.cfg.backend == "http":
                client = chromadb.HttpClient(host=self.cfg.host, port=self.cfg.port, ssl=self.cfg.ssl, settings=chroma_settings)
                client.heartbeat()
                return client
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
        except EvoError:
            raise
        except Exception as exc:
            where = f"{self.cfg.host}:{self.cfg.port}" if self.cfg.backend == "http" else str(self.path)
            raise EvoError(f"{self.what.capitalize()} store at {where} is unavailable: {exc}", self._fix_hint()) from exc

    @property
    def location(self) -> str:
        if self.cfg.backend == "http":
            return f"http{'s' if self.cfg.ssl else ''}://{self.cfg.host}:{self.cfg.port}/{self.name}"
        return str(self.path)

    def count(self) -> int:
        return self.collection.count()

    def embed(self, texts: str | list[str]) -> np.ndarray:
        """Vectors for stored texts and queries alike (EMBED_MODE)."""
        return self.embedder.query(texts)
