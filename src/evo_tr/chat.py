"""A conversation with the engine: short-term buffer, long-term memory, and one streamed answer per turn."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from evo_tr.config import Settings
from evo_tr.engine import Completion, Engine, FitResult, GenerationConfig, Message
from evo_tr.errors import EvoError
from evo_tr.memory.context import ContextBuffer
from evo_tr.memory.manager import Captured, MemoryManager, Recall
from evo_tr.router.classifier import RouterClassifier

log = logging.getLogger(__name__)

# Room left for the template's framing around the memory block and the message.
RAG_MARGIN_TOKENS = 16


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, EvoError) else f"{type(exc).__name__}: {exc}"


def new_session_id() -> str:
    """Sortable and unique enough for one user: 20261124-221503-3fa9."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass
class Turn:
    """One user message and its streaming answer; call `finish` with the text once streamed."""

    message: str
    fit: FitResult
    completion: Completion
    number: int = 0
    recall: Recall = field(default_factory=Recall)
    captured: list[Captured] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    intent: str = ""
    expert: str = "base"
    adapter: str | None = None
    answer: str = ""

    def __iter__(self) -> Iterator[str]:
        for piece in self.completion:
            self.answer += piece
            yield piece

    @property
    def interrupted(self) -> bool:
        return self.completion.stats.finish_reason == "interrupted"


@dataclass
class ChatSession:
    """Recent history in a ContextBuffer; retrieved memories join each prompt; finished turns are saved."""

    engine: Engine
    config: GenerationConfig
    system_prompt: str
    memory: MemoryManager | None = None
    buffer: ContextBuffer | None = None
    router: RouterClassifier | None = None
    force_memory: tuple[str, ...] = ("memory_recall",)
    experts: dict[str, str] = field(default_factory=dict)  # intent → expert
    mode: str = "auto"  # "auto" (router decides), "base", or an expert name (/switch)
    session_id: str = field(default_factory=new_session_id)
    turns: int = 0
    last: Turn | None = None

    def __post_init__(self) -> None:
        if self.buffer is None:
            self.buffer = ContextBuffer(max_messages=1_000_000, max_tokens=self.engine.n_ctx, count_tokens=self.engine.count_tokens)

    @classmethod
    def create(
        cls,
        engine: Engine,
        config: GenerationConfig,
        settings: Settings,
        *,
        system_prompt: str | None = None,
        memory: MemoryManager | None = None,
        router: RouterClassifier | None = None,
    ) -> ChatSession:
        """A session with the configured buffer limits."""
        buffer = ContextBuffer(settings.memory.buffer_messages, settings.memory.buffer_tokens, engine.count_tokens)
        return cls(
            engine, config, system_prompt or settings.system_prompt, memory=memory, buffer=buffer, router=router,
            force_memory=tuple(settings.router.force_memory), experts=dict(settings.router.experts),
        )

    def expert_for(self, intent: str) -> tuple[str, str | None]:
        """(expert, adapter to use): /switch wins over the router; an expert without an attached adapter runs on base."""
        expert = self.experts.get(intent, "base") if self.mode == "auto" else self.mode
        adapter = expert if expert in self.engine.adapters() else None
        return expert, adapter

    def _intent(self, text: str) -> str:
        """The router's intent, or '' without a router (or if it fails: routing must never cost the answer)."""
        if self.router is None:
            return ""
        try:
            return self.router.predict(text)["intent"]
        except Exception as exc:
            log.warning("router failed, treating message as general: %s", exc)
            return ""

    @property
    def history(self) -> list[Message]:
        return self.buffer.messages

    def start(self, text: str) -> Turn:
        """Capture stated facts, retrieve memories, build the prompt (trimmed to fit) and begin streaming."""
        self.turns += 1
        system, current = Message("system", self.system_prompt), Message("user", text)
        notices: list[str] = []
        captured: list[Captured] = []
        recall = Recall()
        intent = self._intent(text)
        expert, adapter = self.expert_for(intent)
        if self.memory is not None:
            try:
                captured = self.memory.observe(text, session=self.session_id, turn=self.turns)
                room = self.engine.n_ctx - self.config.max_tokens - self.engine.count_messages([system, current]) - RAG_MARGIN_TOKENS
                strict = intent not in self.force_memory  # asking about memory: only the similarity floor applies
                recall = self.memory.recall(text, room, exclude=[c.fact.text for c in captured], strict=strict)
            except Exception as exc:  # a broken store must never cost the user their answer
                log.warning("memory unavailable for this turn: %s", exc)
                notices.append(f"memory unavailable, answering without it ({_reason(exc)})")
        context = [Message("system", recall.block)] if recall.block else []
        fit = self.engine.fit([system, *self.history, current], reserve=self.config.max_tokens, context=context)
        if fit.dropped_context:
            recall = Recall(not_relevant=recall.not_relevant, over_budget=len(recall.hits))
        completion = self.engine.chat_stream(fit.messages, self.config, adapter=adapter)
        self.last = Turn(text, fit, completion, self.turns, recall, captured, notices, intent=intent, expert=expert, adapter=adapter)
        return self.last

    def finish(self, turn: Turn) -> None:
        """Record the turn in the buffer and long-term memory; an interrupted answer stays in the buffer only."""
        sent = turn.fit.messages[-1].content
        self.buffer.add("user", sent)
        self.buffer.add("assistant", turn.answer)
        if self.memory is not None and not turn.interrupted:
            try:
                self.memory.save_turn(turn.message, turn.answer, intent=turn.intent, session=self.session_id, turn=turn.number)
            except Exception as exc:
                log.warning("could not save turn %s to memory: %s", turn.number, exc)
                turn.notices.append(f"turn not saved to memory ({_reason(exc)})")

    def clear(self) -> None:
        self.buffer.clear()

    def history_tokens(self) -> int:
        return self.engine.count_messages(self.history) if self.history else 0
