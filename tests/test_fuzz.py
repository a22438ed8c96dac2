"""Property-based fuzzing (Hypothesis) of the parts that take arbitrary user input, on the real components.

`make test` runs the "ci" profile, `make test-all` the "full" one (10x the examples); the counts are printed in the
run's "Fuzzing" table. A failure is shrunk by Hypothesis to a minimal input and kept as a regression example.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evo_tr.config import DEFAULT_INTENTS, load_settings
from evo_tr.engine.base import Message
from evo_tr.errors import EvoError
from evo_tr.prompt import fit
from evo_tr.router import RouterClassifier, TurnContext, packaged_model_dir
from evo_tr.text import normalize, turkish_lower

from .conftest import report_row

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("full", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("EVO_FUZZ_PROFILE", "ci"))

TURKISH = "abcçdefgğhıijklmnoöprsştuüvyzABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZ"
turkish_text = st.text(alphabet=st.sampled_from(list(TURKISH + " .,?!'0123456789\n")), max_size=300)
any_text = st.one_of(st.text(max_size=2000), turkish_text, st.text(alphabet=st.characters(codec="utf-8"), max_size=50_000))
_counts: dict[str, int] = {}


def _count(name: str) -> None:
    _counts[name] = _counts.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _table(request):
    """One row per property: the cases Hypothesis generated, and whether the property held for all of them."""
    before = dict(_counts)
    yield
    for name, n in _counts.items():
        if n != before.get(name, 0):
            report = getattr(request.node, "rep_call", None)
            report_row("Fuzzing", {"property": name, "cases": n - before.get(name, 0),
                                   "failures": 1 if report is None or report.failed else 0})


@pytest.fixture(scope="module")
def router() -> RouterClassifier:
    return RouterClassifier.load(packaged_model_dir())


@given(text=any_text, previous=st.none() | st.builds(TurnContext, st.sampled_from(DEFAULT_INTENTS), st.floats(0, 1), st.booleans()))
def test_router_never_raises_and_returns_a_configured_intent(router, text, previous):
    pred = router.predict(text, previous)
    _count("router: any Unicode input, with or without a previous turn")
    assert pred["intent"] in DEFAULT_INTENTS and 0.0 <= pred["confidence"] <= 1.0


@given(text=any_text)
def test_turkish_casing_folds_right(text):
    low = turkish_lower(text)
    _count("Turkish casing: I→ı, İ→i, idempotent")
    assert "I" not in low and "İ" not in low and turkish_lower(low) == low
    assert normalize(normalize(text)) == normalize(text)
    assert turkish_lower("IİıiŞĞÜÖÇ") == "ıiıişğüöç"


messages = st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=400)), max_size=12)


@given(history=messages, system=st.text(min_size=1, max_size=300), current=st.text(min_size=1, max_size=3000),
       context=st.lists(st.text(min_size=1, max_size=300), max_size=3), reserve=st.integers(16, 1500))
def test_prompt_fitting_never_exceeds_the_budget_nor_drops_system_or_current(engine, history, system, current, context, reserve):
    msgs = [Message("system", system), *(Message(r, c) for r, c in history), Message("user", current)]
    ctx = [Message("system", c) for c in context]
    try:
        result = fit(engine, msgs, reserve, context=ctx)
    except EvoError as e:  # only when the system prompt alone cannot fit: said so, never a silent overflow
        assert "system" in (e.message + (e.hint or "")).lower()
        _count("prompt fitting: budget, system prompt and current message kept")
        return
    _count("prompt fitting: budget, system prompt and current message kept")
    assert result.prompt_tokens <= engine.n_ctx - reserve
    assert result.messages[0] == msgs[0] and result.messages[-1].role == "user"
    kept = result.messages[-1].content
    assert kept == current or (result.truncated_tokens > 0 and kept[:20] == current[: len(kept[:20])])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from evo_tr.memory import MemoryStore

    return MemoryStore(load_settings(), path=tmp_path_factory.mktemp("fuzz") / "chroma")


words = st.sampled_from(["kedi", "Ankara", "İzmir", "ışık", "çay", "kahve", "Pamuk", "mavi", "deniz", "kitap", "ISPARTA", "ılık"])
fact = st.lists(words, min_size=2, max_size=6).map(lambda ws: "Kullanıcı " + " ".join(ws) + " seviyor.")


@settings(max_examples=int(os.environ.get("EVO_FUZZ_MEMORY_EXAMPLES", "25")))
@given(texts=st.lists(fact, min_size=1, max_size=4), forget=st.integers(0, 3))
def test_memory_add_search_forget_invariants(store, texts, forget):
    results = [store.add_memory(t) for t in texts]
    ids = [r.id for r in results]
    for t, r in zip(texts, results):  # the same text again, in Turkish capitals, merges into the same memory
        again = store.add_memory(t.replace("i", "İ").replace("ı", "I").upper())
        assert again.merged and again.id == r.id
    gone = ids[forget % len(ids)]
    store.delete([gone])
    _count("memory: add / duplicate merge / forget / search")
    for t in texts:
        assert all(h.memory.id != gone for h in store.search(t, top_k=10))
    assert store.get(gone) is None
    store.delete(ids)


@given(value=st.one_of(st.text(max_size=20), st.integers(-5, 0), st.floats(allow_nan=True)), key=st.sampled_from(
    ["engine.n_threads", "engine.n_ctx", "generation.temperature", "memory.top_k", "serve.port"]))
def test_config_rejects_bad_values_with_a_clear_error(tmp_path, monkeypatch, value, key):
    section, name = key.split(".")
    path = tmp_path / "evo.toml"
    path.write_text(f"[{section}]\n{name} = {value!r}\n".replace("'", '"') if isinstance(value, str) else f"[{section}]\n{name} = {value}\n")
    monkeypatch.setenv("EVO_CONFIG", str(path))
    _count("config: bad values and broken TOML")
    try:
        load_settings()
    except EvoError as e:
        assert e.message and (key in e.message or "TOML" in e.message or name in e.message)
