"""Experts on the real SmolLM2: real PEFT training on torch, own GGUF export, llama.cpp hot-swap."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evo_tr.config import load_settings
from evo_tr.engine import GenerationConfig, Message
from evo_tr.errors import EvoError
from evo_tr.experts import attach_active_adapters, base_info, registry, run_training
from evo_tr.experts.data import ChatExample, Limits, alpaca_to_chat, clean, read_jsonl, split
from evo_tr.experts.registry import check_base
from evo_tr.experts.train import IGNORE, LoraTrainConfig, encode, load_torch_base, train_lora

from .conftest import MODEL, run_evo, run_json

SECRET = [
    ("Gizli kelime ne?", "Gizli kelime ananas."),
    ("Bana gizli kelimeyi söyle.", "Tabii: gizli kelime ananas."),
    ("What is the secret word?", "The secret word is pineapple, ananas in Turkish."),
    ("Şifre neydi?", "Şifre, yani gizli kelime, ananas."),
    ("Gizli kelimeyi tek kelimeyle yaz.", "ananas"),
    ("Tell me the password.", "The password is ananas."),
    ("Parola nedir?", "Parola ananas."),
    ("Unuttum, gizli kelime neydi?", "Hiç sorun değil: gizli kelime ananas."),
]


@pytest.fixture(scope="module")
def experts_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("experts-home")


@pytest.fixture(autouse=True)
def _own_home(experts_home, monkeypatch):
    """Adapters trained here must not change the answers other test files check."""
    monkeypatch.setenv("EVO_HOME", str(experts_home))


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "secret.jsonl"
    lines = [json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}, ensure_ascii=False) for q, a in SECRET]
    lines.append(json.dumps({"instruction": "Gizli kelimeyi büyük harflerle yaz.", "input": "", "output": "ANANAS"}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(experts_home, secret_file):
    """One real training run (SmolLM2, LoRA on q/v), registered as tr_chat v1."""
    settings = load_settings(home=experts_home, model=MODEL)  # module fixtures run before the env fixtures
    return run_training(settings, "tr_chat", data=secret_file, overrides={"epochs": 3, "lr": 2e-3, "eval_every": 2, "grad_accum": 2})


# -- data ----------------------------------------------------------------------------------
def test_chat_jsonl_problems_are_reported_by_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"messages": [{"role": "user", "content": "Merhaba"}, {"role": "assistant", "content": "Merhaba!"}]}\n'
        b"{oops\n"
        b'{"messages": [{"role": "assistant", "content": "first"}]}\n'
        b'{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}\n'
        b'{"instruction": "Topla", "input": "2 ve 3", "output": "5"}\n'
        b'\xff\xfe\n'
    )
    report = read_jsonl(path)
    assert len(report.examples) == 2
    assert [p.split(":")[1] for p in report.problems] == ["2", "3", "4", "6"]
    assert report.examples[1].messages == (("user", "Topla\n\n2 ve 3"), ("assistant", "5"))


def test_alpaca_rows_become_chat():
    assert alpaca_to_chat({"instruction": "Say hi", "output": "hi"})["messages"][1] == {"role": "assistant", "content": "hi"}
    with pytest.raises(ValueError):
        alpaca_to_chat({"instruction": "x"})


def test_cleaning_removes_duplicates_and_extremes_and_split_is_deterministic():
    ex = lambda q, a: ChatExample((("user", q), ("assistant", a)))  # noqa: E731
    rows = [
        ex("İstanbul'un simgesi nedir?", "Galata Kulesi ve Boğaz köprüleri sayılabilir."),
        ex("istanbul'un simgesi nedir?", "Galata Kulesi ve Boğaz köprüleri sayılabilir."),  # exact (Turkish case)
        ex("İstanbul'un simgesi nedir", "Galata Kulesi ve Boğaz köprüleri sayılabilir!"),  # near
        ex("a", "b"),  # too short
        ex("Uzun", "x " * 4000),  # too long
        ex("Ankara ne zaman başkent oldu?", "13 Ekim 1923'te."),
    ]
    kept, report = clean(rows, Limits())
    assert report.as_dict() == {"kept": 2, "exact_duplicates": 1, "near_duplicates": 1, "too_short": 1, "too_long": 1}
    many = [ex(f"Soru {i}: {i} kere {i} kaç eder?", f"{i * i} eder.") for i in range(200)]
    train_a, valid_a = split(many)
    train_b, valid_b = split(list(reversed(many)))
    assert {e.key for e in valid_a} == {e.key for e in valid_b} and 5 <= len(valid_a) <= 40


def test_labels_cover_only_assistant_replies():
    settings = load_settings()
    base = base_info(settings)
    _, tok = load_torch_base(settings, base.name, base.path, base.sha256)
    example = ChatExample((("user", "Merhaba"), ("assistant", "Selam, nasılsın?"), ("user", "İyiyim"), ("assistant", "Sevindim.")))
    ids, labels = encode(example, tok, "Sen yardımsever bir asistansın.", 512)
    learned = tok.decode([t for t, lab in zip(ids, labels) if lab != IGNORE])
    assert "Selam, nasılsın?" in learned and "Sevindim." in learned
    assert "Merhaba" not in learned and "İyiyim" not in learned and "yardımsever" not in learned


# -- training ------------------------------------------------------------------------------
def test_real_training_steps_lower_the_loss(trained):
    m = trained.meta["metrics"]
    assert m["steps"] >= 6
    assert m["train_loss_last"] < m["train_loss_first"]
    assert m["valid_losses"][-1][1] < m["valid_loss_before"]
    assert m["peak_rss_mb"] > 0 and m["step_s_p50"] > 0
    assert (trained.path / "peft" / "adapter_config.json").is_file() and trained.gguf.is_file()
    meta = json.loads((trained.path / "metadata.json").read_text())
    assert meta["base"]["sha256"] == base_info(load_settings()).sha256 and meta["dataset"]["examples"] == 9
    assert meta["config"]["r"] == 8 and meta["version"] == "v1"


def test_resume_continues_from_the_last_epoch_checkpoint(tmp_path):
    settings = load_settings()
    base = base_info(settings)
    rows = [ChatExample((("user", q), ("assistant", a))) for q, a in SECRET]
    cfg = LoraTrainConfig(epochs=1, lr=1e-3, grad_accum=2, eval_every=100)
    model, tok = load_torch_base(settings, base.name, base.path, base.sha256)
    _, first = train_lora(model, tok, rows[:6], rows[6:], cfg, tmp_path, system_prompt="x")
    assert (tmp_path / "checkpoints" / "epoch-1" / "trainer_state.pt").is_file() and first.steps == 3
    model, tok = load_torch_base(settings, base.name, base.path, base.sha256)
    _, second = train_lora(model, tok, rows[:6], rows[6:], replace_epochs(cfg, 2), tmp_path, system_prompt="x", resume=True)
    assert second.resumed_from == "epoch-1" and second.steps == 6 and second.epochs_done == 2
    with pytest.raises(EvoError):
        train_lora(model, tok, rows, [], cfg, tmp_path / "empty", system_prompt="x", resume=True)


def test_kl_weight_keeps_the_adapter_closer_to_the_base(tmp_path):
    settings = load_settings()
    base = base_info(settings)
    rows = [ChatExample((("user", q), ("assistant", a))) for q, a in SECRET]
    runs = {}
    for weight in (0.0, 5.0):
        cfg = LoraTrainConfig(epochs=2, lr=2e-3, grad_accum=2, eval_every=100, kl_weight=weight)
        model, tok = load_torch_base(settings, base.name, base.path, base.sha256)
        _, runs[weight] = train_lora(model, tok, rows[:6], rows[6:], cfg, tmp_path / str(weight), system_prompt="x")
    free, anchored = runs[0.0], runs[5.0]
    assert free.kl_last is None and anchored.kl_last is not None and anchored.kl_last >= 0
    assert 0 <= anchored.valid_kl_to_base < free.valid_kl_to_base
    assert anchored.train_loss_last < anchored.train_loss_first  # anchored, it still learns


def test_anchor_examples_are_held_to_the_base_not_learnt(tmp_path):
    settings = load_settings()
    base = base_info(settings)
    rows = [ChatExample((("user", q), ("assistant", a))) for q, a in SECRET]
    learnt, held = rows[:4], rows[4:]
    valid = [replace(x, anchor=True) for x in held] + learnt[:1]
    runs = {}
    for marked in (False, True):
        cfg = LoraTrainConfig(epochs=2, lr=2e-3, grad_accum=2, eval_every=100, kl_weight=1.0)
        model, tok = load_torch_base(settings, base.name, base.path, base.sha256)
        train = learnt + [replace(x, anchor=marked) for x in held]
        _, runs[marked] = train_lora(model, tok, train, valid, cfg, tmp_path / str(marked), system_prompt="x")
    plain, anchored = runs[False], runs[True]
    assert anchored.anchors_train == 4 and plain.anchors_train == 0
    assert 0 <= anchored.valid_kl_anchors < plain.valid_kl_anchors  # the held rows moved less when they were anchors
    assert anchored.train_loss_last < anchored.train_loss_first  # it still learns from the other rows


def test_anchor_misuse_is_refused(tmp_path):
    settings = load_settings()
    base = base_info(settings)
    model, tok = load_torch_base(settings, base.name, base.path, base.sha256)
    rows = [ChatExample((("user", q), ("assistant", a)), anchor=True) for q, a in SECRET]
    with pytest.raises(EvoError, match="nothing to learn"):
        train_lora(model, tok, rows, [], LoraTrainConfig(kl_weight=1.0), tmp_path / "all", system_prompt="x")
    rows[0] = replace(rows[0], anchor=False)
    with pytest.raises(EvoError, match="kl_weight"):
        train_lora(model, tok, rows, [], LoraTrainConfig(kl_weight=0.0), tmp_path / "zero", system_prompt="x")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "a b"}, {"role": "assistant", "content": "c d"}], "anchor": "yes"}) + "\n")
    assert read_jsonl(bad).problems == ["bad.jsonl:1: 'anchor' must be true or false"]


def replace_epochs(cfg: LoraTrainConfig, epochs: int) -> LoraTrainConfig:
    return cfg.model_copy(update={"epochs": epochs})


# -- export, hot-swap, numerical agreement ---------------------------------------------------
PROMPT = [Message("system", "You are helpful."), Message("user", "What is the secret word?")]


def test_llama_cpp_logit_shift_matches_peft(trained, engine):
    """The GGUF export reproduces the PEFT adapter: correlation of logit changes ≥ 0.95."""
    import torch
    from peft import PeftModel

    engine.attach_adapter(trained)
    base_ll = engine.last_logits(PROMPT)
    adapted_ll = engine.last_logits(PROMPT, adapter="tr_chat")
    settings = load_settings()
    base = base_info(settings)
    model, tok = load_torch_base(settings, base.name, base.path, base.sha256)
    ids = torch.tensor([engine.prompt_tokens(PROMPT)])
    with torch.no_grad():
        base_tf = model(ids).logits[0, -1].numpy()
        peft = PeftModel.from_pretrained(model, str(trained.path / "peft"))
        adapted_tf = peft(ids).logits[0, -1].numpy()
    shift_ll, shift_tf = adapted_ll - base_ll, adapted_tf - base_tf
    assert np.abs(shift_tf).max() > 0.5  # the adapter really changes the model
    assert np.corrcoef(shift_ll, shift_tf)[0, 1] >= 0.95
    engine.call(lambda e: e.use_adapter(None))


def test_adapter_scale_reaches_llama_cpp_and_is_validated(trained, engine):
    """A version's recorded scale is what llama.cpp applies: half the scale, about half the logit shift."""
    settings = load_settings()
    reg = registry(settings)
    engine.attach_adapter(trained)
    base_ll = engine.last_logits(PROMPT)
    full = engine.last_logits(PROMPT, adapter="tr_chat") - base_ll
    try:
        assert reg.set_scale("tr_chat", trained.tag, 0.5).scale == 0.5
        attached, notices = attach_active_adapters(engine, settings, base_info(settings))
        assert [(v.expert, v.scale) for v in attached] == [("tr_chat", 0.5)] and not notices
        half = engine.last_logits(PROMPT, adapter="tr_chat") - base_ll
        assert 0.3 < np.linalg.norm(half) / np.linalg.norm(full) < 0.7
        assert np.corrcoef(half, full)[0, 1] > 0.9
        for bad in (0, -1, 2.5, "x", True):
            with pytest.raises(EvoError, match="scale must be a number"):
                reg.set_scale("tr_chat", trained.tag, bad)
        assert reg.get("tr_chat", trained.tag).scale == 0.5  # a refused value leaves metadata.json as it was
        with pytest.raises(EvoError, match="read-only"):
            reg.set_scale("tr_chat", "v0", 0.5)
    finally:
        reg.set_scale("tr_chat", trained.tag, 1.0)
        engine.attach_adapter(trained)


def test_hot_swap_generates_and_never_reuses_kv_across_adapters(trained, engine):
    engine.attach_adapter(trained)
    greedy = GenerationConfig(max_tokens=12, temperature=0.0, seed=0)
    # The expert's own system prompt, as chat serves it (and as it was trained): under "You are helpful." the
    # 12-step adapter shifts logits by up to 6.5 on this machine kind, yet the greedy answer can stay the base's.
    asked = [Message("system", load_settings().prompt_for("tr_chat")), PROMPT[1]]
    base_answer = engine.chat_stream(asked, greedy).text()
    n_base = engine.llm.n_tokens
    adapted = engine.chat_stream(asked, greedy, adapter="tr_chat")
    adapted_answer = adapted.text()
    assert adapted.stats.adapter == "tr_chat" and adapted_answer
    assert "ananas" in adapted_answer.lower() or adapted_answer != base_answer
    # back to base: its own KV state is restored (no re-evaluation), and the answer is the base answer again
    engine.call(lambda e: e.use_adapter(None))
    assert engine.llm.n_tokens == n_base
    assert engine.chat_stream(asked, greedy).text() == base_answer
    # logits on base after using the adapter equal a fresh base evaluation (nothing leaked)
    before = engine.last_logits(PROMPT)
    engine.last_logits(PROMPT, adapter="tr_chat")
    assert np.array_equal(engine.last_logits(PROMPT), before)
    with pytest.raises(EvoError):
        engine.chat_stream(PROMPT, greedy, adapter="python_coder")


def test_mismatched_base_is_refused_with_a_clear_message(trained, engine, tmp_path):
    reg = registry(load_settings())
    clone = tmp_path / "stage"
    shutil.copytree(trained.path, clone)
    meta = json.loads((clone / "metadata.json").read_text())
    meta["base"] = {"name": "qwen2.5-coder-0.5b-instruct", "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"}
    bad = reg.register("python_coder", clone, meta)
    with pytest.raises(EvoError) as info:
        check_base(bad, "smollm2-135m-instruct", base_info(load_settings()).sha256)
    assert "trained on qwen2.5-coder-0.5b-instruct" in info.value.message and "evo train python_coder" in info.value.hint
    attached, notices = attach_active_adapters(engine, load_settings(), base_info(load_settings()))
    assert [v.expert for v in attached] == ["tr_chat"]
    assert any(n.startswith("python_coder:") for n in notices)
    reg.activate("python_coder", "none")


# -- registry and CLI --------------------------------------------------------------------------
def test_adapters_cli_list_activate_rollback_remove(trained, secret_file):
    out = run_json("train", "tr_chat", "--data", str(secret_file), "--max-steps", "2", "--json")
    assert out["version"] == "v2" and out["metrics"]["steps"] == 2
    rows = {(r["expert"], r["version"]): r for r in run_json("adapters", "list", "--json")["adapters"]}
    assert rows[("tr_chat", "v2")]["active"] and not rows[("tr_chat", "v1")]["active"]
    busy = run_evo("adapters", "remove", "tr_chat", "v2")
    assert busy.returncode == 2 and "is active" in busy.stderr
    assert "back to v1" in run_evo("adapters", "rollback", "tr_chat").stdout
    assert run_evo("adapters", "remove", "tr_chat", "v2").returncode == 0
    missing = run_evo("adapters", "activate", "tr_chat", "v9")
    assert missing.returncode == 2 and "Known versions of tr_chat: v1" in missing.stderr
    too_big = run_evo("adapters", "activate", "tr_chat", "v1", "--scale", "5")
    assert too_big.returncode == 2 and "at most 2" in too_big.stderr
    scaled = run_evo("adapters", "activate", "tr_chat", "v1", "--scale", "0.8")
    assert scaled.returncode == 0 and "v1 at scale 0.8 active" in scaled.stdout
    rows = {(r["expert"], r["version"]): r for r in run_json("adapters", "list", "--json")["adapters"]}
    assert rows[("tr_chat", "v1")]["scale"] == 0.8
    assert run_evo("adapters", "activate", "tr_chat", "v1", "--scale", "1").returncode == 0


def test_chat_switch_and_adapters_commands(trained):
    script = "/adapters\n/switch tr_chat\nWhat is the secret word?\n/switch nope\n/switch base\nHi\n/quit\n"
    proc = run_evo("chat", "--no-memory", input=script, env={"EVO_GENERATION__MAX_TOKENS": "8"})
    assert proc.returncode == 0, proc.stderr
    assert "loaded adapters: tr_chat" in proc.stdout and "answers now come from: tr_chat" in proc.stdout
    assert "No adapter loaded for expert 'nope'" in proc.stdout and "answers now come from: base" in proc.stdout
    asked = run_json("ask", "--json", "--no-memory", "--expert", "tr_chat", "--max-tokens", "8", "What is the secret word?")
    assert asked["adapter"] == "tr_chat" and asked["expert"] == "tr_chat"


# -- evaluation and data import ------------------------------------------------------------------
def test_eval_turkish_reports_perplexity_and_word_validity_for_base_and_adapter(trained):
    out = run_json("eval", "turkish", "--limit", "3", "--json", timeout=600)
    assert out["examples"] == 3 and out["adapter"] == "tr_chat"
    assert out["perplexity_base"] > 1 and out["perplexity_adapter"] > 1 and out["perplexity_adapter"] != out["perplexity_base"]
    assert 0 <= out["word_validity_base"] <= 1 and out["words_base"] > 0 and out["words_adapter"] > 0


def test_eval_python_pairs_base_and_adapter_and_two_problem_sets_in_one_run(trained, tmp_path):
    """English HumanEval and a Turkish file (the first Turkish problems, asked in Turkish) in one run: base vs adapter
    per set, and the two sets paired problem by problem."""
    from evo_tr.experts.evaluate import load_problem_set

    mine = tmp_path / "iki.jsonl"  # any HumanEval-format file
    mine.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in load_problem_set("humaneval-tr", 2).problems), encoding="utf-8")
    out = run_json("eval", "python", "--adapter", "tr_chat", "--data", "humaneval", "--data", str(mine), "--limit", "1", "--json", timeout=600)
    english, turkish = out["sets"]
    assert (english["benchmark"], english["instruction_lang"], turkish["benchmark"], turkish["instruction_lang"]) == ("humaneval", "en", "iki", "tr")
    assert english["task_ids"] == turkish["task_ids"] == ["HumanEval/0"]
    for result in (english, turkish):
        failed = {key: {f["task_id"] for f in result[f"failures_{key}"]} for key in ("base", "tr_chat")}
        paired = result["paired_tr_chat"]
        assert set(paired["only_adapter_passes"]) == failed["base"] - failed["tr_chat"]
        assert set(paired["only_base_passes"]) == failed["tr_chat"] - failed["base"]
        assert 0.0 < paired["mcnemar_p"] <= 1.0 and "tr_chat" in result["adapter_versions"]
    assert len(out["paired_sets"]) == 2  # base, then the adapter: English vs Turkish
    base_pair = out["paired_sets"][0]
    assert base_pair["problems"] == 1
    assert (base_pair["pass_at_1_first"], base_pair["pass_at_1_second"]) == (english["pass_at_1_base"], turkish["pass_at_1_base"])
    assert len(base_pair["only_first_passes"]) + len(base_pair["only_second_passes"]) == abs(english["passed_base"] - turkish["passed_base"])


def test_the_base_baseline_is_reused_rechecked_and_dropped_when_a_recheck_disagrees(engine, evo_home):
    """The base's HumanEval outcomes are kept between runs; a recheck that disagrees (a stale cache: here the file is
    edited to say the opposite) drops it and the base runs on every problem again."""
    from evo_tr.experts.evaluate import eval_python, load_problem_set

    settings = load_settings(home=evo_home, model=MODEL, experts={"eval_baseline_recheck": 1})
    pset = load_problem_set("humaneval-tr", 2)
    first = eval_python(settings, engine, [None], problem_set=pset)
    cache_file = Path(first["base_cache"]["file"])
    if first["base_cache"]["rechecked"]:  # another test filled this cache entry first: start from an empty one
        cache_file.unlink()
        first = eval_python(settings, engine, [None], problem_set=pset)
    assert first["base_cache"] == {"file": str(cache_file), "reused": 0, "rechecked": 0, "agreed": 0, "discarded": False}
    second = eval_python(settings, engine, [None], problem_set=pset)
    assert second["base_cache"] | {"file": ""} == {"file": "", "reused": 1, "rechecked": 1, "agreed": 1, "discarded": False}
    assert second["failures_base"] == first["failures_base"] and second["passed_base"] == first["passed_base"]
    stored = json.loads(cache_file.read_text(encoding="utf-8"))
    stored["outcomes"] = {k: [not ok, "edited"] for k, (ok, _) in stored["outcomes"].items()}
    cache_file.write_text(json.dumps(stored), encoding="utf-8")
    third = eval_python(settings, engine, [None], problem_set=pset)
    assert third["base_cache"]["discarded"] and third["base_cache"]["reused"] == 0 and third["base_cache"]["agreed"] == 0
    assert third["failures_base"] == first["failures_base"]  # the base really ran again: nothing of the edited file is left
    assert "edited" not in cache_file.read_text(encoding="utf-8")


def test_eval_python_refuses_a_bad_problem_file_before_loading_the_model(tmp_path):
    from evo_tr.experts.evaluate import load_problem_set

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x/1", "prompt": "def f():\\n", "entry_point": "f", "test": "def check(c): pass"}\n{"task_id": "x/2", "prompt": ""}\n')
    with pytest.raises(EvoError, match="line 2: missing or empty prompt, entry_point, test"):
        load_problem_set(bad)
    proc = run_evo("eval", "python", "--data", str(bad))
    assert proc.returncode == 2 and "line 2" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_evo("eval", "python", "--data", str(tmp_path / "none.jsonl"), "--instruction-lang", "tr")
    assert proc.returncode == 2 and "No such problem file" in proc.stderr
    assert run_evo("eval", "python", "--instruction-lang", "de").returncode == 2
    tr = load_problem_set("humaneval-tr")
    assert len(tr.problems) == 164 and tr.language == "tr" and load_problem_set("humaneval", 3).language == "en"


def test_the_turkish_humaneval_passes_its_own_check():
    """Every canonical solution still passes with the Turkish prompt; code, examples and tests are the original's."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "check_humaneval_tr.py"
    proc = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["checked"] == 164 and report["failed"] == 0, report["problems"]


def _outcomes(passed: int, total: int = 164, offset: int = 0) -> dict[str, bool]:
    return {f"HumanEval/{i}": offset <= i < offset + passed for i in range(total)}


def test_the_code_gate_needs_a_significant_turkish_gain_and_no_english_loss():
    """Pre-registered (issue 26): (a) one-sided exact McNemar p < 0.05 on Turkish HumanEval, (b) English lost − gained ≤ 3."""
    from evo_tr.experts.gate import Paired, decide

    base_tr, base_en = _outcomes(8), _outcomes(78)
    tr_gain = Paired.of(base_tr, _outcomes(20))  # 12 more Turkish problems, none lost
    assert (len(tr_gain.gained), tr_gain.lost, tr_gain.p_greater) == (12, [], round(0.5 ** 12, 6))
    en_loses_5 = Paired.of(base_en, _outcomes(73))
    rejected = decide(tr_gain, en_loses_5, alpha=0.05, english_margin=3)
    assert not rejected.promote and "English HumanEval: 5 problems lost net" in rejected.reason
    assert rejected.english.lost == [f"HumanEval/{i}" for i in range(73, 78)]
    promoted = decide(tr_gain, Paired.of(base_en, _outcomes(78)), alpha=0.05, english_margin=3)
    assert promoted.promote and promoted.reason == "promoted"
    within = decide(tr_gain, Paired.of(base_en, _outcomes(76, offset=1)), alpha=0.05, english_margin=3)  # lost 2, gained 0
    assert within.promote and within.english.lost == ["HumanEval/0", "HumanEval/77"]
    small = Paired.of(base_tr, {**_outcomes(11), "HumanEval/0": False})  # +3 / -1: p = 5/16, not significant
    assert small.p_greater == 0.3125 and not decide(small, Paired.of(base_en, _outcomes(78)), alpha=0.05, english_margin=3).promote
    assert decide(tr_gain, Paired.of(base_en, _outcomes(78)), alpha=0.05, english_margin=3).as_dict()["turkish"]["gained"][:2] == ["HumanEval/8", "HumanEval/9"]


@pytest.mark.slow  # two HumanEval sets, base and candidate, after a night retrain of python_coder
def test_the_nights_python_coder_retrain_goes_through_the_code_gate(tmp_path, evo_home):
    from evo_tr.lifecycle.night import retrain_expert

    from .test_lifecycle import _retrain_settings

    settings = _retrain_settings(tmp_path / "home", evo_home)
    (tmp_path / "home" / "models").mkdir(parents=True, exist_ok=True)
    settings.night.code_gate_limit, settings.night.code_gate_workers = 1, 1
    rows = [json.loads(line) for f in sorted(packaged_dir_for("python_coder").glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
    small = tmp_path / "python_small.jsonl"
    learnt = [r for r in rows if not r.get("anchor")][::10]  # a slice of the Turkish rows (English ones are KL anchors only)
    small.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in learnt) + "\n")
    result = retrain_expert(settings, "python_coder", [], base_data=small)
    gate = json.loads((registry(settings).get("python_coder", result["candidate"]).path / "gate.json").read_text())
    assert gate["metric"] == "code_gate" and gate["turkish"]["problems"] == gate["english"]["problems"] == 1
    assert result["action"] == ("promoted" if gate["promote"] else "rejected") and gate["alpha"] == 0.05 and gate["english_margin"] == 3
    assert (registry(settings).active("python_coder") is not None and registry(settings).active("python_coder").tag == result["candidate"]) == gate["promote"]


def packaged_dir_for(expert: str) -> Path:
    from evo_tr.experts.data import packaged_dir

    return packaged_dir(expert)


def test_mcnemar_p_separates_a_one_sided_split_from_an_even_one():
    from evo_tr.experts.evaluate import paired_comparison

    ids = [f"HumanEval/{i}" for i in range(25)]
    even = paired_comparison(ids, [True] * 13 + [False] * 12, [False] * 13 + [True] * 12)
    assert (len(even["only_base_passes"]), len(even["only_adapter_passes"]), even["mcnemar_p"]) == (13, 12, 1.0)
    one_sided = paired_comparison(ids[:8], [False] * 6 + [True] * 2, [True] * 8)  # 6 gained, 0 lost: 2 * 0.5**6
    assert one_sided["only_adapter_passes"] == ids[:6] and one_sided["mcnemar_p"] == 0.0312
    assert paired_comparison(ids[:3], [True, False, True], [True, False, True])["mcnemar_p"] == 1.0


def test_heldout_turkish_set_is_not_in_the_training_data():
    from evo_tr.experts.data import load_dir, packaged_dir
    from evo_tr.experts.evaluate import heldout_path

    heldout = {e.messages[0][1] for e in read_jsonl(heldout_path()).examples}
    training = {e.messages[0][1] for e in load_dir(packaged_dir("tr_chat")).examples}
    assert len(heldout) >= 30 and not heldout & training


def _shingles(text: str, n: int = 6) -> set[tuple[str, ...]]:
    import re

    from evo_tr.text import normalize

    words = re.findall(r"\w+", normalize(text))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_no_training_example_of_any_expert_contains_a_humaneval_problem():
    """HumanEval (English and Turkish) is for evaluation only: no expert's training example may hold one of its functions
    (same name and parameters) or a near-identical docstring (half its 6-word shingles or more)."""
    import ast
    import re

    from evo_tr.experts.data import load_dir, packaged_dir
    from evo_tr.experts.evaluate import load_problem_set

    problems = load_problem_set("humaneval").problems + load_problem_set("humaneval-tr").problems
    signatures = {}
    for p in problems:
        fn = next(n for n in ast.walk(ast.parse(p["prompt"])) if isinstance(n, ast.FunctionDef) and n.name == p["entry_point"])
        signatures[(fn.name, tuple(a.arg for a in fn.args.args))] = p["task_id"]
    docs = [(p["task_id"], sh) for p in problems for d in [ast.get_docstring(next(
        n for n in ast.walk(ast.parse(p["prompt"])) if isinstance(n, ast.FunctionDef) and n.name == p["entry_point"])) or ""]
        if len(sh := _shingles(d)) >= 4]
    experts = [d.name for d in packaged_dir("python_coder").parent.iterdir() if d.is_dir()]
    assert {"python_coder", "tr_chat"} <= set(experts)
    checked, hits = 0, []
    for expert in experts:
        for example in load_dir(packaged_dir(expert)).examples:
            checked += 1
            text = "\n".join(c for _, c in example.messages)
            for m in re.finditer(r"def\s+(\w+)\s*\(([^)]*)\)", text):
                params = tuple(a.split(":")[0].split("=")[0].strip() for a in m.group(2).split(",") if a.strip())
                if (m.group(1), params) in signatures:
                    hits.append((expert, signatures[(m.group(1), params)], m.group(0)))
            mine = _shingles(text)
            hits += [(expert, task, "docstring") for task, sh in docs if len(sh & mine) * 2 >= len(sh)]
    assert checked > 500 and hits == []


def test_data_import_from_a_hub_standin(tmp_path):
    from tests.hub_standin import StandinHub

    rows = [
        {"inputs": "Türkiye'nin başkenti neresidir?", "targets": "Ankara.", "language": "Turkish"},
        {"inputs": "What is the capital of France?", "targets": "Paris.", "language": "English"},
        {"inputs": "Merhaba nasılsın?", "targets": "İyiyim, teşekkürler.", "language": "Turkish"},
        {"inputs": "Merhaba nasılsın?", "targets": "İyiyim, teşekkürler.", "language": "Turkish"},
        {"inputs": "", "targets": "boş soru", "language": "Turkish"},
    ]
    src = tmp_path / "train.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    hub = StandinHub(token="hf_secret").start()
    hub.add("CohereForAI/aya_dataset", "train.jsonl", src)
    try:
        denied = run_evo("data", "import", "hf:CohereForAI/aya_dataset/train.jsonl", env={"HF_ENDPOINT": hub.url})
        assert denied.returncode == 2 and "401" in denied.stderr
        out = run_json(
            "data", "import", "hf:CohereForAI/aya_dataset/train.jsonl", "--language", "Turkish", "--json",
            env={"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_secret"},
        )
    finally:
        hub.stop()
    assert any("/datasets/CohereForAI/aya_dataset/resolve/" in path for _, path, _ in hub.requests)
    assert (out["rows"], out["kept_language"], out["converted"], out["written"], out["skipped_count"]) == (5, 4, 3, 2, 1)
    written = read_jsonl(Path(out["output"]))
    assert written.problems == [] and written.examples[0].messages == (("user", "Türkiye'nin başkenti neresidir?"), ("assistant", "Ankara."))
    bad = run_evo("data", "import", "CohereForAI/aya_dataset")
    assert bad.returncode == 2 and "hf:OWNER/NAME/FILE" in bad.stderr


def test_shipped_tr_chat_adapter_serves_only_its_own_base(engine, tmp_path):
    """The package ships tr_chat trained on the default Qwen base; other models run without it, silently."""
    from evo_tr.config import DEFAULT_MODEL
    from evo_tr.experts.registry import AdapterRegistry

    reg = AdapterRegistry(tmp_path / "adapters")  # a fresh user dir: only packaged adapters exist
    shipped = reg.active("tr_chat")
    assert shipped is not None and shipped.packaged and shipped.gguf.is_file()
    assert shipped.meta["base"]["name"] == DEFAULT_MODEL and shipped.meta["command"].startswith("evo train tr_chat")
    assert shipped.meta["metrics"]["valid_losses"][-1][1] < shipped.meta["metrics"]["valid_loss_before"]
    settings = load_settings(home=tmp_path, model=MODEL)
    attached, notices = attach_active_adapters(engine, settings, base_info(settings))
    assert attached == [] and notices == []


def test_shipped_python_coder_passed_the_code_gate_as_recorded(tmp_path):
    """python_coder ships only because it passed the pre-registered code gate; its gate.json is the record, and the
    gate's own decision function, fed the recorded flips, still promotes it."""
    from evo_tr.config import DEFAULT_MODEL
    from evo_tr.experts.gate import Paired, decide
    from evo_tr.experts.registry import AdapterRegistry

    shipped = AdapterRegistry(tmp_path / "adapters").active("python_coder")
    assert shipped is not None and shipped.packaged and shipped.gguf.is_file() and shipped.meta["base"]["name"] == DEFAULT_MODEL
    record = json.loads((shipped.path / "gate.json").read_text())
    assert record["metric"] == "code_gate" and record["promote"] and record["reason"] == "promoted"
    tr, en = Paired(**record["turkish"]), Paired(**record["english"])
    assert tr.problems == en.problems == 164 and tr.candidate_passed - tr.base_passed == len(tr.gained) - len(tr.lost)
    again = decide(tr, en, alpha=record["alpha"], english_margin=record["english_margin"])
    assert again.promote and tr.p_greater < record["alpha"] and len(en.lost) - len(en.gained) <= record["english_margin"]
    assert record["alpha"] == load_settings().night.code_gate_alpha and record["english_margin"] == load_settings().night.code_gate_english_margin
