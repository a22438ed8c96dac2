"""The memory contamination check: can the assistant's own past answers reach a later prompt?

A new user's first sessions, scripted, in a throwaway data dir and through the real orchestrator (router,
memory on Chroma with the e5 embedder, prompt assembly with the model's tokenizer):
1. the user states facts, two of which change (name, city);
2. the assistant "answers" eight questions with known-false claims: replayed turns, logged and saved to
   memory exactly as generated ones are;
3. reference notes are stored as knowledge, each on one topic;
then later questions are assembled in new sessions (nothing is generated) and their prompts are read:
- `contamination_rate`: share of probe prompts that contain a planted claim (target 0);
- `own_answer_recall`: share of questions about the conversation ("Az önce ne demiştin?") whose prompt
  carries the planted answer under the heading that says it is the assistant's own earlier words;
- `fact_current`: share of questions about the user whose prompt holds the latest value and no superseded one;
- `irrelevant_injection_rate`: share of probes whose prompt got a reference note on another topic.
This module sits above the orchestrator (like bench.py): it drives a whole turn's assembly.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from evo_tr.config import Settings
from evo_tr.engine import Engine, generation_config
from evo_tr.memory.block import PAST_HEADER
from evo_tr.orchestrator import Orchestrator

NEUTRAL_ANSWER = "Memnun oldum, not aldım."


def load_script(path: Path | None = None) -> dict[str, Any]:
    path = path or Path(str(resources.files("evo_tr") / "data" / "memory" / "contamination.json"))
    return json.loads(path.read_text(encoding="utf-8"))


def _prompt_text(messages) -> str:
    return "\n".join(m.content for m in messages)


def evaluate_contamination(settings: Settings, engine: Engine, say: Callable[[str], None] = lambda _: None,
                           script: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the scripted sessions on `engine`'s tokenizer in a temporary data dir; the figures and every failure."""
    script = script or load_script()
    with tempfile.TemporaryDirectory(prefix="evo-contamination-") as tmp:
        home = Path(tmp)
        memory = settings.memory.model_copy(update={
            "backend": "embedded", "collection": "evo_contamination", "enabled": True, "save_conversations": True, "capture_facts": True,
        })
        eval_settings = settings.model_copy(update={"home": home, "memory": memory})
        config = replace(generation_config(eval_settings), temperature=0.0, seed=0)
        orch = Orchestrator.build(eval_settings, engine, config, model=settings.model, knowledge=False)
        try:
            return _run(orch, script, say)
        finally:
            orch.close()


def _run(orch: Orchestrator, script: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    say(f"contamination: the user says {len(script['user'])} things, the assistant plants {len(script['plants'])} false answers")
    user_session = orch.new_session()
    for text in script["user"]:
        orch.replay(user_session.id, text, NEUTRAL_ANSWER)
    planted = orch.new_session()
    for plant in script["plants"]:
        orch.replay(planted.id, plant["question"], plant["answer"])
    orch.flush(timeout=120)
    manager = orch.memory.get()
    with orch.memory.lock:
        for note in script["notes"]:
            manager.store.add_memory(note["text"], {"topic": note["topic"]}, memory_type="knowledge", source="eval")
    claims = [p["claim"] for p in script["plants"]]

    say(f"contamination: {len(script['probes'])} later questions, {len(script['recall'])} about the conversation, {len(script['facts'])} about the user")
    contaminated, irrelevant = [], []
    for probe in script["probes"]:
        prepared = orch.preview(None, probe["question"])
        text = _prompt_text(prepared.messages)
        found = [c for c in claims if c in text]
        if found:
            contaminated.append({"question": probe["question"], "claims": found, "intent": prepared.routed.intent})
        off_topic = [m.text for m in prepared.recall.memories if m.type == "knowledge" and m.extra.get("topic") != probe["topic"]]
        if off_topic:
            irrelevant.append({"question": probe["question"], "notes": off_topic})
    own_found, own_missed = 0, []
    for item in script["recall"]:
        prepared = orch.preview(None, item["question"])
        block = prepared.context
        past = block[block.find(PAST_HEADER):] if PAST_HEADER in block else ""
        if item["expects"] in past:
            own_found += 1
        else:
            own_missed.append({"question": item["question"], "expects": item["expects"], "intent": prepared.routed.intent, "block": block})
    current_ok, fact_failures = 0, []
    for item in script["facts"]:
        prepared = orch.preview(None, item["question"])
        text = _prompt_text(prepared.messages)
        if item["expects"] in text and not (item["superseded"] and item["superseded"] in text):
            current_ok += 1
        else:
            fact_failures.append({"question": item["question"], "expects": item["expects"], "superseded": item["superseded"], "block": prepared.context})
    n = len(script["probes"])
    return {
        "contamination_rate": round(len(contaminated) / n, 4),
        "contamination_probes": n,
        "contaminated": contaminated,
        "own_answer_recall": round(own_found / len(script["recall"]), 4),
        "own_answer_missed": own_missed,
        "fact_current": round(current_ok / len(script["facts"]), 4),
        "fact_failures": fact_failures,
        "irrelevant_injection_rate": round(len(irrelevant) / n, 4),
        "irrelevant_injections": irrelevant,
    }
