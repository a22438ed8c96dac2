"""The typed events of one turn, and the turn's measured figures: what the CLI, the REPL and the server consume.

A turn yields Routed → (Notice…) → Recalled → Token… → Done, in that order. `dispatch` hands each event
to the matching method of a handler, so `evo ask`, `evo chat` and the HTTP server share one consumer shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union

from evo_tr.memory.manager import Captured, Recall
from evo_tr.memory.types import MemoryHit
from evo_tr.messages import Message


@dataclass(frozen=True)
class Routed:
    """Which expert answers, and why: source is 'router', 'router-failed', 'switch' (session mode) or 'request'."""

    intent: str
    confidence: float
    expert: str
    adapter: str | None
    fallback: bool = False
    source: str = "router"


@dataclass(frozen=True)
class Recalled:
    """Memories put into this prompt, and facts captured from the message."""

    memories: list[MemoryHit]
    captured: list[Captured] = field(default_factory=list)


@dataclass(frozen=True)
class Notice:
    """A degradation the user should know about, in one line: kind is router|adapter|memory|context|generation."""

    kind: str
    text: str


@dataclass(frozen=True)
class Token:
    text: str


@dataclass
class TurnStats:
    """Everything measured about one turn; `overhead_ms` is what the turn cost besides the model itself."""

    session_id: str
    turn: int
    intent: str = ""
    confidence: float = 0.0
    routed_fallback: bool = False
    route_source: str = "router"
    expert: str = "base"
    adapter: str | None = None
    answer: str = ""
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    e2e_ttft_ms: float | None = None
    total_ms: float = 0.0
    decode_tok_s: float | None = None
    queue_ms: float | None = None  # waiting in the engine owner's queue for earlier requests
    route_ms: float = 0.0
    recall_ms: float = 0.0
    assemble_ms: float = 0.0
    log_ms: float = 0.0
    memory_tokens: int = 0
    memory_ids: list[str] = field(default_factory=list)
    memory_block: str = ""  # exactly what memory and knowledge put into the prompt (empty when nothing)
    sources: list[dict[str, Any]] = field(default_factory=list)  # the reference passages in the prompt, with their labels
    history_messages: int = 0
    dropped_messages: int = 0
    truncated_tokens: int = 0
    dropped_context: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.finish_reason == "interrupted"

    @property
    def overhead_ms(self) -> float:
        return self.route_ms + self.recall_ms + self.assemble_ms + self.log_ms

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "interrupted": self.interrupted, "overhead_ms": round(self.overhead_ms, 2)}


@dataclass(frozen=True)
class Done:
    stats: TurnStats


Event = Union[Routed, Recalled, Notice, Token, Done]


@dataclass(frozen=True)
class Prepared:
    """A prompt ready for the model: who answers, what memory put in, the messages, and the memory block sent."""

    routed: Routed
    recall: Recall
    messages: list[Message]
    context: str


class Handler:
    """Override what you show; `dispatch` calls the method for each event (defaults do nothing)."""

    def on_routed(self, event: Routed) -> None: ...

    def on_notice(self, event: Notice) -> None: ...

    def on_recalled(self, event: Recalled) -> None: ...

    def on_token(self, event: Token) -> None: ...

    def on_done(self, event: Done) -> None: ...


def dispatch(event: Event, handler: Handler) -> None:
    method = _METHODS.get(type(event))
    if method is not None:
        getattr(handler, method)(event)


_METHODS = {Routed: "on_routed", Notice: "on_notice", Recalled: "on_recalled", Token: "on_token", Done: "on_done"}
