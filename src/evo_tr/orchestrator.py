"""The orchestrator: one turn end to end (route → recall → assemble → generate → record) as a stream of typed events.

The CLI, the HTTP server and the tests all consume the same `Orchestrator.turn()` stream (events.py). Every
part may fail on its own without costing the user the answer: the router falls back to the base model, a
broken adapter to the base model, an unavailable memory store to no RAG (its writes wait in a queue),
and a generation error ends only that turn.

Turns of different sessions may run at the same time (a server's request threads): each session has its
own lock, the session cache is bounded (least recently used sessions are dropped and reload from SQLite),
and the engine's owner thread runs one generation at a time, with each conversation's KV state kept apart.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from evo_tr.config import OWNER_ID, Settings
from evo_tr.engine import Engine, GenerationConfig, Message
from evo_tr.engine.worker import Busy
from evo_tr.errors import EvoError, reason
from evo_tr.events import Done, Event, Notice, Prepared, Recalled, Routed, Token, TurnStats  # noqa: F401 (re-exported)
from evo_tr.knowledge import KnowledgeLink, KnowledgeUnavailable
from evo_tr.lifecycle.conversations import ConversationStore, Feedback, SessionInfo, TurnRecord
from evo_tr.lifecycle.signals import implicit_feedback
from evo_tr.memory.context import ContextBuffer
from evo_tr.memory.link import MemoryLink, MemoryUnavailable, apply_memory_write  # noqa: F401 (re-exported)
from evo_tr.memory.manager import Recall, asks_about_conversation, open_memory, select_context
from evo_tr.memory.queue import MemoryQueue
from evo_tr.memory.types import MemoryHit
from evo_tr.router.context import TurnContext
from evo_tr.prompt import fit

log = logging.getLogger(__name__)

# Room left for the template's framing around the memory block and the message.
RAG_MARGIN_TOKENS = 16
TITLE_CHARS = 60
MODES = ("auto", "base")


def new_session_id() -> str:
    """Sortable and unique enough for one user: 20261124-221503-3fa9."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


# -- sessions ------------------------------------------------------------------------------------
@dataclass
class Session:
    """A conversation in memory: its recent history and which expert mode it is in (/switch)."""

    id: str
    buffer: ContextBuffer
    mode: str = "auto"
    turns: int = 0
    title: str = ""
    warned: set[str] = field(default_factory=set)  # notices already shown in this session
    injected: dict[str, str] = field(default_factory=dict)  # memory id → the memory block that carried it
    last_prompt: list[Message] = field(default_factory=list)  # what the model saw in this session's last turn
    previous: TurnContext | None = None  # the last turn's route, for routing that follows the conversation
    user: str = OWNER_ID  # whose session it is: recall reads, and captured facts and exchanges are written as, this user's memories
    # One turn at a time per session. A plain Lock, not an RLock: a server may resume the turn's generator on
    # another thread than the one that started it, and the release must work there.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def in_history(self) -> set[str]:
        """Memories whose block is still in the history: the model sees them already, so they are not repeated."""
        blocks = {m.content for m in self.buffer.messages if m.role == "system"}
        return {mid for mid, block in self.injected.items() if block in blocks}

    @property
    def history(self) -> list[Message]:
        return self.buffer.messages


OVERRIDABLE = frozenset(f.name for f in fields(GenerationConfig))


def _drain(events: Iterator[Event]):
    """Run an event generator to its end and return its return value."""
    while True:
        try:
            next(events)
        except StopIteration as done:
            return done.value


# -- the orchestrator ----------------------------------------------------------------------------
class Orchestrator:
    """Owns the engine, router, memory link and conversation store; `turn()` runs one message end to end."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        config: GenerationConfig,
        *,
        router=None,
        memory: MemoryLink | None = None,
        knowledge: KnowledgeLink | None = None,
        conversations: ConversationStore | None = None,
        adapter_versions: dict[str, str] | None = None,
        adapter_problems: dict[str, str] | None = None,
        model_name: str = "",
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.config = config
        self.router = router
        self.conversations = conversations or ConversationStore(settings.conversations_db)
        self.memory = memory
        self.knowledge = knowledge
        self._warned: set[str] = set()  # notices shown once per process (a knowledge store that is down)
        self.adapter_versions = adapter_versions or {}
        self.adapter_problems = adapter_problems or {}
        self.model_name = model_name or getattr(engine, "model_name", "")
        self.sessions: OrderedDict[str, Session] = OrderedDict()  # bounded by chat.session_cache, least recently used first
        self._sessions_lock = threading.RLock()
        self.startup_notices: list[Notice] = []

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: Engine,
        config: GenerationConfig,
        *,
        model: str | None = None,
        memory: bool = True,
        knowledge: bool = True,
        router: bool = True,
        conversations: ConversationStore | None = None,
        memory_opener=open_memory,
        say=lambda _: None,
    ) -> Orchestrator:
        """Attach the active adapters, load the router, link memory and knowledge (the pack loads on first use,
        `say` tells the user); what fails becomes a startup notice."""
        from evo_tr.experts import attach_active_adapters, base_info

        notices: list[Notice] = []
        versions: dict[str, str] = {}
        problems: dict[str, str] = {}
        try:
            attached, refused = attach_active_adapters(engine, settings, base_info(settings, model))
            versions = {v.expert: ("packaged" if v.packaged else f"v{v.version}") for v in attached}
            for line in refused:
                expert, _, why = line.partition(": ")
                problems[expert] = why
                notices.append(Notice("adapter", f"{expert} adapter not loaded, the base model answers for it: {why}"))
        except EvoError as exc:
            notices.append(Notice("adapter", f"adapters not loaded: {exc.message}"))
        classifier = None
        if router:
            from evo_tr.router import load_router

            try:
                classifier = load_router(settings)
            except Exception as exc:
                notices.append(Notice("router", f"router unavailable, the base model answers everything: {reason(exc)}"))
        conversations = conversations or ConversationStore(settings.conversations_db)
        link = MemoryLink(settings, engine.count_tokens, MemoryQueue(settings.conversations_db), memory_opener) if memory and settings.memory.enabled else None
        if link is not None:
            try:
                link.get()
            except EvoError as exc:
                notices.append(Notice("memory", f"{exc.message}; answering without it, writes are queued"))
        k_link = None
        if knowledge and settings.knowledge.enabled:
            from evo_tr.knowledge import open_knowledge

            k_link = KnowledgeLink(settings, lambda s: open_knowledge(s, say=say))
            try:
                k_link.get()
            except EvoError as exc:
                notices.append(Notice("knowledge", f"{exc.message}; answering without reference notes"))
        orch = cls(
            settings, engine, config, router=classifier, memory=link, knowledge=k_link, conversations=conversations,
            adapter_versions=versions, adapter_problems=problems, model_name=model or settings.model,
        )
        orch.startup_notices = notices
        for notice in notices:
            log.warning("startup: %s", notice.text, extra={"event": "degraded", "kind": notice.kind})
        return orch

    # -- sessions ----------------------------------------------------------------------------
    def _buffer(self) -> ContextBuffer:
        m = self.settings.memory
        return ContextBuffer(m.buffer_messages, m.buffer_tokens, self.engine.count_tokens)

    def _keep(self, session: Session) -> Session:
        """Cache a session; beyond chat.session_cache the least recently used one is dropped (it reloads from SQLite)."""
        with self._sessions_lock:
            self.sessions[session.id] = session
            self.sessions.move_to_end(session.id)
            while len(self.sessions) > self.settings.chat.session_cache:
                old, _ = self.sessions.popitem(last=False)
                log.debug("session %s left the cache (it reloads from the conversation store)", old)
        return session

    def new_session(self, title: str = "", *, user: str = OWNER_ID) -> Session:
        info = self.conversations.create_session(new_session_id(), title=title, model=self.model_name, user=user)
        return self._keep(Session(info.id, self._buffer(), title=title, user=user))

    def _cached(self, session_id: str, user: str) -> Session | None:
        """The cached session with this id when it is `user`'s (call under _sessions_lock)."""
        session = self.sessions.get(session_id)
        return self._keep(session) if session is not None and session.user == user else None

    def resume(self, session_id: str, *, user: str = OWNER_ID) -> Session:
        """One of `user`'s stored sessions with its last turns back in the buffer (id or unique prefix)."""
        info = self.conversations.find_session(session_id.strip(), user=user)
        if info is None:
            raise EvoError(f"No session {session_id!r}.", "List them with /sessions or `evo sessions list`.")
        with self._sessions_lock:
            if (cached := self._cached(info.id, user)) is not None:
                return cached
            session = Session(info.id, self._buffer(), title=info.title, user=info.user)
            records = self.conversations.turns(info.id, last=self.settings.memory.buffer_messages)
            for record in records:
                if record.context:
                    session.buffer.add("system", record.context)
                session.buffer.add("user", record.message)
                session.buffer.add("assistant", record.answer)
            session.turns = max((r.number for r in self.conversations.turns(info.id)), default=0)
            return self._keep(session)

    def session(self, session_id: str | None, *, user: str = OWNER_ID) -> Session:
        """`user`'s named session (resumed from the store if needed), or a new one."""
        if session_id is None:
            return self.new_session(user=user)
        with self._sessions_lock:
            if (cached := self._cached(session_id, user)) is not None:
                return cached
        return self.resume(session_id, user=user)

    def named_session(self, session_id: str, title: str = "", *, user: str = OWNER_ID) -> Session:
        """`user`'s session with exactly this id, created when it does not exist yet: an API client names its
        sessions itself (a prefix never matches another one, unlike `resume`). An id another user's session
        has is refused like an unknown one (the server gives every user's ids a prefix of their own, so this
        does not happen there)."""
        with self._sessions_lock:
            if (cached := self._cached(session_id, user)) is not None:
                return cached
            if self.conversations.get_session(session_id) is None:
                self.conversations.create_session(session_id, title=title, model=self.model_name, user=user)
                return self._keep(Session(session_id, self._buffer(), title=title, user=user))
        if self.conversations.get_session(session_id, user=user) is None:
            raise EvoError(f"No session {session_id!r}.", "Name the session with an id of your own.")
        return self.resume(session_id, user=user)

    def list_sessions(self, limit: int | None = None, *, user: str = OWNER_ID) -> list[SessionInfo]:
        return self.conversations.list_sessions(limit or self.settings.chat.sessions_listed, user=user)

    def forget_sessions(self, user: str) -> None:
        """Drop `user`'s sessions from the cache (after their data was erased)."""
        with self._sessions_lock:
            for sid in [sid for sid, s in self.sessions.items() if s.user == user]:
                self.sessions.pop(sid, None)

    def delete_session(self, session_id: str, *, user: str = OWNER_ID) -> bool:
        info = self.conversations.find_session(session_id, user=user)
        if info is None:
            return False
        with self._sessions_lock:
            self.sessions.pop(info.id, None)
        return self.conversations.delete_session(info.id)

    def set_mode(self, session: Session, mode: str) -> str:
        session.mode = self.check_expert(mode)
        return session.mode

    def check_expert(self, name: str) -> str:
        """auto, base, or a configured/attached expert (one whose adapter is broken runs on base); else a clear error."""
        known = set(self.engine.adapters()) | set(self.settings.router.experts.values())
        if name in MODES or name in known:
            return name
        loaded = ", ".join(self.engine.adapters()) or "none"
        raise EvoError(f"No adapter loaded for expert {name!r}; loaded: {loaded}.", "Use auto or base, or train it with `evo train EXPERT`.")

    # -- one turn -------------------------------------------------------------------------------
    def _previous(self, session: Session, history: Sequence[Message] | None) -> TurnContext | None:
        """The previous turn as the router's context: from a client-owned history (its last user message routed
        alone, whether the answer after it had code), else this session's last turn (from the log after a restart)."""
        if history is not None:
            messages = list(history)
            for i in range(len(messages) - 1, 0, -1):
                if messages[i].role == "assistant" and messages[i - 1].role == "user":
                    p = self.router.predict(messages[i - 1].content)
                    return TurnContext(p["intent"], float(p["confidence"]), "```" in messages[i].content)
            return None
        if session.previous is None and session.turns and session.id:
            last = self.conversations.turns(session.id, last=1)
            if last and last[0].route_source in ("router", "context") and last[0].intent:
                session.previous = TurnContext(last[0].intent, float(last[0].confidence or 0.0), "```" in last[0].answer)
        return session.previous

    def route(self, session: Session, text: str, expert: str | None, history: Sequence[Message] | None = None) -> Routed:
        """Request override > session mode (/switch) > router (with the previous turn as context); a router failure
        means the base model answers."""
        forced = expert if expert not in (None, "auto") else (session.mode if session.mode != "auto" else None)
        if forced is not None:
            name = "base" if forced == "base" else forced
            return Routed("", 1.0, name, name if name in self.engine.adapters() else None, source="request" if expert else "switch")
        if self.router is None:
            return Routed("", 0.0, "base", None, fallback=True, source="router-failed")
        try:
            p = self.router.predict(text, self._previous(session, history))
        except Exception as exc:
            log.warning("router failed, the base model answers: %s", exc)
            return Routed("", 0.0, "base", None, fallback=True, source="router-failed")
        name = self.settings.router.experts.get(p["intent"], "base")
        return Routed(p["intent"], float(p["confidence"]), name, name if name in self.engine.adapters() else None, fallback=bool(p["fallback"]))

    def turn(self, session_id: str | None, message: str, *, expert: str | None = None, overrides: dict[str, Any] | None = None,
             history: Sequence[Message] | None = None, record: bool = True, cancel: threading.Event | None = None,
             user: str = OWNER_ID) -> Iterator[Event]:
        """Route, recall, assemble, generate and log one message; close the iterator to interrupt (Ctrl-C).

        `overrides` change this turn's sampling only (temperature, top_p, top_k, max_tokens, stop, seed,
        repeat_penalty), as an API request passes them.

        `history` is a conversation the caller owns (an OpenAI client sends the whole of it with every
        request): it is the prompt's history instead of the session's, never added to. Its leading system
        messages follow the expert's system prompt. `record=False` (a stateless API request: no session id)
        keeps nothing: no conversation log, no memory write, no captured fact; routing and recall still run.
        Raises `Busy` when the engine's queue is full (nothing of the turn is kept then). Setting `cancel`
        (from any thread: a dropped HTTP client, a time limit) stops the answer at the next token; the turn
        still ends with Done, marked interrupted. `user` is whose turn it is (evo_tr.users): the session must be
        theirs, and only their memories are recalled, and written.
        """
        if not isinstance(message, str) or not message.strip():
            raise EvoError("The message is empty.", "Type some text.")
        if expert is not None:
            self.check_expert(expert)
        config = self.config_for(overrides)
        if record:
            session = (self.session(session_id, user=user) if history is None or session_id is None
                       else self.named_session(session_id, user=user))
        else:
            session = Session("", self._buffer(), user=user)  # nothing outlives the request
        external = None if history is None else list(history)
        return self._turn(session, message.strip(), expert, config=config, history=external, record=record, cancel=cancel)

    def config_for(self, overrides: dict[str, Any] | None) -> GenerationConfig:
        """The orchestrator's sampling settings with per-request overrides (None values keep the setting)."""
        if not overrides:
            return self.config
        unknown = set(overrides) - OVERRIDABLE
        if unknown:
            raise EvoError(f"Unknown generation setting(s): {', '.join(sorted(unknown))}.", f"Use: {', '.join(sorted(OVERRIDABLE))}.")
        values = {k: (tuple(v) if k == "stop" else v) for k, v in overrides.items() if v is not None}
        return replace(self.config, **values)

    def feedback(self, session_id: str, kind: str, *, reason: str = "", text: str = "", turn: int | None = None,
                 user: str = OWNER_ID) -> Feedback:
        """/good, /bad REASON, /fix TEXT on the session's last turn (or `turn`); 'regenerate' is what a client that
        answers again itself (the web page) reports, stored as implicit like `/regen`'s mark."""
        session = self.session(session_id, user=user)
        number = session.turns if turn is None else turn
        if number < 1:
            raise EvoError("There is no answer to rate yet.", "Ask something first.")
        if kind == "fix" and not text.strip():
            raise EvoError("/fix needs the better answer.", "Type /fix followed by the answer you expected.")
        fb = Feedback(session.id, number, kind, "implicit" if kind == "regenerate" else "explicit", reason.strip(), text.strip())
        self.conversations.add_feedback(fb)
        return fb

    def regenerate(self, session_id: str, *, expert: str | None = None) -> Iterator[Event]:
        """Answer the last message again (the old answer is marked 'regenerate' and leaves the history)."""
        session = self.session(session_id)
        last = self.conversations.turns(session.id, last=1)
        if not last:
            raise EvoError("There is nothing to regenerate yet.", "Ask something first.")
        record = last[0]
        self.conversations.add_feedback(Feedback(session.id, record.number, "regenerate", "implicit"))
        history = session.buffer.messages
        if len(history) >= 2 and history[-1].role == "assistant" and history[-2].role == "user":
            drop = 3 if len(history) >= 3 and history[-3].role == "system" else 2
            session.buffer.pop(drop)
        return self._turn(session, record.message, expert, implicit=False, config=self.config)

    def preview(self, session_id: str | None, message: str, *, expert: str | None = None) -> Prepared:
        """What the model would be sent for `message` (route, recall, assemble) without generating, capturing
        facts or recording a turn: for the contamination check and for debugging. `None` opens a new session."""
        if not isinstance(message, str) or not message.strip():
            raise EvoError("The message is empty.", "Type some text.")
        session = self.session(session_id)
        with session.lock:
            stats = TurnStats(session.id, session.turns + 1)
            return _drain(self._assemble(session, stats, message.strip(), expert, time.perf_counter(), self.config, capture=False, history=None))

    def replay(self, session_id: str | None, message: str, answer: str, *, expert: str | None = None) -> TurnStats:
        """Record a turn whose answer is given instead of generated, through the same path as a chat turn
        (facts captured, turn logged, exchange saved to memory): how the contamination check plants answers."""
        session = self.session(session_id)
        with session.lock:
            t0 = time.perf_counter()
            stats = self._begin(session, message.strip(), implicit=True)
            prepared = _drain(self._assemble(session, stats, message.strip(), expert, t0, self.config, history=None))
            stats.finish_reason = stats.finish_reason or "stop"
            return self._finish(session, stats, message.strip(), answer, prepared.context, t0)

    def _begin(self, session: Session, text: str, *, implicit: bool, history: list[Message] | None = None, record: bool = True) -> TurnStats:
        if not record:
            return TurnStats(session.id, 0)
        previous = session.buffer.messages if history is None else history
        if implicit and session.turns:
            self._implicit_feedback(session, text, previous)
        session.turns += 1
        if not session.title:
            session.title = text.replace("\n", " ")[:TITLE_CHARS]
            self.conversations.set_title(session.id, session.title)
        return TurnStats(session.id, session.turns)

    def _assemble(
        self, session: Session, stats: TurnStats, text: str, expert: str | None, t0: float, config: GenerationConfig, *, capture: bool = True,
        history: list[Message] | None,
    ) -> Iterator[Event]:
        """Route, recall and fit the prompt, yielding Routed, Notice and Recalled; returns the Prepared prompt."""
        routed = self.route(session, text, expert, history)
        stats.intent, stats.confidence, stats.expert, stats.adapter = routed.intent, routed.confidence, routed.expert, routed.adapter
        stats.routed_fallback, stats.route_source = routed.fallback, routed.source
        stats.route_ms = _ms(t0)
        yield routed
        if routed.source == "router-failed" and "router" not in session.warned:
            session.warned.add("router")
            yield self._notice(stats, Notice("router", "router unavailable: the base model answers"))
        if routed.adapter is None and routed.expert in self.adapter_problems and routed.expert not in session.warned:
            session.warned.add(routed.expert)
            yield self._notice(stats, Notice("adapter", f"{routed.expert} adapter unavailable ({self.adapter_problems[routed.expert]}); the base model answers"))

        t1 = time.perf_counter()
        system = Message("system", self.settings.prompt_for(routed.expert))
        past = session.history
        if history is not None:  # the caller's conversation: its opening system messages follow the expert's
            lead = 0
            while lead < len(history) and history[lead].role == "system":
                lead += 1
            if lead:
                system = Message("system", "\n\n".join([system.content, *(m.content for m in history[:lead])]))
            past = history[lead:]
        current = Message("user", text)
        recall, captured, notices = self._recall(session, stats, text, routed, system, current, config, capture=capture,
                                                 in_history=session.in_history() if history is None else set())
        stats.recall_ms = _ms(t1)
        for notice in notices:
            yield self._notice(stats, notice)
        yield Recalled(recall.hits, captured)

        t2 = time.perf_counter()
        context = [Message("system", recall.block)] if recall.block else []
        try:
            fitted = fit(self.engine, [system, *past, current], reserve=config.max_tokens, context=context)
        except EvoError as exc:  # e.g. a system prompt larger than the context: this turn fails, the session goes on
            stats.error = exc.message
            stats.finish_reason = "error"
            yield self._notice(stats, Notice("generation", f"could not build the prompt: {exc.message}"))
            return Prepared(routed, recall, [], "")
        if fitted.dropped_context:
            recall = Recall(not_relevant=recall.not_relevant, over_budget=len(recall.hits))
            yield self._notice(stats, Notice("context", "memories left out: the message fills the context window"))
        if fitted.truncated_tokens:
            yield self._notice(stats, Notice("context", f"message too long for the context window: {fitted.truncated_tokens} tokens cut from its middle"))
        stats.history_messages = len(fitted.messages) - 2 - len(context if not fitted.dropped_context else [])
        stats.dropped_messages, stats.truncated_tokens, stats.dropped_context = fitted.dropped_messages, fitted.truncated_tokens, fitted.dropped_context
        stats.memory_ids = [h.memory.id for h in recall.hits]
        stats.memory_tokens = recall.tokens
        stats.memory_block = recall.block if not fitted.dropped_context else ""
        stats.sources = [source_of(h) for h in recall.hits if h.memory.type == "knowledge" and "label" in h.memory.extra]
        stats.assemble_ms = _ms(t2)
        return Prepared(routed, recall, fitted.messages, stats.memory_block)

    def _turn(self, session: Session, text: str, expert: str | None, *, implicit: bool = True, config: GenerationConfig,
              history: list[Message] | None = None, record: bool = True, cancel: threading.Event | None = None) -> Iterator[Event]:
        with session.lock:  # released when the turn ends or its consumer closes it
            yield from self._locked_turn(session, text, expert, implicit, config, history, record, cancel)

    def _locked_turn(self, session: Session, text: str, expert: str | None, implicit: bool, config: GenerationConfig,
                     history: list[Message] | None, record: bool, cancel: threading.Event | None = None) -> Iterator[Event]:
        t0 = time.perf_counter()
        stats = self._begin(session, text, implicit=implicit, history=history, record=record)
        prepared = yield from self._assemble(session, stats, text, expert, t0, config, capture=record, history=history)
        keep = {"history": history is None, "record": record}
        if not prepared.messages:
            yield Done(self._finish(session, stats, text, "", "", t0, **keep))
            return
        sent_context = prepared.context
        session.last_prompt = prepared.messages

        answer = ""
        completion = None
        try:
            completion = self.engine.chat_stream(prepared.messages, config, adapter=prepared.routed.adapter, cache_key=session.id or None)
            for piece in completion:
                if stats.e2e_ttft_ms is None:
                    stats.e2e_ttft_ms = _ms(t0)
                answer += piece
                yield Token(piece)
                if cancel is not None and cancel.is_set():
                    completion.close()  # the engine stops at its next token
                    stats.finish_reason = "interrupted"
                    break
        except (GeneratorExit, KeyboardInterrupt):  # stream closed by the consumer (Ctrl-C, a dropped client) or Ctrl-C here
            if completion is not None:
                completion.close()
            stats.finish_reason = "interrupted"
            self._finish(session, stats, text, answer, sent_context, t0, completion, **keep)
            raise
        except Busy:  # the queue was full, nothing was generated: the turn never happened, the caller says "try again"
            if record:
                session.turns -= 1
            raise
        except Exception as exc:  # a generation error ends this turn only
            log.exception("generation failed")
            stats.error = reason(exc)
            stats.finish_reason = "error"
            yield self._notice(stats, Notice("generation", f"the answer failed: {stats.error}"))
        yield Done(self._finish(session, stats, text, answer, sent_context, t0, completion, **keep))

    def _implicit_feedback(self, session: Session, text: str, history: Sequence[Message]) -> None:
        """The user says the last answer was wrong, or asks the same thing again: recorded for the night."""
        previous = next((m.content for m in reversed(history) if m.role == "user"), None)
        signal = implicit_feedback(text, previous)
        if signal is None:
            return
        try:
            self.conversations.add_feedback(Feedback(session.id, session.turns, signal, "implicit", reason=text[:200]))
        except Exception as exc:
            log.warning("could not record implicit feedback: %s", exc)

    def _recall(self, session: Session, stats: TurnStats, text: str, routed: Routed, system: Message, current: Message,
                config: GenerationConfig, *, capture: bool = True, in_history: set[str] = frozenset()):
        """Capture stated facts, retrieve memories and reference passages; a store that fails costs only its part
        of the context (memory writes are queued), never the answer."""
        notices: list[Notice] = []
        room = self.engine.n_ctx - config.max_tokens - self.engine.count_messages([system, current]) - RAG_MARGIN_TOKENS
        passages, k = self._knowledge(text, routed, notices)
        if self.memory is None:
            return select_context([], self.settings.memory, self.engine.count_tokens, room, knowledge=passages, knowledge_top_k=k), [], notices
        captured = []
        try:
            manager = self.memory.get()
            with self.memory.lock:
                captured = manager.observe(text, session=session.id, turn=session.turns, user=session.user) if capture else []
                recall = manager.recall(
                    text, room, exclude=[c.fact.text for c in captured], about_conversation=asks_about_conversation(text),
                    session=session.id, touch=False, skip_ids=in_history, knowledge=passages, knowledge_top_k=k, user=session.user,
                )
        except Exception as exc:  # a broken or locked store must never cost the user their answer
            if not isinstance(exc, MemoryUnavailable):
                self.memory.failed(exc)
            if capture:
                self._queue_facts(session, text, done={c.fact.text for c in captured})
            notices.append(Notice("memory", f"memory unavailable, answering without it; writes are queued ({reason(exc)})"))
            recall = select_context([], self.settings.memory, self.engine.count_tokens, room, knowledge=passages, knowledge_top_k=k)
        return recall, captured, notices

    def _knowledge(self, text: str, routed: Routed, notices: list[Notice]) -> tuple[list[MemoryHit], int]:
        """Candidate reference passages for the message (pack entries left out for code intents), and how many may enter."""
        cfg = self.settings.knowledge
        if self.knowledge is None:
            return [], cfg.top_k
        try:
            store = self.knowledge.get()
            with self.knowledge.lock:
                hits = store.search(text, cfg.top_k * 2, include_pack=cfg.pack and routed.intent not in cfg.skip_pack_for)
                return store.relevant(text, hits), cfg.top_k
        except Exception as exc:
            if not isinstance(exc, KnowledgeUnavailable):
                self.knowledge.failed(exc)
            if "knowledge" not in self._warned:
                self._warned.add("knowledge")
                notices.append(Notice("knowledge", f"knowledge unavailable, answering without reference notes ({reason(exc)})"))
            return [], cfg.top_k

    def _queue_facts(self, session: Session, text: str, done: set[str]) -> None:
        """Facts from a message the store could not take now are written later by the queue."""
        if not self.settings.memory.capture_facts:
            return
        from evo_tr.memory.facts import capture_facts

        for fact in capture_facts(text):
            if fact.text not in done:
                payload = {"text": fact.text, "type": fact.type, "rule": fact.rule, "lang": fact.lang, "session": session.id, "turn": session.turns,
                           "user_id": session.user}
                self.memory.enqueue("fact", payload)

    def _notice(self, stats: TurnStats, notice: Notice) -> Notice:
        stats.notices.append(f"{notice.kind}: {notice.text}")
        return notice

    def _finish(self, session: Session, stats: TurnStats, text: str, answer: str, context: str, t0: float, completion=None, *,
                history: bool = True, record: bool = True) -> TurnStats:
        """History, conversation log and (queued) memory write; an interrupted answer is kept and marked.

        `history=False`: the caller owns the conversation (nothing is added to the session's buffer);
        `record=False`: nothing is logged or written to memory either.
        """
        t3 = time.perf_counter()
        if completion is not None:
            s = completion.stats
            stats.prompt_tokens, stats.completion_tokens = s.prompt_tokens, s.completion_tokens
            stats.queue_ms = round(1000 * s.queued_s, 2) if s.queued_s is not None else None
            stats.ttft_ms = round(1000 * s.ttft_s, 2) if s.ttft_s is not None else None
            stats.decode_tok_s = round(s.decode_tok_s, 2) if s.decode_tok_s else None
            if stats.finish_reason is None:
                stats.finish_reason = s.finish_reason
        stats.answer = answer
        stats.total_ms = _ms(t0)
        if not record:
            stats.log_ms = _ms(t3)
            return stats
        if history:  # the next message is routed with this turn as its context (a forced expert leaves none)
            session.previous = TurnContext(stats.intent, float(stats.confidence or 0.0), "```" in answer) if stats.intent else None
        if history and (stats.finish_reason != "error" or answer):
            if context:
                session.buffer.add("system", context)
                session.injected.update({mid: context for mid in stats.memory_ids})
            session.buffer.add("user", text)
            session.buffer.add("assistant", answer)
        record = TurnRecord.from_stats(stats, text, answer, context=context, adapter_version=self.adapter_versions.get(stats.adapter or ""))
        try:
            self.conversations.record_turn(record)
            saving = self.settings.memory.save_conversations
            if self.memory is not None and saving and answer.strip() and not stats.interrupted and stats.error is None:
                payload = {"user": text, "assistant": answer, "intent": stats.intent, "session": session.id, "turn": stats.turn,
                           "user_id": session.user}
                self.memory.enqueue("turn", payload)
            if self.memory is not None:  # background work starts after the answer, never competing with it
                if stats.memory_ids:
                    self.memory.touch_async(stats.memory_ids)
                self.memory.drain_async()  # this turn's write, and anything left from earlier failures
        except Exception as exc:  # the log is best effort: the user already has the answer
            log.warning("could not log turn %s of %s: %s", stats.turn, session.id, exc)
            stats.notices.append(f"log: turn not saved ({reason(exc)})")
        stats.log_ms = _ms(t3)
        log.info(
            "turn %s/%s %s", session.id, stats.turn, stats.finish_reason,
            extra={"event": "turn", "session": session.id, "turn": stats.turn, "intent": stats.intent, "expert": stats.expert,
                   "adapter": stats.adapter, "ttft_ms": stats.ttft_ms, "overhead_ms": round(stats.overhead_ms, 2),
                   "completion_tokens": stats.completion_tokens, "error": stats.error, "notices": stats.notices},
        )
        return stats

    # -- status / shutdown ------------------------------------------------------------------------
    def status(self, session: Session | None = None) -> dict[str, Any]:
        """Model, adapters, memory and session, for /status and `evo status --json`."""
        out: dict[str, Any] = {
            "model": self.model_name,
            "backend": self.engine.name,
            "n_ctx": self.engine.n_ctx,
            "adapters": {name: self.adapter_versions.get(name, "?") for name in self.engine.adapters()},
            "adapter_problems": dict(self.adapter_problems),
            "router": self.router is not None,
            "memory_queue": self.memory.queue.size() if self.memory is not None else 0,
        }
        if self.memory is None:
            out["memory"] = "off"
        else:
            try:
                with self.memory.lock:
                    st = self.memory.get().store.get_stats()
                out["memory"] = {"total": st.total, "backend": st.backend, "by_type": st.by_type}
            except Exception as exc:
                out["memory"] = f"unavailable ({reason(exc)})"
        if self.knowledge is None:
            out["knowledge"] = "off"
        else:
            try:
                with self.knowledge.lock:
                    ks = self.knowledge.get().stats()
                out["knowledge"] = {"pack_version": ks["pack_version"], "pack_entries": ks["pack_entries"], "documents": ks["documents"]}
            except Exception as exc:
                out["knowledge"] = f"unavailable ({reason(exc)})"
        if session is not None:
            out["session"] = {"id": session.id, "title": session.title, "turns": session.turns, "mode": session.mode,
                              "history_messages": len(session.history),
                              "history_tokens": self.engine.count_messages(session.history) if session.history else 0}
        return out

    def flush(self, timeout: float | None = None) -> None:
        if self.memory is not None:
            self.memory.flush(timeout)

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()
        self.conversations.close()


def source_of(hit: MemoryHit) -> dict[str, Any]:
    """A reference passage as the user sees it under an answer (and `evo ask --json` lists it)."""
    m = hit.memory.extra
    out = {"id": hit.memory.id, "label": m["label"], "kind": m.get("kind", ""), "similarity": round(hit.similarity, 4)}
    for key in ("source", "section", "line_start", "line_end", "entry"):
        if m.get(key) not in (None, ""):
            out[key] = m[key]
    return out


def _ms(since: float) -> float:
    return round(1000 * (time.perf_counter() - since), 2)
