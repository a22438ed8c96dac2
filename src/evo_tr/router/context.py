"""Routing that follows the conversation: a learnt follow-up model on top of the single-message router.

Each message routed alone loses its expert on short follow-ups: after "Python'da bir listeyi sıralayan
fonksiyon yazar mısın?", "peki bunu daha kısa yaz" went to general_chat, and on held-out two-turn dialogues
about a quarter of the follow-ups kept the right intent. Two small logistic regressions fix that, both
learnt from the packaged dialogues (no keyword list):

- the gate: is this message a continuation of the previous turn? Features: the message's character
  n-grams (the single router's own vocabulary: "bunu", "peki", "olmadı", "now add" are learnt from data),
  its length, the previous turn's intent (one-hot), confidence and whether its answer had code, and the
  single router's probabilities for the message (a clear new topic has a confident one of its own);
- the mapper, used when the gate says continuation: which intent the continuation has (usually the
  previous one; a code request's "çalıştırınca KeyError verdi" turns into code_debug).

Below the gate's threshold the single-message prediction stands, so a message without a previous turn, or
one that clearly starts another topic, is routed exactly as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression

from evo_tr.errors import EvoError
from evo_tr.router.dataset import read_rows

CONTEXT_FILE = "context.npz"
DIALOGUES = "data/intents/dialogues.jsonl"
GATE_THRESHOLD = 0.5
HELDOUT_FRACTION = 0.2
KINDS = ("continuation", "switch", "recall", "new_task")


@dataclass(frozen=True)
class TurnContext:
    """What the router knows of the previous turn: its intent and confidence, and whether its answer had code."""

    intent: str
    confidence: float = 1.0
    code: bool = False


@dataclass(frozen=True)
class Dialogue:
    """Two or three user messages; `intents[i]` is the right intent of turn i in its context, `code[i]` whether
    the answer to it would hold code. The last turn is the one judged (`intent`)."""

    id: str
    turns: tuple[str, ...]
    intents: tuple[str, ...]
    code: tuple[bool, ...]
    kind: str = "continuation"
    lang: str = "tr"

    @property
    def intent(self) -> str:
        return self.intents[-1]

    def contexts(self) -> list[tuple[str, TurnContext, str]]:
        """(message, previous turn, right intent) for every turn after the first."""
        return [(self.turns[i], TurnContext(self.intents[i - 1], 1.0, self.code[i - 1]), self.intents[i]) for i in range(1, len(self.turns))]


def packaged_dialogues_path() -> Path:
    return Path(str(resources.files("evo_tr").joinpath(DIALOGUES)))


def load_dialogues(path: Path | None = None, intents: list[str] | None = None) -> list[Dialogue]:
    """JSONL `{"turns": [...], "intent": ...}` (plus optional per-turn `intents` and `code`, `kind`, `lang`, `id`),
    validated with line numbers. Without per-turn intents only the last turn is labelled: earlier turns take the
    label of the last (a continuation) unless the file says otherwise."""
    path = path or packaged_dialogues_path()
    if not path.is_file():
        raise EvoError(f"No such dialogue file: {path}", 'Give a JSONL file with {"turns": ["…", "…"], "intent": "…"} lines.')

    def parse(row: Any) -> Dialogue:
        turns = row.get("turns") if isinstance(row, dict) else None
        if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, str) and t.strip() for t in turns):
            raise ValueError("'turns' must list at least two non-empty messages")
        intent = row.get("intent")
        labels = row.get("intents") or [intent] * len(turns)
        code = row.get("code") or [False] * len(turns)
        if not isinstance(labels, list) or len(labels) != len(turns) or not isinstance(code, list) or len(code) != len(turns):
            raise ValueError("'intents' and 'code' need one entry per turn")
        intent = labels[-1] if intent is None else intent
        if labels[-1] != intent or (intents is not None and any(x not in intents for x in labels)):
            raise ValueError(f"intent {intent!r} must be the last turn's and every intent one of {', '.join(intents or [])}")
        return Dialogue(str(row.get("id", "")) or hashlib.sha256(json.dumps(turns).encode()).hexdigest()[:12], tuple(turns), tuple(labels),
                        tuple(bool(c) for c in code), str(row.get("kind", "continuation")), str(row.get("lang", "tr")))

    return read_rows(path, parse, "dialogues")


def split_dialogues(dialogues: list[Dialogue], fraction: float = HELDOUT_FRACTION) -> tuple[list[Dialogue], list[Dialogue]]:
    """Held out by dialogue (never a turn of a training dialogue), deterministic, stratified by kind."""
    train, held = [], []
    for kind in sorted({d.kind for d in dialogues}):
        group = sorted((d for d in dialogues if d.kind == kind), key=lambda d: hashlib.sha256(d.id.encode()).hexdigest())
        n = max(1, round(len(group) * fraction))
        held += group[:n]
        train += group[n:]
    return train, held


def _dense(intents: list[str], text: str, context: TurnContext, probs: np.ndarray) -> np.ndarray:
    """The context features of one message: previous intent (one-hot, and times its answer's code flag), the
    single router's log-probabilities, the previous confidence and code flag, the message's length, the single
    router's top probability and its probability for the previous intent."""
    prev = np.zeros(len(intents))
    if context.intent in intents:
        prev[intents.index(context.intent)] = 1.0
    words = len(text.split())
    same = probs[intents.index(context.intent)] if context.intent in intents else 0.0
    return np.concatenate([
        prev, prev * float(context.code), np.log(np.clip(probs, 1e-4, 1.0)),
        [context.confidence, float(context.code), math.log1p(len(text)) / 6, min(words, 12) / 12, float(words <= 4),
         float(probs.max()), float(same)],
    ])


class ContextModel:
    """The gate and the mapper (see the module docstring), over the single router's features."""

    def __init__(self, intents: list[str], gate: LogisticRegression, mapper: LogisticRegression, threshold: float = GATE_THRESHOLD) -> None:
        self.intents = list(intents)
        self.gate, self.mapper, self.threshold = gate, mapper, threshold

    # -- features ------------------------------------------------------------------------------
    @staticmethod
    def features(router, texts: list[str], contexts: list[TurnContext], probs: np.ndarray | None = None):
        """Sparse rows: the message's n-grams (the router's vectorizer) next to the dense context features;
        `probs` are the router's probabilities of `texts` when the caller has them already."""
        intents = [str(c) for c in router.clf.classes_]
        if probs is None:
            probs = router.probabilities(texts)
        dense = np.vstack([_dense(intents, t, c, p) for t, c, p in zip(texts, contexts, probs)])
        grams = router.tfidf.transform(router._prepare(texts))
        return hstack([grams, csr_matrix(dense)]).tocsr()

    # -- training ------------------------------------------------------------------------------
    @classmethod
    def train(cls, router, dialogues: list[Dialogue], singles: list[tuple[str, str]], C: float = 10.0, seed: int = 0) -> "ContextModel":
        """Positives: every dialogue turn marked continuation. Negatives: switches, recalls and new tasks of the
        dialogues, and single messages of the intent set placed after a random previous turn (a message that is
        clear on its own is no follow-up, whatever came before)."""
        intents = [str(c) for c in router.clf.classes_]
        rng = np.random.default_rng(seed)
        rows: list[tuple[str, TurnContext, int, str]] = []  # message, previous turn, follow-up?, right intent
        for d in dialogues:
            for i, (text, ctx, intent) in enumerate(d.contexts(), start=1):
                if i == len(d.turns) - 1:  # the judged turn: its kind says
                    is_follow = d.kind == "continuation"
                else:  # an earlier turn: it continues when it stays on the topic (code stays code)
                    is_follow = intent == ctx.intent or (intent.startswith("code") and ctx.intent.startswith("code"))
                rows.append((text, ctx, int(is_follow), intent))
        for text, intent in singles:
            prev = intents[int(rng.integers(len(intents)))]
            if prev != intent:  # the same intent twice: follow-up or not, the answer is the same
                rows.append((text, TurnContext(prev, float(rng.uniform(0.7, 1.0)), prev.startswith("code")), 0, intent))
        texts, contexts, follow, gold = (list(col) for col in zip(*rows))
        x = cls.features(router, texts, contexts)
        gate = LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit(x, follow)
        rows = [i for i, f in enumerate(follow) if f]
        mapper = LogisticRegression(C=C, max_iter=5000).fit(x[rows], [gold[i] for i in rows])
        return cls(intents, gate, mapper)

    # -- prediction ----------------------------------------------------------------------------
    def decide(self, router, text: str, context: TurnContext, single: dict[str, Any], probs: np.ndarray) -> dict[str, Any]:
        """The single-message prediction, or the continuation's intent when the gate says follow-up (`probs`: the
        router's probabilities for `text`, which made `single`)."""
        x = self.features(router, [text], [context], probs[None, :])
        p_follow = float(self.gate.predict_proba(x)[0][list(self.gate.classes_).index(1)])
        if p_follow < self.threshold:
            return {**single, "follow_up": round(p_follow, 4)}
        row = self.mapper.predict_proba(x)[0]
        best = int(np.argmax(row))
        intent = str(self.mapper.classes_[best])
        return {"intent": intent, "confidence": round(p_follow * float(row[best]), 4), "fallback": False, "predicted": intent,
                "stage": "context", "follow_up": round(p_follow, 4)}

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        np.savez_compressed(folder / CONTEXT_FILE, intents=np.array(self.intents, dtype=object), threshold=self.threshold,
                            gate_coef=self.gate.coef_, gate_intercept=self.gate.intercept_, gate_classes=self.gate.classes_,
                            map_coef=self.mapper.coef_, map_intercept=self.mapper.intercept_,
                            map_classes=np.array([str(c) for c in self.mapper.classes_], dtype=object))

    @classmethod
    def load(cls, folder: Path) -> "ContextModel | None":
        path = folder / CONTEXT_FILE
        if not path.is_file():
            return None  # a router trained before conversations were followed: single messages only
        try:
            data = np.load(path, allow_pickle=True)
            gate, mapper = LogisticRegression(), LogisticRegression()
            gate.coef_, gate.intercept_, gate.classes_ = data["gate_coef"], data["gate_intercept"], data["gate_classes"]
            mapper.coef_, mapper.intercept_, mapper.classes_ = data["map_coef"], data["map_intercept"], np.array([str(c) for c in data["map_classes"]])
            return cls([str(i) for i in data["intents"]], gate, mapper, float(data["threshold"]))
        except (OSError, ValueError, KeyError) as exc:
            raise EvoError(f"Router context model {path} is unreadable: {exc}", "Rebuild it with `evo router train`.") from exc
