"""Retrieval quality: (fact, later question) pairs hidden among distractor memories, in a throwaway store."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from evo_tr.config import Settings
from evo_tr.errors import EvoError
from evo_tr.memory.store import MemoryStore, NewMemory


@dataclass(frozen=True)
class RecallPair:
    fact: str
    question: str
    lang: str


def data_path(name: str) -> Path:
    return Path(str(resources.files("evo_tr") / "data" / "memory" / name))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvoError(f"{path}:{number}: not valid JSON ({exc.msg}).") from exc
    return rows


def load_pairs(path: Path | None = None) -> list[RecallPair]:
    return [RecallPair(r["fact"], r["question"], r.get("lang", "")) for r in _read_jsonl(path or data_path("recall_pairs.jsonl"))]


def load_distractors(path: Path | None = None) -> list[NewMemory]:
    return [NewMemory(r["text"], r.get("type", "fact"), source="eval") for r in _read_jsonl(path or data_path("distractors.jsonl"))]


def evaluate_recall(settings: Settings, k: int = 3, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Recall@k and MRR of each pair's fact for its question, with all distractors in the store."""
    pairs, distractors = load_pairs(), load_distractors()
    with tempfile.TemporaryDirectory(prefix="evo-memory-eval-") as tmp:
        eval_settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"backend": "embedded", "collection": "evo_eval"})})
        store = MemoryStore(eval_settings, path=Path(tmp) / "chroma")
        say(f"memory eval: storing {len(distractors)} distractors and {len(pairs)} facts")
        store.add_many(distractors, dedupe=False)
        fact_ids = [r.id for r in store.add_many([NewMemory(p.fact, "fact", source="eval", lang=p.lang) for p in pairs], dedupe=False)]
        say(f"memory eval: {len(pairs)} questions")
        ranks: list[int | None] = []
        sims: list[float] = []
        misses = []
        latencies = []
        for pair, fid in zip(pairs, fact_ids):
            t0 = time.perf_counter()
            hits = store.search(pair.question, k)
            latencies.append(1000 * (time.perf_counter() - t0))
            ids = [h.memory.id for h in hits]
            rank = ids.index(fid) + 1 if fid in ids else None
            ranks.append(rank)
            if rank:
                sims.append(hits[rank - 1].similarity)
            else:
                misses.append({"question": pair.question, "expected": pair.fact, "got": [h.memory.text for h in hits]})
        store.client.clear_system_cache() if hasattr(store.client, "clear_system_cache") else None
    found = [r for r in ranks if r]
    by_lang = {
        lang: round(sum(1 for p, r in zip(pairs, ranks) if p.lang == lang and r) / sum(1 for p in pairs if p.lang == lang), 4)
        for lang in sorted({p.lang for p in pairs})
    }
    return {
        "pairs": len(pairs),
        "distractors": len(distractors),
        "k": k,
        f"recall_at_{k}": round(len(found) / len(pairs), 4),
        "recall_at_1": round(sum(1 for r in ranks if r == 1) / len(pairs), 4),
        "mrr": round(sum(1 / r for r in found) / len(pairs), 4),
        "recall_by_lang": by_lang,
        "hit_similarity_min": round(min(sims), 4) if sims else None,
        "hit_similarity_p50": round(statistics.median(sims), 4) if sims else None,
        "search_ms_p50": round(statistics.median(latencies), 2),
        "misses": misses,
    }
