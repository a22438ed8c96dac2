"""The router: picks the intent (and so the expert) for every message."""

from __future__ import annotations

import re
import statistics
import time
from importlib import resources
from pathlib import Path
from typing import Any

from sklearn.metrics import accuracy_score, f1_score

from evo_tr.config import Settings
from evo_tr.errors import EvoError
from evo_tr.router.classifier import Prediction, RouterClassifier, RouterHyperparams
from evo_tr.router.context import ContextModel, Dialogue, TurnContext, load_dialogues, split_dialogues
from evo_tr.router.dataset import Example, file_sha256, load_examples, packaged_path, split

__all__ = ["Prediction", "RouterClassifier", "TurnContext", "evaluate", "evaluate_dialogues", "load_router", "train_router", "expert_for"]

PACKAGED_MODEL = "data/router"
VERSION_RE = re.compile(r"^v(\d+)$")


def hyperparams(settings: Settings) -> RouterHyperparams:
    r = settings.router
    return RouterHyperparams(C=r.C, ngram_weight=r.ngram_weight, max_chars=r.max_chars, fast_threshold=r.fast_threshold)


def _versions(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := VERSION_RE.match(p.name)) and (p / "router.json").is_file())


def packaged_model_dir() -> Path:
    return Path(str(resources.files("evo_tr").joinpath(PACKAGED_MODEL)))


def load_router(settings: Settings) -> RouterClassifier:
    """The newest router trained in the data dir, else the one shipped in the package."""
    versions = _versions(settings.router_dir)
    folder = settings.router_dir / f"v{versions[-1]}" if versions else packaged_model_dir()
    if not (folder / "router.json").is_file():
        router, _, _ = train_router(settings)
        return router
    router = RouterClassifier.load(folder, threshold=settings.router.threshold)
    unknown = set(router.meta.intents) - set(settings.router.intents)
    if unknown:
        raise EvoError(f"Router {folder} predicts intents not in config: {sorted(unknown)}.", "Retrain with `evo router train`.")
    return router


def train_router(settings: Settings, data: Path | None = None, save: bool = True,
                 dialogues: Path | None = None) -> tuple[RouterClassifier, dict[str, Any], Path | None]:
    """Train on the 80% split, measure on the 20%, save as the next version in the data dir; the context model
    (router/context.py) is trained on the dialogues' 80% (held out by dialogue) and measured on the rest."""
    path = data or packaged_path()
    examples = load_examples(path, settings.router.intents)
    train, valid = split(examples)
    versions = _versions(settings.router_dir)
    version = (versions[-1] + 1) if versions else 1
    talks = load_dialogues(dialogues, settings.router.intents)
    talk_train, talk_held = split_dialogues(talks)
    # A dialogue's first turn is a message on its own, written the way people open a conversation ("kara delik
    # nedir", "merge sort yazar mısın"): the single router learns from those of the training dialogues too, since a
    # misrouted opener drags every follow-up with it. So do the last turns that stand on their own (a switch, a
    # recall, a new task: "pandas'tan önce hangi modülü kullanmıştın?"). Held-out dialogues stay out entirely.
    singles = [(e.text, e.intent) for e in train] + [(d.turns[0], d.intents[0]) for d in talk_train] + [
        (d.turns[-1], d.intent) for d in talk_train if d.kind != "continuation"]
    router = RouterClassifier.train(
        [t for t, _ in singles], [i for _, i in singles], hyperparams(settings), settings.router.threshold, version=version
    )
    router.context = ContextModel.train(router, talk_train, singles)
    metrics = evaluate(router, valid, latency_runs=0)
    metrics["dialogues"] = {k: v for k, v in evaluate_dialogues(router, talk_held).items() if k != "errors"}
    router.meta.metrics = metrics
    router.meta.dataset_sha256 = file_sha256(path)
    folder = router.save(settings.router_dir / f"v{version}") if save else None
    return router, metrics, folder


def evaluate(router: RouterClassifier, examples: list[Example], latency_runs: int = 1) -> dict[str, Any]:
    """Accuracy, macro-F1 and confusion of the classifier's own choice; single-message latency when asked."""
    texts, gold = [e.text for e in examples], [e.intent for e in examples]
    predictions = router.predict_batch(texts)
    preds = [p["predicted"] for p in predictions]
    fallbacks = sum(p["fallback"] for p in predictions)
    labels = sorted(set(gold) | set(preds))
    confusion = {g: {p: 0 for p in labels} for g in labels}
    for g, p in zip(gold, preds):
        confusion[g][p] += 1
    result: dict[str, Any] = {
        "n": len(examples),
        "accuracy": round(float(accuracy_score(gold, preds)), 4),
        "macro_f1": round(float(f1_score(gold, preds, average="macro")), 4),
        "fallback_rate": round(fallbacks / len(examples), 4),
        "fast_stage_share": round(sum(p["stage"] == "fast" for p in predictions) / len(examples), 4),
        "confusion": confusion,
        "errors": [{"text": t, "intent": g, "predicted": p} for t, g, p in zip(texts, gold, preds) if g != p],
    }
    if latency_runs:
        times = []
        for _ in range(latency_runs):
            for text in texts:
                start = time.perf_counter()
                router.predict(text)
                times.append(1000 * (time.perf_counter() - start))
        times.sort()
        result["latency_ms_p50"] = round(statistics.median(times), 2)
        result["latency_ms_p99"] = round(times[min(len(times) - 1, round(0.99 * (len(times) - 1)))], 2)
    return result


def evaluate_dialogues(router: RouterClassifier, dialogues: list[Dialogue]) -> dict[str, Any]:
    """The judged (last) turn of each dialogue, routed as in a chat: every earlier turn by the router itself, its
    prediction passed on as the context (whether its answer had code comes from the dialogue), against the same
    turn routed alone. Accuracy overall, per kind (continuation, switch, recall, new_task) and per language."""
    with_context, alone, rows = 0, 0, []
    per: dict[str, list[int]] = {}
    for d in dialogues:
        previous = None
        for i, text in enumerate(d.turns):
            p = router.predict(text, previous)
            previous = TurnContext(p["intent"], float(p["confidence"]), d.code[i])
        single = router.predict(d.turns[-1])
        ok, ok_alone = p["intent"] == d.intent, single["intent"] == d.intent
        with_context += ok
        alone += ok_alone
        for key in (f"kind:{d.kind}", f"lang:{d.lang}"):
            per.setdefault(key, [0, 0, 0])
            per[key][0] += 1
            per[key][1] += ok
            per[key][2] += ok_alone
        if not ok:
            rows.append({"id": d.id, "turns": list(d.turns), "intent": d.intent, "predicted": p["intent"], "alone": single["intent"]})
    n = len(dialogues)
    return {
        "n": n,
        "follow_up_accuracy": round(with_context / n, 4),
        "follow_up_accuracy_alone": round(alone / n, 4),
        "by": {k: {"n": v[0], "accuracy": round(v[1] / v[0], 4), "alone": round(v[2] / v[0], 4)} for k, v in sorted(per.items())},
        "errors": rows,
    }


def expert_for(settings: Settings, intent: str) -> str:
    """The expert configured for an intent ('base' when none)."""
    return settings.router.experts.get(intent, "base")
