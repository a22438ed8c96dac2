"""The Engine contract, run on every backend with the real SmolLM2 model; the engine owner thread; the plugin registry.

Each backend (llama.cpp, transformers + PEFT) passes the same tests: streaming, determinism, max_tokens
and stop strings, the tokenizer, adapters attached as registered versions, and prompt fitting.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from evo_tr.config import load_settings
from evo_tr.engine import Busy, GenerationConfig, Message, backends, load_engine
from evo_tr.errors import EvoError
from evo_tr.prompt import fit

from .conftest import MODEL

GREEDY = GenerationConfig(max_tokens=24, temperature=0.0, seed=1)
BACKENDS = ["llama_cpp", "transformers"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend_engine(request, evo_home):
    """The real test model on each registered backend, behind its owner thread like every caller gets it."""
    settings = load_settings(home=evo_home, model=MODEL)
    settings.engine.backend = request.param
    eng = load_engine(settings)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def random_lora(tmp_path_factory, evo_home):
    """A random LoRA strong enough to move a greedy answer on every backend, the same every run."""
    from evo_tr.experts import base_info
    from evo_tr.experts.export import random_lora
    from evo_tr.experts.train import load_torch_base

    settings = load_settings(home=evo_home, model=MODEL)
    base = base_info(settings)
    model, _ = load_torch_base(settings, base.name, base.path, base.sha256)
    return random_lora(model, base.path, tmp_path_factory.mktemp("lora"), expert="noise", seed=0, b_std=0.2)


# -- the contract, per backend ----------------------------------------------------------------
def test_streams_a_real_answer(backend_engine):
    completion = backend_engine.chat_stream([Message("user", "What is the capital of France?")], GREEDY)
    pieces = list(completion)
    assert len(pieces) >= 2 and "".join(pieces).strip()
    stats = completion.stats
    assert stats.prompt_tokens > 5 and 1 <= stats.completion_tokens <= GREEDY.max_tokens
    assert stats.ttft_s is not None and stats.total_s >= stats.ttft_s
    assert stats.finish_reason in ("stop", "length") and stats.handoff_s is not None  # it came through the owner thread


def test_greedy_is_deterministic(backend_engine):
    msgs = [Message("user", "Count from one to five.")]
    backend_engine.reset()
    first = backend_engine.chat_stream(msgs, GREEDY).text()
    backend_engine.reset()
    assert backend_engine.chat_stream(msgs, GREEDY).text() == first


def test_seeded_sampling_repeats(backend_engine):
    msgs = [Message("user", "Tell me a word.")]
    cfg = GenerationConfig(max_tokens=10, temperature=1.0, seed=42)
    backend_engine.reset()
    first = backend_engine.chat_stream(msgs, cfg).text()
    backend_engine.reset()
    assert backend_engine.chat_stream(msgs, cfg).text() == first


def test_max_tokens_and_stop_strings(backend_engine):
    msgs = [Message("user", "Write a long story about a dog.")]
    capped = backend_engine.chat_stream(msgs, replace(GREEDY, max_tokens=5))
    capped.text()
    assert capped.stats.completion_tokens == 5 and capped.stats.finish_reason == "length"
    backend_engine.reset()
    full = backend_engine.chat_stream(msgs, replace(GREEDY, max_tokens=40)).text()
    words = full.split()
    assert len(words) > 3
    stop_word = words[2]
    backend_engine.reset()
    stopped = backend_engine.chat_stream(msgs, replace(GREEDY, max_tokens=40, stop=(stop_word,)))
    text = stopped.text()
    assert stop_word not in text and stopped.stats.finish_reason == "stop"
    assert full.startswith(text)


def test_tokenizer_round_trip_and_render(backend_engine):
    text = "Merhaba dünya, İstanbul'da ışık!"
    assert backend_engine.detokenize(backend_engine.tokenize(text)) == text
    assert backend_engine.count_tokens(text) == len(backend_engine.tokenize(text))
    rendered = backend_engine.render([Message("system", "S"), Message("user", "U")])
    assert rendered.index("S") < rendered.index("U") and backend_engine.count_messages([Message("user", "U")]) > 1


def test_adapters_attach_as_registered_versions_and_detach(backend_engine, random_lora):
    caps = backend_engine.capabilities
    assert caps.lora_hot_swap and caps.streaming and caps.local_tokenizer
    msgs = [Message("user", "What is the capital of France?")]
    backend_engine.reset()
    base = backend_engine.chat_stream(msgs, GREEDY).text()
    backend_engine.attach_adapter(random_lora)
    try:
        assert "noise" in backend_engine.adapters()
        noisy = backend_engine.chat_stream(msgs, GREEDY, adapter="noise")
        assert noisy.text() != base and noisy.stats.adapter == "noise"
        backend_engine.reset()
        assert backend_engine.chat_stream(msgs, GREEDY).text() == base  # nothing of the adapter leaks into the base
    finally:
        backend_engine.detach_adapter("noise")
    assert "noise" not in backend_engine.adapters()
    with pytest.raises(EvoError):
        backend_engine.chat_stream(msgs, GREEDY, adapter="noise").text()


def test_capabilities_say_what_the_backend_keeps(backend_engine):
    expected = {"llama_cpp": True, "transformers": False}[backend_engine.name]
    assert backend_engine.capabilities.kv_snapshots is expected and backend_engine.describe()["backend"] == backend_engine.name


def test_fit_drops_oldest_turns_keeps_system_and_current(backend_engine):
    system = Message("system", "You are helpful.")
    history = []
    for i in range(40):
        history += [Message("user", f"Question number {i} about the weather in some city."), Message("assistant", f"Answer number {i}: it is sunny and warm today.")]
    current = Message("user", "And what about tomorrow?")
    fitted = fit(backend_engine, [system, *history, current], reserve=backend_engine.n_ctx - 300)
    assert fitted.messages[0] == system and fitted.messages[-1] == current
    assert fitted.dropped_messages > 0 and fitted.truncated_tokens == 0
    assert fitted.prompt_tokens <= 300
    assert fitted.messages[1].role == "user"
    kept = fitted.messages[1:-1]
    assert kept == history[len(history) - len(kept):]  # the newest turns survive


def test_oversized_message_is_truncated_not_crashed(backend_engine):
    system = Message("system", "You are helpful.")
    huge = Message("user", "BAŞ " + "kelime " * 6000 + " SON")
    reserve = backend_engine.n_ctx - 400  # a 400-token budget keeps the real generation below quick
    fitted = fit(backend_engine, [system, huge], reserve=reserve)
    assert fitted.truncated_tokens > 0 and fitted.prompt_tokens <= backend_engine.n_ctx - reserve
    content = fitted.messages[-1].content
    assert content.startswith("BAŞ") and content.rstrip().endswith("SON") and "[…]" in content
    answer = backend_engine.chat_stream(fitted.messages, replace(GREEDY, max_tokens=4))
    answer.text()
    assert answer.stats.prompt_tokens <= backend_engine.n_ctx - reserve + 1 and answer.stats.finish_reason in ("stop", "length")


def test_unfittable_system_prompt_is_a_clear_error(backend_engine):
    with pytest.raises(EvoError) as info:
        fit(backend_engine, [Message("system", "rule " * 6000), Message("user", "hi")], reserve=64)
    assert "system prompt" in info.value.message


# -- the engine owner (llama.cpp, the default backend) ---------------------------------------------
def test_concurrent_requests_run_one_at_a_time_and_each_gets_its_own_answer(engine):
    prompts = [[Message("user", f"Say the number {n} in words.")] for n in range(6)]
    alone = []
    for msgs in prompts:
        engine.reset()
        alone.append(engine.chat_stream(msgs, GREEDY, cache_key=f"k{len(alone)}").text())
    engine.reset()
    got: dict[int, str] = {}

    def ask(i: int) -> None:
        got[i] = engine.chat_stream(prompts[i], GREEDY, cache_key=f"k{i}").text()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [got[i] for i in range(len(prompts))] == alone
    assert engine.inner.max_concurrent_generations == 1  # counted inside the backend


def test_cancelling_a_request_frees_the_engine_within_a_token(engine):
    msgs = [Message("user", "Write a very long story about a cat in Istanbul.")]
    long = engine.chat_stream(msgs, replace(GREEDY, max_tokens=200))
    stream = iter(long)
    assert next(stream)
    long.close()  # what Ctrl-C or a dropped client does
    nxt = engine.chat_stream([Message("user", "Hi")], replace(GREEDY, max_tokens=3))
    assert nxt.text() and nxt.stats.queued_s is not None  # the next request ran: the engine was freed
    assert long.stats.finish_reason == "interrupted" and long.stats.completion_tokens < 200
    assert long.stats.pieces_after_cancel is not None and long.stats.pieces_after_cancel <= 1  # stopped within a token


def test_a_full_queue_is_a_clear_busy_error_not_a_hang(evo_home):
    settings = load_settings(home=evo_home, model=MODEL)
    settings.engine.max_queue = 1
    eng = load_engine(settings)
    try:
        msgs = [Message("user", "Write a long story.")]
        running = eng.chat_stream(msgs, replace(GREEDY, max_tokens=60))
        it = iter(running)
        next(it)  # the worker is generating it now
        waiting = eng.chat_stream(msgs, replace(GREEDY, max_tokens=2))  # fills the one queue slot
        with pytest.raises(Busy) as info:
            eng.chat_stream(msgs, replace(GREEDY, max_tokens=2))
        assert "busy" in info.value.message and "max_queue" in info.value.hint
        running.close()
        assert waiting.text() is not None
    finally:
        eng.close()


def test_backends_are_plugins_and_an_unknown_one_is_a_clear_error(evo_home):
    table = backends()
    assert table["llama_cpp"].endswith(":LlamaCppEngine") and table["transformers"].endswith(":TransformersEngine")
    from importlib.metadata import entry_points

    assert {"llama_cpp", "transformers"} <= {ep.name for ep in entry_points(group="evo_tr.engines")}  # installed metadata
    settings = load_settings(home=evo_home, model=MODEL)
    settings.engine.backend = "nope"
    with pytest.raises(EvoError) as info:
        load_engine(settings)
    assert "Unknown engine backend" in info.value.message and "llama_cpp" in info.value.hint
