"""Chroma plumbing shared by the memory and knowledge stores: connection, writer lock, index sync, embedding.

Embedded (PersistentClient under the data dir) or a `chroma run` server (HttpClient), telemetry off, the
project's own e5 embedding function registered so a reopened collection rebuilds it.
"""

from __future__ import annotations

import fcntl
import logging
import os
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
    def hold(self) -> Iterator[list[int]]:
        """Yields a list that receives the new generation once the writes are done."""
        out: list[int] = []
        if self.path is None:
            yield out
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as fh:
            self._acquire(fh)
            try:
                yield out
                out.append(self._bump())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


    def _acquire(self, fh) -> None:
        """Blocking without a timeout; otherwise poll until it expires, then say the store is busy."""
        if self.timeout_s is None:
            fcntl.flock(fh, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"The memory store is busy: another process has been writing for over {self.timeout_s:g} s.",
                        "Try again shortly (a night run or an import may be writing), or raise memory.lock_timeout_s.",
                    ) from None
                time.sleep(0.05)


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
        self._seen_generation = self.lock.generation()
        self._open_collection()

    def _open_collection(self) -> None:
        meta = {"embedder": self.embedder.info.name, "embedder_dim": self.embedder.info.dim, "embed_mode": EMBED_MODE, "app": "evo-tr",
                "schema": self._schema_version, **self._extra_meta}
        self._ef = _register_embedding_function()(self.embedder.info.name)
        try:
            self.collection = self.client.get_or_create_collection(
                self.name, embedding_function=self._ef, metadata=meta, configuration={"hnsw": {"space": "cosine"}},
            )
        except Exception as exc:  # chroma raises ValueError/its own types for conflicts
            raise EvoError(f"Cannot open {self.what} collection {self.name!r}: {exc}", self._fix_hint()) from exc
        stored = self.collection.metadata or {}
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
        with self.lock.hold() as generation:
            self._sync()
            yield
        if generation:
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
