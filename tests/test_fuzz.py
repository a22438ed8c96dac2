"""Property-based fuzzing (Hypothesis) of the parts that take arbitrary user input, on the real components.

`make test` runs the "ci" profile, `make test-all` the "full" one (10x the examples); the counts are printed in the
run's "Fuzzing" table. A failure is shrunk by Hypothesis to a minimal input and kept as a regression example.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
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


# -- fact capture never invents a fact -------------------------------------------------------------
def _template_words() -> frozenset[str]:
    """The words the capture rules add themselves ("Kullanıcının adı …", "The user lives in …", relatives' forms):
    everything else in a captured fact must come from the message."""
    from evo_tr.memory.facts import RELATIONS_EN, RELATIONS_TR

    fixed = """kullanıcının kullanıcıya kullanıcı adı diye hitap edilmeli yaşıyor mesleği çalışıyor yaşında doğum günü en
    sevdiği seviyor sevmiyor the user's user s is named name wants to be called lives in works years year old birthday
    favourite likes does not like"""
    words = set(fixed.split())
    words |= {w for third, _ in RELATIONS_TR.values() for w in _words(third)}
    words |= {w for rel in RELATIONS_EN for w in _words(rel)}
    return frozenset(words)


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"\w+", normalize(text)))


value_word = st.text(alphabet=st.sampled_from(list(TURKISH + "0123456789'")), min_size=1, max_size=12)
value = st.lists(value_word, min_size=1, max_size=4).map(" ".join)
STATEMENTS = ["Benim adım {v}.", "Adım {v}.", "Kedimin adı {v}.", "Annemin ismi {v}.", "{V} yaşıyorum.", "{v} olarak çalışıyorum.",
              "{n} yaşındayım.", "Doğum günüm {v}.", "En sevdiğim {v}.", "{v} seviyorum.", "{v} sevmiyorum.", "Bana {v} de.",
              "Mesleğim {v}.", "Unutma: {v}", "{v}, bunu unutma.", "My name is {v}.", "I live in {v}.", "I work as {v}.",
              "I am {n} years old.", "My birthday is {v}.", "My favourite {v}.", "I like {v}.", "I don't like {v}.", "Call me {v}.",
              "Remember that {v}", "My cat's name is {v}.", "Benim adım {v} mi?"]
statement = st.builds(lambda t, v, n: t.format(v=v, V=v[:1].upper() + v[1:], n=n), st.sampled_from(STATEMENTS), value, st.integers(0, 999))
message_text = st.lists(st.one_of(statement, turkish_text, st.text(max_size=80)), min_size=1, max_size=4).map(" ".join)


@given(message=message_text)
@example(message="Benim adım 0. 0A0 yaşıyorum.")  # found by this property: the city was taken from inside "0A0"
@example(message="Unutma: istanbul'a taşınıyorum")  # and this: Python's upper() made it "Istanbul"
def test_fact_capture_never_invents_a_fact_absent_from_the_text(message):
    from evo_tr.memory.facts import capture_facts

    template = _template_words()
    facts = capture_facts(message)
    _count("fact capture: every word of a fact is the message's or the rule's own")
    said = _words(message)
    for f in facts:
        # English facts are cased the English way ("i" → "I"), which Turkish folding reads as "ı"
        fold = (lambda ws: {w.replace("ı", "i") for w in ws}) if f.lang == "en" else (lambda ws: ws)
        invented = fold(_words(f.text)) - fold(said) - fold(template)
        assert not invented, (message, f.text, invented)
        assert f.type in ("fact", "preference") and not f.text.strip().endswith("?")


# -- data-import parsers reject bad input clearly --------------------------------------------------------
good_record = st.builds(lambda i, t: {"id": f"fz{i}", "text": t, "metadata": {"type": "fact"}}, st.integers(0, 10**6), st.sampled_from(
    ["Kullanıcı çay seviyor.", "Kullanıcının adı Işıl.", "The user lives in İzmir."]))
bad_record = st.one_of(
    st.builds(json.dumps, st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.none(), st.text(max_size=20))),
    st.builds(lambda t: json.dumps({"text": t, "metadata": {"type": "fact"}}), st.sampled_from(["", "   ", "\x00"])),
    st.builds(lambda m: json.dumps({"text": "Bir not.", "metadata": m}), st.one_of(st.text(max_size=5), st.integers(),
                                                                              st.just({"type": "bogus"}), st.just({"user": 5}))),
    st.text(max_size=60).filter(lambda s: s.strip() and "\n" not in s and "\r" not in s),
)
import_line = st.one_of(good_record.map(lambda r: json.dumps(r, ensure_ascii=False)), bad_record)


@settings(max_examples=int(os.environ.get("EVO_FUZZ_IMPORT_EXAMPLES", "25")))
@given(lines=st.lists(import_line, min_size=1, max_size=8), raw=st.binary(max_size=40))
@example(lines=['{"id": "fz0", "text": "Kullanıcı çay seviyor.", "metadata": {"type": "fact"}}'] * 2, raw=b"")  # found: a repeated id
def test_memory_import_reports_every_bad_line_and_keeps_the_good(store, tmp_path_factory, lines, raw):
    path = tmp_path_factory.mktemp("imp") / "in.jsonl"
    body = ("\n".join(lines) + "\n").encode() + raw.replace(b"\n", b" ").replace(b"\r", b" ")
    path.write_bytes(body)
    counted = [ln for ln in body.split(b"\n") if ln.decode("utf-8", "replace").strip()]  # as the importer reads lines
    try:
        report = store.import_jsonl(path)
    except EvoError as e:  # a clear error is allowed; a traceback-worthy exception is not
        assert e.message
        return
    finally:
        _count("memory import: good lines kept, bad ones reported by number")
    assert report.imported + len(report.skipped) == len(counted)
    assert all(isinstance(n, int) and 1 <= n <= len(body.split(b"\n")) and reason for n, reason in report.skipped)
    for ln in lines:
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if isinstance(rec, dict) and str(rec.get("id", "")).startswith("fz"):
            assert store.get(rec["id"]) is not None


@given(row=st.one_of(st.none(), st.integers(), st.text(max_size=20), st.dictionaries(
    st.sampled_from(["inputs", "targets", "instruction", "input", "output", "messages", "x"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.dictionaries(st.sampled_from(["role", "content"]), st.text(max_size=10)), max_size=3)),
    max_size=4)), fmt=st.sampled_from(["auto", "aya", "alpaca", "chat"]))
def test_training_data_import_rows_convert_or_say_why(row, fmt):
    from evo_tr.experts.importer import convert_row

    _count("training-data import: a row converts or says why")
    try:
        out = convert_row(row, fmt)
    except (ValueError, EvoError) as e:
        assert str(e)
        return
    assert isinstance(out, dict)
