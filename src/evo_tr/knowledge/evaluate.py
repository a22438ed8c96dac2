"""Knowledge retrieval quality on our own question set (data/knowledge/questions.jsonl), in a throwaway store.

Each question is routed by the real router and searched as a turn would search it (pack entries left out
for code intents), then gated as a turn gates it. Reported:
- `recall_at_3`: share of answerable questions with an expected entry among the top 3 retrieved;
- `injected_recall`: share of answerable questions whose prompt would get an expected entry (after the gate);
- `irrelevant_turn_share`: share of all questions whose prompt would get a passage that does not answer it
  (for the 50 questions no entry answers, any passage);
- `search_ms_p50` over the questions.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from evo_tr.config import Settings


def load_questions(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or Path(str(resources.files("evo_tr") / "data" / "knowledge" / "questions.jsonl"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate_knowledge(settings: Settings, say: Callable[[str], None] = lambda _: None, *, store=None) -> dict[str, Any]:
    """The figures above, on `store` (default: a fresh store holding only the pack)."""
    from evo_tr.knowledge.store import KnowledgeStore
    from evo_tr.router import load_router

    questions = load_questions()
    router = load_router(settings)
    with tempfile.TemporaryDirectory(prefix="evo-knowledge-eval-") as tmp:
        if store is None:
            eval_settings = settings.model_copy(update={
                "memory": settings.memory.model_copy(update={"backend": "embedded"}),
                "knowledge": settings.knowledge.model_copy(update={"collection": "evo_knowledge_eval", "pack": True}),
            })
            store = KnowledgeStore(eval_settings, path=Path(tmp), say=say)
        cfg, k = settings.knowledge, settings.knowledge.top_k
        say(f"knowledge eval: {len(questions)} questions against {store.count()} passages")
        found, injected_ok, irrelevant, latencies, misses, wrong = 0, 0, 0, [], [], []
        answerable = [q for q in questions if q["expects"]]
        for q in questions:
            intent = router.predict(q["question"])["intent"]
            t0 = time.perf_counter()
            hits = store.search(q["question"], k * 2, include_pack=cfg.pack and intent not in cfg.skip_pack_for)
            latencies.append(1000 * (time.perf_counter() - t0))
            ids = [h.memory.extra.get("entry") for h in hits]
            expected = set(q["expects"])
            injected = [h.memory.extra.get("entry") for h in store.relevant(q["question"], hits)][:k]
            if expected and expected & set(ids[:3]):
                found += 1
            elif expected:
                misses.append({"question": q["question"], "expects": q["expects"], "got": ids[:3]})
            if expected & set(injected):
                injected_ok += 1
            extra = [i for i in injected if i not in expected]
            if extra:
                irrelevant += 1
                wrong.append({"question": q["question"], "kind": q["kind"], "intent": intent, "injected": extra})
    return {
        "questions": len(questions),
        "answerable": len(answerable),
        "recall_at_3": round(found / len(answerable), 4),
        "injected_recall": round(injected_ok / len(answerable), 4),
        "irrelevant_turn_share": round(irrelevant / len(questions), 4),
        "search_ms_p50": round(statistics.median(latencies), 2),
        "misses": misses,
        "irrelevant": wrong,
    }
