"""The llama.cpp engine with the real test model: streaming, stops, budgeting, interruption."""

from __future__ import annotations

from dataclasses import replace

import pytest

from evo_tr.engine import GenerationConfig, Message
from evo_tr.errors import EvoError

GREEDY = GenerationConfig(max_tokens=24, temperature=0.0, seed=1)


def test_streams_a_real_answer(engine):
    completion = engine.chat_stream([Message("user", "What is the capital of France?")], GREEDY)
    pieces = list(completion)
    assert len(pieces) >= 2
    text = "".join(pieces)
    assert text.strip()
    stats = completion.stats
    assert stats.prompt_tokens > 5
    assert 1 <= stats.completion_tokens <= GREEDY.max_tokens
    assert stats.ttft_s is not None and stats.total_s >= stats.ttft_s
    assert stats.finish_reason in ("stop", "length")


def test_greedy_is_deterministic(engine):
    msgs = [Message("user", "Count from one to five.")]
    assert engine.chat_stream(msgs, GREEDY).text() == engine.chat_stream(msgs, GREEDY).text()


def test_max_tokens_and_stop_strings(engine):
    msgs = [Message("user", "Write a long story about a dog.")]
    capped = engine.chat_stream(msgs, replace(GREEDY, max_tokens=5))
    capped.text()
    assert capped.stats.completion_tokens == 5 and capped.stats.finish_reason == "length"
    full = engine.chat_stream(msgs, replace(GREEDY, max_tokens=40)).text()
    words = full.split()
    assert len(words) > 3
    stop_word = words[2]
    stopped = engine.chat_stream(msgs, replace(GREEDY, max_tokens=40, stop=(stop_word,)))
    text = stopped.text()
    assert stop_word not in text and stopped.stats.finish_reason == "stop"
    assert full.startswith(text)


def test_tokenizer_round_trip(engine):
    text = "Merhaba dünya, İstanbul'da ışık!"
    assert engine.detokenize(engine.tokenize(text)) == text
    assert engine.count_tokens(text) == len(engine.tokenize(text))


def test_fit_drops_oldest_turns_keeps_system_and_current(engine):
    system = Message("system", "You are helpful.")
    history = []
    for i in range(40):
        history += [Message("user", f"Question number {i} about the weather in some city."), Message("assistant", f"Answer number {i}: it is sunny and warm today.")]
    current = Message("user", "And what about tomorrow?")
    fit = engine.fit([system, *history, current], reserve=engine.n_ctx - 300)
    assert fit.messages[0] == system and fit.messages[-1] == current
    assert fit.dropped_messages > 0 and fit.truncated_tokens == 0
    assert fit.prompt_tokens <= 300 == engine.n_ctx - (engine.n_ctx - 300)
    assert fit.messages[1].role == "user"
    kept = fit.messages[1:-1]
    assert kept == history[len(history) - len(kept):]  # the newest turns survive


def test_oversized_message_is_truncated_not_crashed(engine):
    system = Message("system", "You are helpful.")
    huge = Message("user", "BAŞ " + "kelime " * 6000 + " SON")
    reserve = engine.n_ctx - 400  # a 400-token budget keeps the real generation below quick
    fit = engine.fit([system, huge], reserve=reserve)
    assert fit.truncated_tokens > 0
    assert fit.prompt_tokens <= engine.n_ctx - reserve
    content = fit.messages[-1].content
    assert content.startswith("BAŞ") and content.rstrip().endswith("SON") and "[…]" in content
    answer = engine.chat_stream(fit.messages, replace(GREEDY, max_tokens=4))
    answer.text()
    assert answer.stats.prompt_tokens <= engine.n_ctx - reserve + 1
    assert answer.stats.finish_reason in ("stop", "length")


def test_unfittable_system_prompt_is_a_clear_error(engine):
    system = Message("system", "rule " * 6000)
    with pytest.raises(EvoError) as info:
        engine.fit([system, Message("user", "hi")], reserve=64)
    assert "system prompt" in info.value.message


