"""The orchestrator end to end with the real engine, router, ChromaDB store and SQLite log, plus every degradation path."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from evo_tr.config import load_settings
from evo_tr.engine import GenerationConfig
from evo_tr.engine.llama_cpp import LlamaCppEngine
from evo_tr.errors import EvoError
from evo_tr.experts import base_info, registry
from evo_tr.lifecycle import ConversationStore
from evo_tr.orchestrator import Done, Notice, Orchestrator, Recalled, Routed, Token

from .conftest import MODEL, free_port, run_evo, run_json, start_chroma

GREEDY = GenerationConfig(max_tokens=12, temperature=0.0, seed=0)


def settings_for(home: Path, knowledge: bool = True, **memory):
    s = load_settings(home=home, model=MODEL)
    s.chat.memory_retry_s = 0.0
    s.knowledge.enabled = knowledge
    for key, value in memory.items():
        setattr(s.memory, key, value)
    return s


def build(engine, home: Path, *, config=GREEDY, knowledge: bool = True, **memory) -> Orchestrator:
    for name in list(engine.adapters()):  # each test attaches what its own home holds
        engine.detach_adapter(name)
    return Orchestrator.build(settings_for(home, knowledge, **memory), engine, config, model=MODEL)


def run(orch: Orchestrator, session_id: str | None, text: str, **kw) -> list:
    events = list(orch.turn(session_id, text, **kw))
    orch.flush(timeout=60)
    return events


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


# -- the event stream and sessions -----------------------------------------------------------------
def test_turn_streams_typed_events_and_logs_every_figure(engine, tmp_path):
    orch = build(engine, tmp_path)
    events = run(orch, None, "Merhaba, nasılsın?")
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Routed" and kinds[1] == "Recalled" and kinds[-1] == "Done" and "Token" in kinds
    routed, done = of(events, Routed)[0], of(events, Done)[0].stats
    assert routed.source == "router" and routed.intent and 0 < routed.confidence <= 1
    assert done.answer == "".join(t.text for t in of(events, Token)) and done.answer.strip()
    assert done.prompt_tokens > 0 and 0 < done.completion_tokens <= 12
    assert done.ttft_ms > 0 and done.e2e_ttft_ms >= done.ttft_ms and done.total_ms >= done.e2e_ttft_ms
    assert done.route_ms > 0 and done.recall_ms > 0 and done.log_ms > 0 and done.overhead_ms > 0
    [record] = orch.conversations.turns(done.session_id)
    assert (record.message, record.answer, record.intent, record.expert) == ("Merhaba, nasılsın?", done.answer, routed.intent, routed.expert)
    assert record.ttft_ms == done.ttft_ms and record.total_ms == done.total_ms and not record.interrupted
    orch.close()


def test_sessions_resume_after_a_restart_list_and_delete(engine, tmp_path):
    orch = build(engine, tmp_path, enabled=False)
    first = of(run(orch, None, "Hello there!"), Done)[0].stats
    sid = first.session_id
    run(orch, sid, "How are you?")
    orch.close()

    again = build(engine, tmp_path, enabled=False)  # a new orchestrator over the same files: a restart
    session = again.resume(sid[:12])
    assert session.id == sid and session.turns == 2
    assert [m.role for m in session.history] == ["user", "assistant", "user", "assistant"]
    assert session.history[0].content == "Hello there!"
    third = of(run(again, sid, "Thanks!"), Done)[0].stats
    assert third.turn == 3 and third.history_messages == 4
    assert [s.id for s in again.list_sessions()] == [sid]
    with pytest.raises(EvoError, match="No session"):
        again.resume("nope")
    assert again.delete_session(sid) and again.list_sessions() == []
    again.close()


def test_prompt_assembly_reports_what_was_trimmed(tmp_path):
    from evo_tr.engine import load_engine

    small = load_settings(model=MODEL)
    small.engine.n_ctx = 1024  # the same policy on a quarter of the window: a quarter of the prompt evaluation
    engine = load_engine(small)
    try:
        orch = build(engine, tmp_path, enabled=False, buffer_tokens=100_000, buffer_messages=200)
        session = orch.new_session()
        filler = "uzun bir cümle "
        while engine.count_tokens(filler) < engine.n_ctx // 2:  # each message fills half the window, whatever the tokenizer
            filler *= 2
        for i in range(3):
            run(orch, session.id, f"Message {i}: " + filler)
        done = of(run(orch, session.id, "Short question?"), Done)[0].stats
        assert done.dropped_messages > 0 and done.prompt_tokens <= engine.n_ctx - GREEDY.max_tokens
        orch.close()
    finally:
        engine.close()


# -- degradation paths --------------------------------------------------------------------------------
def test_router_failure_means_the_base_model_answers_and_it_is_logged(engine, tmp_path, caplog):
    bad = tmp_path / "router" / "v1"
    bad.mkdir(parents=True)
    (bad / "router.json").write_text("{ not json")
    (bad / "router.npz").write_bytes(b"garbage")
    with caplog.at_level("WARNING"):
        orch = build(engine, tmp_path)
    assert orch.router is None and any(n.kind == "router" for n in orch.startup_notices)
    events = run(orch, None, "Python'da bir liste nasıl sıralanır?")
    routed = of(events, Routed)[0]
    assert (routed.expert, routed.adapter, routed.source) == ("base", None, "router-failed")
    assert any(n.kind == "router" for n in of(events, Notice)) and of(events, Done)[0].stats.answer.strip()
    orch.close()


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_broken_adapter_means_the_base_model_answers_with_a_one_line_notice(engine, tmp_path, damage):
    settings = settings_for(tmp_path)
    base = base_info(settings, MODEL)
    stage = tmp_path / "stage"
    (stage / "peft").mkdir(parents=True)
    (stage / "adapter.gguf").write_bytes(b"GGUF" + b"\0" * 64)  # a truncated file, as a crash mid-copy leaves it
    reg = registry(settings)
    version = reg.register("tr_chat", stage, {"expert": "tr_chat", "base": {"name": base.name, "sha256": base.sha256, "file": base.path.name}})
    if damage == "missing":
        version.gguf.unlink()
    orch = build(engine, tmp_path, enabled=False)
    assert "tr_chat" not in engine.adapters() and "tr_chat" in orch.adapter_problems
    assert any(n.kind == "adapter" and "tr_chat" in n.text for n in orch.startup_notices)
    session = orch.new_session()
    events = run(orch, session.id, "Türk kahvesi nasıl yapılır?", expert="tr_chat") + run(orch, session.id, "Bir atasözü söyler misin?", expert="tr_chat")
    assert [(r.expert, r.adapter) for r in of(events, Routed)] == [("tr_chat", None), ("tr_chat", None)]
    notices = [n for n in of(events, Notice) if n.kind == "adapter"]
    assert len(notices) == 1 and "base model answers" in notices[0].text and "\n" not in notices[0].text
    assert all(d.stats.answer.strip() for d in of(events, Done))
    assert [r.adapter_version for r in orch.conversations.turns(session.id)] == [None, None]
    orch.close()


def test_memory_server_down_answers_without_rag_then_writes_the_queue_when_back(engine, tmp_path):
    port = free_port()
    orch = build(engine, tmp_path, backend="http", host="127.0.0.1", port=port)
    assert any(n.kind == "memory" for n in orch.startup_notices)
    events = run(orch, None, "Benim adım Kaan.")
    assert any(n.kind == "memory" for n in of(events, Notice))
    assert of(events, Recalled)[0].memories == [] and of(events, Done)[0].stats.answer.strip()
    assert orch.memory.queue.size() == 2  # the stated fact and the finished turn
    server = start_chroma(tmp_path / "server", port)
    try:
        sid = of(events, Done)[0].stats.session_id
        later = run(orch, sid, "Bugün hava nasıl?")
        assert not any(n.kind == "memory" for n in of(later, Notice))
        orch.flush(timeout=60)
        assert orch.memory.queue.size() == 0
        with orch.memory.lock:
            texts = [m.text for m in orch.memory.get().store.all()]
        assert "Kullanıcının adı Kaan." in texts and any("Benim adım Kaan." in t for t in texts)
        fact = next(m for m in orch.memory.get().store.all() if m.text == "Kullanıcının adı Kaan.")
        assert (fact.session, fact.turn, fact.source) == (sid, 1, "chat")
    finally:
        orch.close()
        server.terminate()
        server.wait(timeout=30)


def test_memory_server_stopped_mid_session_queues_the_turn_and_drains_when_it_is_back(engine, tmp_path):
    port = free_port()
    server = start_chroma(tmp_path / "server", port)
    orch = build(engine, tmp_path, backend="http", host="127.0.0.1", port=port)
    try:
        first = run(orch, None, "Benim adım Kaan.")
        assert not any(n.kind == "memory" for n in of(first, Notice)) and orch.memory.queue.size() == 0
        sid = of(first, Done)[0].stats.session_id
        server.terminate()
        server.wait(timeout=30)
        down = run(orch, sid, "Ben İzmir'de yaşıyorum.")
        notices = [n for n in of(down, Notice) if n.kind == "memory"]
        assert len(notices) == 1 and "\n" not in notices[0].text  # one line, and the answer still comes
        assert of(down, Done)[0].stats.answer.strip() and orch.memory.queue.size() >= 2  # the fact and the turn wait
        assert [t.message for t in orch.conversations.turns(sid)] == ["Benim adım Kaan.", "Ben İzmir'de yaşıyorum."]
        server = start_chroma(tmp_path / "server", port)  # the same data folder, the same port
        later = run(orch, sid, "Benim adım neydi?")
        orch.flush(timeout=60)
        assert orch.memory.queue.size() == 0
        assert any("Kaan" in h.memory.text for h in of(later, Recalled)[0].memories)  # what was stored before the stop is still there
        with orch.memory.lock:
            texts = [m.text for m in orch.memory.get().store.all()]
        assert "Kullanıcının adı Kaan." in texts and any("İzmir" in t and t.startswith("Kullanıcı") for t in texts), texts
        assert sum("Ben İzmir'de yaşıyorum." in t for t in texts) == 1  # the queued turn was written once
    finally:
        orch.close()
        server.terminate()
        server.wait(timeout=30)


HOLD_LOCK = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


def test_memory_locked_by_another_process_queues_the_fact_until_the_lock_is_free(engine, tmp_path):
    orch = build(engine, tmp_path, lock_timeout_s=0.3)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(orch.memory.get().store.lock.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        events = run(orch, None, "Benim adım Kaan.")
        notice = [n for n in of(events, Notice) if n.kind == "memory"]
        assert notice and "busy" in notice[0].text
        assert of(events, Done)[0].stats.answer.strip()
        assert orch.memory.queue.size() >= 1
    finally:
        holder.kill()
        holder.wait()
    sid = of(events, Done)[0].stats.session_id
    run(orch, sid, "Teşekkürler.")
    orch.flush(timeout=60)
    assert orch.memory.queue.size() == 0
    with orch.memory.lock:
        assert "Kullanıcının adı Kaan." in [m.text for m in orch.memory.get().store.all()]
    orch.close()


class FailingEngine(LlamaCppEngine):
    """The real engine with an injected decode failure after a few tokens (what a llama_decode error raises)."""

    fail = True

    def chat_stream(self, messages, config, *, adapter=None, cache_key=None):
        completion = super().chat_stream(messages, config, adapter=adapter, cache_key=cache_key)
        if not self.fail:
            return completion
        inner = completion.chunks

        def chunks():
            for i, piece in enumerate(inner):
                if i == 2:
                    raise RuntimeError("llama_decode returned -3")
                yield piece

        completion.chunks = chunks()
        return completion


def test_generation_error_ends_only_that_turn(engine, tmp_path):
    failing = FailingEngine(engine.model_path, n_ctx=1024, model_name=MODEL)
    try:
        orch = Orchestrator.build(settings_for(tmp_path, enabled=False), failing, GREEDY, model=MODEL)
        session = orch.new_session()
        events = run(orch, session.id, "Hello!")
        done = of(events, Done)[0].stats
        assert done.error == "RuntimeError: llama_decode returned -3" and done.finish_reason == "error"
        assert [n.kind for n in of(events, Notice)] == ["generation"]
        assert orch.conversations.turns(session.id)[0].error == done.error
        failing.fail = False
        ok = of(run(orch, session.id, "Hello again!"), Done)[0].stats
        assert ok.error is None and ok.answer.strip() and ok.turn == 2
        # A prompt that cannot be built (a system prompt larger than the window) is an error for that turn too.
        orch.settings.experts.system_prompts["base"] = "kural " * 2000
        bad = run(orch, session.id, "Hi", expert="base")
        assert of(bad, Done)[0].stats.error and "system prompt" in of(bad, Notice)[0].text
        assert of(run(orch, session.id, "Hi", expert="auto"), Done)[0].stats.error is None
        orch.close()
    finally:
        failing.close()


def test_interrupt_keeps_the_partial_answer_marked_and_the_session_goes_on(engine, tmp_path):
    orch = build(engine, tmp_path, enabled=False, config=replace(GREEDY, max_tokens=80))
    session = orch.new_session()
    events = orch.turn(session.id, "Tell me a long story about the sea.")
    partial = ""
    for event in events:
        if isinstance(event, Token):
            partial += event.text
            if len(partial) > 5:
                break
    events.close()  # what Ctrl-C in the CLI does
    [record] = orch.conversations.turns(session.id)
    assert record.interrupted and record.finish_reason == "interrupted" and record.answer == partial
    assert session.history[-1].content == partial
    follow = of(run(orch, session.id, "Now say hello."), Done)[0].stats
    assert follow.answer.strip() and follow.finish_reason in ("stop", "length")
    orch.close()


# -- the design's end-to-end scenarios (5.5) -------------------------------------------------------------
def test_small_talk_then_code_switches_expert_and_back(engine, tmp_path):
    """…and the short follow-up of the code request keeps its expert: routing follows the conversation."""
    orch = build(engine, tmp_path)
    session = orch.new_session()
    experts = []
    for text in ("Merhaba! Bugün nasılsın?", "Python'da bir listeyi tersine çeviren bir fonksiyon yazar mısın?", "peki bunu daha kısa yaz",
                 "Teşekkürler, çok naziksin. İyi akşamlar!"):
        routed = of(run(orch, session.id, text), Routed)[0]
        assert routed.adapter == (routed.expert if routed.expert in engine.adapters() else None)
        experts.append(routed.expert)
    assert experts == ["tr_chat", "python_coder", "python_coder", "tr_chat"]
    assert orch.router.predict("peki bunu daha kısa yaz")["intent"] != "code_python"  # alone it is not a code request
    records = orch.conversations.turns(session.id)
    assert [r.expert for r in records] == experts
    assert all(r.ttft_ms > 0 and r.e2e_ttft_ms >= r.ttft_ms and r.overhead_ms > 0 and r.total_ms > 0 and r.completion_tokens > 0 for r in records)
    orch.close()


def test_pasted_traceback_routes_to_code_debug(engine, tmp_path):
    orch = build(engine, tmp_path, enabled=False)
    text = 'Bu hatayı alıyorum:\nTraceback (most recent call last):\n  File "app.py", line 3, in <module>\n    print(x[5])\nIndexError: list index out of range'
    routed = of(run(orch, None, text), Routed)[0]
    assert (routed.intent, routed.expert) == ("code_debug", "python_coder")
    orch.close()


def test_fact_told_in_one_session_is_recalled_in_a_new_session_after_a_restart(tmp_path):
    env = {"EVO_GENERATION__MAX_TOKENS": "8", "EVO_GENERATION__TEMPERATURE": "0"}
    first = run_json("ask", "--json", "Benim adım Kaan ve İzmir'de yaşıyorum.", env=env)
    second = run_json("ask", "--json", "Benim adım neydi?", env=env)  # a new process and a new session
    assert second["session"] != first["session"]
    assert any("Kaan" in m["text"] for m in second["memories"])
    assert second["intent"] == "memory_recall"


# -- many callers at once ---------------------------------------------------------------------------------
SESSION_WORDS = ["elma", "armut", "kiraz", "erik", "incir", "nar", "ayva", "dut"]


def _answer(events) -> str:
    return of(list(events), Done)[0].stats.answer


def test_eight_sessions_at_once_get_exactly_the_answers_they_get_alone(engine, tmp_path):
    """8 threads × 3 turns through one orchestrator: the same answers as run one by one, nothing crosses sessions."""
    orch = build(engine, tmp_path, enabled=False, knowledge=False)  # the core only: memory is shared across sessions by design
    scripts = [[f"Bugünün kelimesi {w}. Bunu bir cümlede kullan.", "Peki başka bir cümle?", f"{w} hakkında bir şey daha söyle."]
               for w in SESSION_WORDS]
    alone = []
    for script in scripts:
        sid = orch.new_session().id
        alone.append([_answer(orch.turn(sid, text)) for text in script])
    engine.inner.max_concurrent_generations = 0
    together: dict[int, list[str]] = {}
    prompts: dict[int, str] = {}
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            session = orch.new_session()
            together[n] = [_answer(orch.turn(session.id, text)) for text in scripts[n]]
            prompts[n] = "\n".join(m.content for m in session.last_prompt)
        except BaseException as exc:  # reported below, with the thread's own traceback in the message
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(len(scripts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert [together[n] for n in range(len(scripts))] == alone
    for n, word in enumerate(SESSION_WORDS):  # each session's prompt holds its own word and no other session's
        assert word in prompts[n] and not any(other in prompts[n] for other in SESSION_WORDS if other != word)
    assert engine.inner.max_concurrent_generations == 1  # counted inside the llama.cpp backend
    orch.close()


def test_per_request_overrides_and_a_bounded_session_cache(engine, tmp_path):
    orch = build(engine, tmp_path, enabled=False, knowledge=False)
    orch.settings.chat.session_cache = 2
    first = orch.new_session().id
    short = of(list(orch.turn(first, "Write a long story.", overrides={"max_tokens": 3})), Done)[0].stats
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    with pytest.raises(EvoError) as info:
        orch.turn(first, "Hi", overrides={"temprature": 0.5})
    assert "temprature" in info.value.message and "temperature" in info.value.hint
    for _ in range(3):
        orch.new_session()
    assert first not in orch.sessions and len(orch.sessions) == 2  # evicted...
    again = orch.session(first)  # ...and reloaded from SQLite with its history
    assert again.turns == 1 and [m.role for m in again.history] == ["user", "assistant"]
    orch.close()


# -- CLI on top ----------------------------------------------------------------------------------------------
def test_chat_commands_new_sessions_resume_verbose_status(tmp_path):
    env = {"EVO_GENERATION__MAX_TOKENS": "6", "EVO_GENERATION__TEMPERATURE": "0"}
    script = "\n".join(["Merhaba!", "/verbose", "Nasılsın?", "/status", "/new", "/sessions", "/resume zzz", "/switch nonsense", "/quit"]) + "\n"
    proc = run_evo("chat", input=script, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "tr_chat" in out and "general_chat" in out  # the discreet expert line after the first answer
    assert "expert line under answers: off" in out
    assert "New session" in out and "No session 'zzz'" in out and "No adapter loaded for expert 'nonsense'" in out
    assert "memories" in out and "mode auto" in out  # /status
    sessions = run_json("sessions", "list", "--json")
    first = next(s for s in sessions if s["title"] == "Merhaba!")
    assert first["turns"] == 2
    resumed = run_json("ask", "--json", "--session", first["id"], "--expert", "base", "Tekrar merhaba!", env=env)
    assert resumed["session"] == first["id"] and resumed["turn"] == 3 and resumed["expert"] == "base" and resumed["history_messages"] >= 4
    shown = run_json("sessions", "show", first["id"][:15], "--json")
    assert [t["number"] for t in shown["turns"]] == [1, 2, 3]


def test_ask_rejects_an_unknown_expert_and_session_clearly():
    proc = run_evo("ask", "--expert", "chef", "Hi")
    assert proc.returncode != 0 and "No adapter loaded for expert 'chef'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_evo("ask", "--session", "missing-id", "Hi")
    assert proc.returncode != 0 and "No session 'missing-id'" in proc.stderr and "Traceback" not in proc.stderr


def test_conversation_store_survives_concurrent_writers(tmp_path):
    """Chat and the night job write the same SQLite file; WAL plus short transactions keep both."""
    db = tmp_path / "c.db"
    ConversationStore(db).create_session("s")
    code = (
        "import sys; from evo_tr.lifecycle import ConversationStore, TurnRecord\n"
        "s = ConversationStore(sys.argv[1])\n"
        "for i in range(50): s.record_turn(TurnRecord('s', int(sys.argv[2]) * 100 + i, 'm', 'a'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(k)]) for k in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert len(ConversationStore(db).turns("s")) == 150
    assert [t.number for t in ConversationStore(db).turns("s", last=2)] == [248, 249]
