"""A conversation with the engine: history, context budgeting, and one streamed answer per turn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from evo_tr.engine import Completion, Engine, FitResult, GenerationConfig, Message


@dataclass
class Turn:
    """One user message and its streaming answer; call `finish` with the text once streamed."""

    message: str
    fit: FitResult
    completion: Completion
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
    """Short history kept in memory; the engine's context window decides how much of it is sent."""

    engine: Engine
    config: GenerationConfig
    system_prompt: str
    history: list[Message] = field(default_factory=list)
    last: Turn | None = None

    def start(self, text: str) -> Turn:
        """Build the prompt for `text` (trimmed to fit) and begin streaming the answer."""
        messages = [Message("system", self.system_prompt), *self.history, Message("user", text)]
        fit = self.engine.fit(messages, reserve=self.config.max_tokens)
        completion = self.engine.chat_stream(fit.messages, self.config)
        self.last = Turn(text, fit, completion)
        return self.last

    def finish(self, turn: Turn) -> None:
        """Record the turn in history; an interrupted answer is kept as far as it got."""
        sent = turn.fit.messages[-1].content
        self.history.append(Message("user", sent))
        self.history.append(Message("assistant", turn.answer))

    def clear(self) -> None:
        self.history.clear()

    def history_tokens(self) -> int:
        return self.engine.count_messages(self.history) if self.history else 0
