"""Router: dataset, classifier edge cases, fallback, determinism, persistence, CLI — real embeddings."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from evo_tr.config import DEFAULT_INTENTS, load_settings
from evo_tr.errors import EvoError
from evo_tr.router import RouterClassifier, TurnContext, evaluate, evaluate_dialogues, load_router, packaged_model_dir, train_router
from evo_tr.router.context import load_dialogues, packaged_dialogues_path, split_dialogues
from evo_tr.router.dataset import file_sha256, load_examples, packaged_path, split
from evo_tr.text import normalize, turkish_lower
from tests.conftest import run_evo, run_json

UNSEEN = Path(__file__).parent / "data" / "router_unseen.jsonl"


@pytest.fixture(scope="module")
def router() -> RouterClassifier:
    return RouterClassifier.load(packaged_model_dir())


def test_turkish_lowercase():
    assert turkish_lower("İSTANBUL IŞIK") == "istanbul ışık"
    assert normalize("  Iğdır   İzmir ") == "ığdır izmir"


def test_dataset_shape():
    examples = load_examples(packaged_path(), DEFAULT_INTENTS)
    counts = Counter(e.intent for e in examples)
    assert set(counts) == set(DEFAULT_INTENTS) and min(counts.values()) >= 80
    rows = [json.loads(line) for line in packaged_path().read_text(encoding="utf-8").splitlines()]
    english = sum(r["lang"] == "en" for r in rows) / len(rows)
    assert 0.15 <= english <= 0.25
    assert any("Traceback" in e.text for e in examples) and any("\n" in e.text for e in examples)


def test_split_is_deterministic_and_stratified():
    examples = load_examples()
    train_a, valid_a = split(examples)
    train_b, valid_b = split(list(reversed(examples)))
    assert valid_a == valid_b or sorted(map(repr, valid_a)) == sorted(map(repr, valid_b))
    assert not {e.text for e in train_a} & {e.text for e in valid_a}
    share = Counter(e.intent for e in valid_a)
    total = Counter(e.intent for e in examples)
    for intent in total:
        assert abs(share[intent] / total[intent] - 0.2) < 0.02


def test_bad_dataset_lines_are_reported_with_numbers(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "merhaba", "intent": "general_chat"}\nnot json\n{"text": "", "intent": "x"}\n\xff\xfe\n')
    with pytest.raises(EvoError) as info:
        load_examples(bad, DEFAULT_INTENTS)
    assert "line 2" in info.value.message and "line 3" in info.value.message and "line 4" in info.value.message


@pytest.mark.parametrize("junk", ["", "   \n\t", "😀🎉👍", "?!... ---", "12345"])
def test_junk_never_reaches_the_model(router, junk):
    pred = router.predict(junk)
    assert pred == {"intent": "general_chat", "confidence": 0.0, "fallback": True, "predicted": "general_chat", "stage": "junk"}


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("nasilsin bugun", "general_chat"),
        ("Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    1/0\nZeroDivisionError: division by zero", "code_debug"),
        ("Write a Python function that returns the n-th triangular number.", "code_python"),
        ("Daha önce yazdığın kodu göster", "memory_recall"),
        ("Bu kodu düzelt", "code_debug"),
        ("'Göz var nizam var' atasözü ne demek?", "turkish_culture"),
        ("What did I tell you my sister's name was?", "memory_recall"),
    ],
)
def test_routes_typical_messages(router, text, intent):
    assert router.predict(text)["intent"] == intent


def test_very_long_input_is_cut_and_still_routed(router):
    text = "Bu kodu düzelt:\n" + "x = x + 1\n" * 1000 + "NameError: name 'x' is not defined"
    assert len(text) > 10_000
    prepared = router._prepare([text])[0]
    assert len(prepared) <= router.hp.max_chars
    assert prepared.startswith("bu kodu düzelt") and prepared.endswith("is not defined")
    pred = router.predict(text)
    assert pred["intent"] == "code_debug"


def test_predictions_are_deterministic(router):
    texts = [e.text for e in split(load_examples())[1]]
    first = router.predict_batch(texts)
    assert first == router.predict_batch(texts)
    assert first == [router.predict(t) for t in texts]


def test_low_confidence_falls_back_to_general_chat():
    router = RouterClassifier.load(packaged_model_dir(), threshold=0.999)
    preds = router.predict_batch(["Bugün biraz kod yazsam mı yoksa tarih mi okusam?", "hmm"])
    low = [p for p in preds if p["fallback"]]
    assert low, preds
    for p in low:
        assert p["intent"] == "general_chat" and p["confidence"] < 0.999 and p["predicted"] in DEFAULT_INTENTS


def test_train_save_load_round_trip(tmp_path):
    settings = load_settings(home=tmp_path)
    few = tmp_path / "dialogues.jsonl"  # a slice of the dialogues keeps the context model's training short here
    few.write_text("".join(line + "\n" for line in packaged_dialogues_path().read_text(encoding="utf-8").splitlines()[::6]), encoding="utf-8")
    trained, metrics, folder = train_router(settings, dialogues=few)
    assert folder == tmp_path / "router" / "v1" and (folder / "context.npz").is_file()
    assert metrics["accuracy"] >= 0.95 and metrics["macro_f1"] >= 0.95 and metrics["dialogues"]["n"] >= 8
    loaded = RouterClassifier.load(folder)
    texts = [e.text for e in load_examples(UNSEEN)]
    assert trained.predict_batch(texts) == loaded.predict_batch(texts)
    after = TurnContext("code_python", 0.98, True)
    assert [trained.predict(t, after) for t in texts[:10]] == [loaded.predict(t, after) for t in texts[:10]]
    assert load_router(settings).meta.version == 1
    _, _, second = train_router(settings, dialogues=few)
    assert second == tmp_path / "router" / "v2" and load_router(settings).meta.version == 2


def test_shipped_router_matches_shipped_dataset():
    meta = json.loads((packaged_model_dir() / "router.json").read_text())
    assert meta["dataset_sha256"] == file_sha256(packaged_path())
    assert meta["metrics"]["accuracy"] >= 0.95
    assert (packaged_model_dir() / "context.npz").is_file() and meta["metrics"]["dialogues"]["n"] >= 60


def test_dialogues_are_turkish_first_with_switches_and_held_out_by_dialogue():
    dialogues = load_dialogues(None, DEFAULT_INTENTS)
    kinds = Counter(d.kind for d in dialogues)
    assert len(dialogues) >= 300 and kinds["continuation"] >= 150 and kinds["switch"] >= 60 and kinds["recall"] >= 20
    assert sum(d.lang == "tr" for d in dialogues) >= 0.7 * len(dialogues)
    assert all(2 <= len(d.turns) <= 3 and len(d.intents) == len(d.turns) == len(d.code) for d in dialogues)
    train, held = split_dialogues(dialogues)
    assert not {d.id for d in train} & {d.id for d in held} and 0.15 <= len(held) / len(dialogues) <= 0.25
    assert not {d.turns for d in train} & {d.turns for d in held}
    assert {d.id for d in split_dialogues(list(reversed(dialogues)))[1]} == {d.id for d in held}  # by id, not by file order


@pytest.mark.parametrize("previous,text,intent", [
    (TurnContext("code_python", 0.99, True), "peki bunu daha kısa yaz", "code_python"),
    (TurnContext("code_python", 0.99, True), "bir de test ekle", "code_python"),
    (TurnContext("code_debug", 0.95, True), "olmadı, yine aynı hata", "code_debug"),
    (TurnContext("turkish_culture", 0.97, False), "başka bir örnek verir misin?", "turkish_culture"),
    (TurnContext("code_python", 0.99, True), "teşekkürler, bu arada hava çok güzel", "general_chat"),
    (TurnContext("code_python", 0.99, True), "az önce yazdığın kodu göster", "memory_recall"),
])
def test_follow_ups_keep_the_conversation_and_a_new_topic_starts_its_own(router, previous, text, intent):
    assert router.context is not None and router.predict(text, previous)["intent"] == intent


def test_follow_up_accuracy_on_held_out_dialogues_beats_routing_each_message_alone(router):
    held = split_dialogues(load_dialogues(None, DEFAULT_INTENTS))[1]
    result = evaluate_dialogues(router, held)
    assert result["n"] >= 60 and result["follow_up_accuracy"] >= 0.8
    assert result["by"]["kind:continuation"]["accuracy"] >= result["by"]["kind:continuation"]["alone"] + 0.25
    assert result["by"]["kind:switch"]["accuracy"] >= 0.85  # a clear new topic is not swallowed by the previous one


def test_router_trained_with_another_embedder_is_refused(tmp_path, router):
    folder = router.save(tmp_path / "r")
    meta = json.loads((folder / "router.json").read_text())
    meta["embedder"] = {"name": "other-model", "dim": 768}
    (folder / "router.json").write_text(json.dumps(meta))
    with pytest.raises(EvoError) as info:
        RouterClassifier.load(folder)
    assert "evo router train" in info.value.hint


def test_generalises_to_unseen_messages(router):
    metrics = evaluate(router, load_examples(UNSEEN), latency_runs=0)
    assert metrics["accuracy"] >= 0.9 and metrics["macro_f1"] >= 0.9


def test_cli_eval_json_and_predict():
    out = run_json("router", "eval", "--data", str(UNSEEN), "--json")
    for key in ("accuracy", "macro_f1", "confusion", "latency_ms_p50", "latency_ms_p99"):
        assert key in out
    assert sum(sum(row.values()) for row in out["confusion"].values()) == out["n"] == 50
    pred = run_json("router", "predict", "--json", "Python'da liste sıralayan fonksiyon yaz")
    assert pred["intent"] == "code_python" and pred["expert"] == "python_coder"
    bad = run_evo("router", "eval", "--data", "/no/such/file.jsonl")
    assert bad.returncode == 2 and "No such dataset" in bad.stderr


def test_cli_eval_reports_single_message_and_follow_up_accuracy_separately(tmp_path):
    out = run_json("router", "eval", "--json")
    assert out["accuracy"] >= 0.95 and out["dialogues"]["n"] >= 60
    assert out["dialogues"]["follow_up_accuracy"] > out["dialogues"]["follow_up_accuracy_alone"]
    mine = tmp_path / "talk.jsonl"
    mine.write_text('{"turns": ["Python\'da bir listeyi sıralayan fonksiyon yazar mısın?", "peki bunu daha kısa yaz"], "intent": "code_python"}\n'
                    '{"turns": ["Damlaya damlaya göl olur ne demek?", "başka bir örnek verir misin?"], "intent": "turkish_culture"}\n', encoding="utf-8")
    talk = run_json("router", "eval", "--data", str(mine), "--json")["dialogues"]
    assert talk["n"] == 2 and talk["follow_up_accuracy"] == 1.0 and talk["follow_up_accuracy_alone"] < 1.0
    mine.write_text('{"turns": ["tek mesaj"], "intent": "general_chat"}\n', encoding="utf-8")
    bad = run_evo("router", "eval", "--data", str(mine))
    assert bad.returncode == 2 and "line 1" in bad.stderr and "Traceback" not in bad.stderr


def test_embeddings_are_normalised_and_batched(router):
    vecs = router.embedder.query(["merhaba", "selam", "import os"])
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2])
    assert asdict(router.embedder.info)["dim"] == 384
