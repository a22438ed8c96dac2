"""The Engine contract every inference backend implements (llama.cpp now; PEFT, MLX, remote later)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from evo_tr.errors import EvoError

Role = Literal["system", "user", "assistant"]
TRUNCATION_MARKER = "\n[…]\n"
MESSAGE_COST_CACHE = 4096


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling parameters for one request."""

    max_tokens: int = 512
    temperature: float = 0.3
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1
    seed: int = -1
    stop: tuple[str, ...] = ()


@dataclass
class GenerationStats:
    """Measured facts about one answer, filled in while it streams."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    finish_reason: str | None = None
    adapter: str | None = None

    @property
    def decode_tok_s(self) -> float | None:
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        decode_time = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_time if decode_time > 0 else None


@dataclass(frozen=True)
class FitResult:
    """Messages trimmed to the context budget, and what was cut to get there."""

    messages: list[Message]
    prompt_tokens: int
    dropped_messages: int = 0
    truncated_tokens: int = 0
    dropped_context: int = 0

    @property
    def trimmed(self) -> bool:
        return self.dropped_messages > 0 or self.truncated_tokens > 0


@dataclass
class Completion:
    """A streaming answer: iterate for text pieces; `stats` is complete once iteration ends."""

    chunks: Iterator[str]
    stats: GenerationStats = field(default_factory=GenerationStats)

    def __iter__(self) -> Iterator[str]:
        return self.chunks

    def close(self) -> None:
        """Stop generating (e.g. on Ctrl-C); the text so far stays valid."""
        close = getattr(self.chunks, "close", None)
        if close:
            close()
        if self.stats.finish_reason is None:
            self.stats.finish_reason = "interrupted"

    def text(self) -> str:
        return "".join(self)


class Engine(ABC):
    """One loaded base model. Adapters (LoRA experts) are attached by name and chosen per request."""

    name: str = "engine"

    @property
    @abstractmethod
    def n_ctx(self) -> int: ...

    @abstractmethod
    def tokenize(self, text: str) -> list[int]: ...

    @abstractmethod
    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt text the model sees, chat template applied."""

    @abstractmethod
    def chat_stream(self, messages: Sequence[Message], config: GenerationConfig, *, adapter: str | None = None) -> Completion: ...

    def adapters(self) -> list[str]:
        """Names of attached adapters; backends without LoRA support have none."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free native resources."""

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.count_tokens(self.render(messages))

    def fit(self, messages: Sequence[Message], reserve: int, *, context: Sequence[Message] = ()) -> FitResult:
        """Trim to n_ctx - reserve: drop the oldest turns first; never the system prompt or the current message.

        `context` (e.g. retrieved memories) goes right before the current message and is kept whole, or
        left out entirely if it does not fit next to the message. If the system prompt plus the current
        message alone do not fit, the current message is cut in the middle (head and tail kept).
        """
        if not messages:
            raise EvoError("Nothing to send: the message list is empty.")
        budget = self.n_ctx - reserve
        system = [m for m in messages[:1] if m.role == "system"]
        current = messages[-1]
        history = list(messages[len(system) : -1])
        context = list(context)
        base = self.count_messages([*system, *context, current])
        if base > budget and context:
            context, dropped_context = [], len(context)
            base = self.count_messages([*system, current])
        else:
            dropped_context = 0
        if base > budget:
            return self._truncate_current(system, current, budget)
        # Chat templates are additive per message, so one message costs what it adds next to the
        # fixed part; a final full count guards templates where that is not exact.
        kept: list[Message] = []
        used = base
        costs = self._cost_cache()
        for msg in reversed(history):
            key = (msg.role, msg.content)
            cost = costs.get(key)
            if cost is None:  # cached: a long chat re-counts only its new messages each turn
                cost = costs[key] = self.count_messages([*system, msg, *context, current]) - base
            if used + cost > budget:
                break
            kept.insert(0, msg)
            used += cost
        while kept and not (kept[0].role == "user" or (kept[0].role == "system" and len(kept) > 1 and kept[1].role == "user")):
            kept.pop(0)  # start at a turn (its memory block or question), as the history buffer does
        final = [*system, *kept, *context, current]
        total = self.count_messages(final)
        while total > budget and kept:
            kept.pop(0)
            final = [*system, *kept, *context, current]
            total = self.count_messages(final)
        return FitResult(final, total, dropped_messages=len(history) - len(kept), dropped_context=dropped_context)

    def _cost_cache(self) -> dict[tuple[str, str], int]:
        """Per-message token cost inside a prompt (templates are additive), bounded."""
        cache = self.__dict__.setdefault("_message_costs", {})
        if len(cache) > MESSAGE_COST_CACHE:
            cache.clear()
        return cache

    def _truncate_current(self, system: list[Message], current: Message, budget: int) -> FitResult:
        overhead = self.count_messages([*system, replace(current, content="")]) + self.count_tokens(TRUNCATION_MARKER)
        room = budget - overhead
        if room < 16:
            raise EvoError(
                f"The system prompt alone needs {overhead} tokens, more than the {budget}-token budget.",
                "Shorten system_prompt or raise engine.n_ctx in evo.toml.",
            )
        tokens = self.tokenize(current.content)
        head, tail = tokens[: room // 2], tokens[len(tokens) - (room - room // 2) :]
        text = self.detokenize(head) + TRUNCATION_MARKER + self.detokenize(tail)
        cut = replace(current, content=text)
        final = [*system, cut]
        total = self.count_messages(final)
        while total > budget:  # detokenize/retokenize can shift by a few tokens
            head, tail = head[:-4], tail[4:]
            cut = replace(current, content=self.detokenize(head) + TRUNCATION_MARKER + self.detokenize(tail))
            final = [*system, cut]
            total = self.count_messages(final)
        return FitResult(final, total, dropped_messages=0, truncated_tokens=len(tokens) - len(head) - len(tail))

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str: ...
