"""RouterClassifier: multilingual-e5 embedding + character n-grams → logistic regression → intent."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from evo_tr.config import RouterSettings
from evo_tr.embeddings import Embedder, EmbedderInfo, get_embedder
from evo_tr.errors import EvoError
from evo_tr.router.context import ContextModel, TurnContext
from evo_tr.text import clip_middle, has_letters, normalize

FALLBACK_INTENT = "general_chat"
NGRAM_RANGE = (2, 5)
MODEL_FILE = "router.npz"
META_FILE = "router.json"


class Prediction(TypedDict):
    """The design's predict() result, plus whether the fallback replaced the model's choice."""

    intent: str
    confidence: float
    fallback: bool
    predicted: str
    stage: str
    follow_up: NotRequired[float]  # with a previous turn: the gate's probability that this message continues it


_DEFAULTS = RouterSettings()  # every router default is defined once, in config.py


@dataclass(frozen=True)
class RouterHyperparams:
    """Training knobs; char n-grams add robustness to typos and missing diacritics."""

    C: float = _DEFAULTS.C
    ngram_weight: float = _DEFAULTS.ngram_weight
    fast_threshold: float = _DEFAULTS.fast_threshold
    max_chars: int = _DEFAULTS.max_chars
    max_iter: int = 5000


@dataclass
class RouterMeta:
    """What is saved next to the weights: identity of the embedder, data and metrics."""

    version: int
    intents: list[str]
    embedder: dict
    hyperparams: dict
    dataset_sha256: str = ""
    train_size: int = 0
    metrics: dict = field(default_factory=dict)
    created_at: str = ""


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True, vocabulary=vocabulary)


class RouterClassifier:
    """Predicts the intent of a message; junk never reaches the model, low confidence falls back."""

    def __init__(
        self,
        clf: LogisticRegression,
        fast: LogisticRegression,
        tfidf: TfidfVectorizer,
        meta: RouterMeta,
        threshold: float = _DEFAULTS.threshold,
        embedder: Embedder | None = None,
    ) -> None:
        self.clf = clf
        self.fast = fast
        self.tfidf = tfidf
        self.meta = meta
        self.threshold = threshold
        self.hp = RouterHyperparams(**meta.hyperparams)
        self.embedder = embedder or get_embedder()
        self.context: ContextModel | None = None  # set by train_router / load

    # -- features ------------------------------------------------------------------------
    def _prepare(self, texts: list[str]) -> list[str]:
        return [normalize(clip_middle(t, self.hp.max_chars)) for t in texts]

    # -- training ------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: list[str],
        intents: list[str],
        hp: RouterHyperparams = RouterHyperparams(),
        threshold: float = _DEFAULTS.threshold,
        embedder: Embedder | None = None,
        version: int = 0,
    ) -> "RouterClassifier":
        if len(set(intents)) < 2:
            raise EvoError("Router training needs examples of at least two intents.", "Check the dataset.")
        embedder = embedder or get_embedder()
        prepared = [normalize(clip_middle(t, hp.max_chars)) for t in texts]
        tfidf = _vectorizer().fit(prepared)
        grams = tfidf.transform(prepared)
        fast = LogisticRegression(C=hp.C, max_iter=hp.max_iter).fit(grams, intents)
        features = hstack([csr_matrix(embedder.query(prepared)), grams * hp.ngram_weight]).tocsr()
        clf = LogisticRegression(C=hp.C, max_iter=hp.max_iter).fit(features, intents)
        meta = RouterMeta(
            version=version,
            intents=[str(c) for c in clf.classes_],
            embedder=asdict(EmbedderInfo()),
            hyperparams=asdict(hp),
            train_size=len(texts),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        return cls(clf, fast, tfidf, meta, threshold, embedder)

    # -- prediction ----------------------------------------------------------------------
    def _rows(self, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        """Two stages: character n-grams alone answer when very sure (~1 ms); otherwise embed (~15 ms), in one
        batch for every message the n-gram stage is not sure of. Rows are `clf.classes_` probabilities; junk is
        uniform with stage "junk"."""
        n = len(self.clf.classes_)
        out, stages = np.full((len(texts), n), 1.0 / n), ["junk"] * len(texts)
        real = [i for i, t in enumerate(texts) if isinstance(t, str) and has_letters(t)]
        if not real:
            return out, stages
        prepared = self._prepare([texts[i] for i in real])
        grams = self.tfidf.transform(prepared)
        rows = self.fast.predict_proba(grams)
        unsure = [k for k in range(len(real)) if rows[k].max() < self.hp.fast_threshold]
        if unsure:
            dense = csr_matrix(self.embedder.query([prepared[k] for k in unsure]))
            rows[unsure] = self.clf.predict_proba(hstack([dense, grams[unsure] * self.hp.ngram_weight]).tocsr())
        out[real] = rows
        for k, i in enumerate(real):
            stages[i] = "full" if k in unsure else "fast"
        return out, stages

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Each message's intent probabilities (columns: `clf.classes_`), as predict sees them, in one batch."""
        return self._rows(texts)[0]

    def _prediction(self, row: np.ndarray, stage: str) -> Prediction:
        if stage == "junk":
            return Prediction(intent=FALLBACK_INTENT, confidence=0.0, fallback=True, predicted=FALLBACK_INTENT, stage="junk")
        best = int(np.argmax(row))
        intent, conf = str(self.clf.classes_[best]), float(row[best])
        low = conf < self.threshold
        return Prediction(intent=FALLBACK_INTENT if low else intent, confidence=round(conf, 4), fallback=low, predicted=intent, stage=stage)

    def predict(self, text: str, context: "TurnContext | None" = None) -> Prediction:
        """The message's intent; with the previous turn as `context`, a follow-up keeps the conversation's intent
        (router/context.py) when this router has a context model. The message's probabilities are computed once
        and serve both the single prediction and the context model's features."""
        (row,), (stage,) = self._rows([text])
        single = self._prediction(row, stage)
        if context is None or self.context is None or stage == "junk":
            return single
        return self.context.decide(self, text, context, single, row)

    def predict_batch(self, texts: list[str]) -> list[Prediction]:
        """Single messages, each on its own."""
        results: list[Prediction] = []
        for text in texts:
            (row,), (stage,) = self._rows([text])
            results.append(self._prediction(row, stage))
        return results

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Weights as .npz and metadata as JSON (no pickle: loadable across library versions)."""
        folder.mkdir(parents=True, exist_ok=True)
        vocab = sorted(self.tfidf.vocabulary_.items(), key=lambda kv: kv[1])
        np.savez_compressed(
            folder / MODEL_FILE,
            coef=self.clf.coef_,
            intercept=self.clf.intercept_,
            fast_coef=self.fast.coef_,
            fast_intercept=self.fast.intercept_,
            idf=self.tfidf.idf_,
            vocab=np.array([k for k, _ in vocab], dtype=object),
        )
        if self.context is not None:
            self.context.save(folder)
        (folder / META_FILE).write_text(json.dumps(asdict(self.meta), ensure_ascii=False, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path, threshold: float = _DEFAULTS.threshold, embedder: Embedder | None = None) -> "RouterClassifier":
        try:
            meta = RouterMeta(**json.loads((folder / META_FILE).read_text(encoding="utf-8")))
            data = np.load(folder / MODEL_FILE, allow_pickle=True)
        except (OSError, ValueError, TypeError) as exc:
            raise EvoError(f"Router model in {folder} is unreadable: {exc}", "Rebuild it with `evo router train`.") from exc
        if meta.embedder != asdict(EmbedderInfo()):
            raise EvoError(
                f"Router in {folder} was trained with embedder {meta.embedder}, not {asdict(EmbedderInfo())}.",
                "Retrain it with `evo router train`.",
            )
        vocab = {str(k): i for i, k in enumerate(data["vocab"])}
        tfidf = _vectorizer(vocab)
        tfidf.idf_ = data["idf"]
        clf, fast = LogisticRegression(), LogisticRegression()
        for model, prefix in ((clf, ""), (fast, "fast_")):
            model.classes_ = np.array(meta.intents)
            model.coef_ = data[f"{prefix}coef"]
            model.intercept_ = data[f"{prefix}intercept"]
        router = cls(clf, fast, tfidf, meta, threshold, embedder)
        router.context = ContextModel.load(folder)
        return router
